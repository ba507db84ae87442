"""A claim's CMS-1500 (02/12) boxes as a PDF to print or send: each box by its number and
the form's own label, in the form's order (the patient and insured, boxes 1 to 13; the
diagnoses, 21; the service lines, 24; the provider, 25 to 33)."""

from __future__ import annotations

from typing import Any

from flask import Response
from fpdf import FPDF, FontFace

from billing.domain.money import Money
from billing.web.receipts import pdf_font, pdf_text

LABELS = (
    ("1", "Program"),
    ("1a", "Insured's ID number"),
    ("2", "Patient's name"),
    ("3", "Patient's birth date, sex"),
    ("4", "Insured's name"),
    ("5", "Patient's address"),
    ("6", "Patient relationship to insured"),
    ("7", "Insured's address"),
    ("11", "Insured's policy group"),
    ("11c", "Insurance plan name"),
    ("12", "Patient's signature"),
    ("13", "Insured's signature"),
)
PROVIDER = (
    ("25", "Federal tax ID"),
    ("26", "Patient's account no."),
    ("27", "Accept assignment"),
    ("28", "Total charge"),
    ("29", "Amount paid"),
    ("31", "Signature of physician"),
    ("32", "Service facility"),
    ("32a", "Facility NPI"),
    ("33", "Billing provider"),
    ("33a", "Billing NPI"),
    ("33b", "Taxonomy"),
)


def _said(number: str, value: Any, money: Any) -> str:
    if value is None:
        return ""
    if number in ("28", "29"):
        return str(money(value))
    if number == "27":
        return "Yes" if value else "No"
    if number == "3":
        return f"{value['date_of_birth']}   {value['sex']}"
    if number == "25":
        return f"{value['tax_id']} ({value['type']})"
    if number == "31":
        return f"{value['signed']}   {value['date']}"
    if isinstance(value, dict):
        return ", ".join(str(part) for part in value.values() if part)
    return str(value)


def render_pdf(made: dict[str, Any]) -> bytes:
    boxes = made["boxes"]

    def money(amount: int) -> str:
        return Money(amount, made["currency"]).format()

    pdf = FPDF(format="Letter")
    pdf.set_title(f"CMS-1500 claim {boxes['26']}")
    pdf.add_page()
    font = pdf_font(pdf)
    text = pdf_text(font)
    heading = FontFace(emphasis="BOLD") if font != "DejaVu" else FontFace()
    pdf.set_font(font, size=14)
    pdf.cell(
        0,
        8,
        text("Health Insurance Claim Form: CMS-1500 (02/12) data"),
        new_x="LMARGIN",
        new_y="NEXT",
    )
    pdf.set_font(font, size=8)
    with pdf.table(col_widths=(12, 60, 123), first_row_as_headings=False, line_height=4.5) as table:
        for number, label in LABELS:
            table.row([text(number), text(label), text(_said(number, boxes[number], money))])
    pdf.ln(2)
    diagnoses = boxes["21"]["diagnoses"]
    pdf.set_font(font, size=9)
    pdf.cell(
        0, 6, text("21. Diagnosis (ICD indicator 0: ICD-10-CM)"), new_x="LMARGIN", new_y="NEXT"
    )
    pdf.set_font(font, size=8)
    pdf.multi_cell(
        0,
        4.5,
        text("   ".join(f"{p}. {code}" for p, code in diagnoses.items())),
        new_x="LMARGIN",
        new_y="NEXT",
    )
    pdf.ln(2)
    pdf.set_font(font, size=9)
    pdf.cell(0, 6, text("24. Services"), new_x="LMARGIN", new_y="NEXT")
    pdf.set_font(font, size=8)
    with pdf.table(
        col_widths=(20, 20, 12, 20, 22, 18, 25, 12, 46),
        text_align=("LEFT", "LEFT", "LEFT", "LEFT", "LEFT", "LEFT", "RIGHT", "RIGHT", "LEFT"),
        line_height=4.5,
        headings_style=heading,
    ) as table:
        table.row(
            [
                text(t)
                for t in (
                    "A From",
                    "A To",
                    "B POS",
                    "D CPT/HCPCS",
                    "D Modifiers",
                    "E Pointer",
                    "F Charges",
                    "G Units",
                    "J Rendering NPI",
                )
            ]
        )
        for line in boxes["24"]:
            table.row(
                [
                    text(line["a_date_from"]),
                    text(line["a_date_to"]),
                    text(line["b_place_of_service"]),
                    text(line["d_procedure"]),
                    text(" ".join(line["d_modifiers"])),
                    text(line["e_diagnosis_pointer"]),
                    text(money(line["f_charges"])),
                    text(str(line["g_units"])),
                    text(str(line["j_rendering_npi"])),
                ]
            )
    pdf.ln(2)
    with pdf.table(col_widths=(12, 60, 123), first_row_as_headings=False, line_height=4.5) as table:
        for number, label in PROVIDER:
            table.row([text(number), text(label), text(_said(number, boxes[number], money))])
    return bytes(pdf.output())


def pdf_response(made: dict[str, Any]) -> Response:
    response = Response(render_pdf(made), mimetype="application/pdf")
    response.headers["Content-Disposition"] = (
        f'attachment; filename="claim-{made["boxes"]["26"]}.pdf"'
    )
    return response
