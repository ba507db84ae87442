"""A superbill as a PDF the patient sends their insurer, laid out as a claims clerk reads
one: who billed and who treated (with NPIs and the tax id), the patient, the date and
place of service, the diagnoses with their pointers, each line's code, modifiers, units
and charge, what was paid, and a line for the provider's signature."""

from __future__ import annotations

from typing import Any

from flask import Response
from fpdf import FPDF, FontFace

from billing.domain.money import Money
from billing.web.receipts import pdf_font, pdf_text


def render_pdf(bill: dict[str, Any]) -> bytes:
    currency = bill["currency"]

    def money(amount: int) -> str:
        return Money(amount, currency).format()

    pdf = FPDF(format="Letter")
    pdf.set_title(f"Superbill {bill['invoice_number']}")
    pdf.add_page()
    font = pdf_font(pdf)
    text = pdf_text(font)
    pdf.set_font(font, size=16)
    pdf.cell(
        0, 9, text("Superbill (itemized statement for insurance)"), new_x="LMARGIN", new_y="NEXT"
    )
    pdf.set_font(font, size=9)
    billing, rendering, patient = (
        bill["billing_provider"],
        bill["rendering_provider"],
        bill["patient"],
    )
    address = patient["address"]
    lines = [
        ("Billing provider", f"{billing['name']}, {billing['address']}, {billing['phone']}"),
        (
            "Billing NPI / TIN / taxonomy",
            f"{billing['npi']} / {billing['tin']} / {billing['taxonomy']}",
        ),
        ("Rendering provider", f"{_named(rendering)} (NPI {rendering['npi']})"),
        ("Patient", f"{patient['name']} ({patient['patient_id']})"),
        ("Date of birth", patient["date_of_birth"]),
        (
            "Patient address",
            ", ".join(
                part
                for part in (
                    address["line1"],
                    address["line2"],
                    address["city"],
                    address["state"],
                    address["postal_code"],
                    address["country"],
                )
                if part
            ),
        ),
        ("Invoice", bill["invoice_number"]),
        ("Date of service", bill["date_of_service"]),
        ("Place of service", bill["place_of_service"]),
    ]
    with pdf.table(col_widths=(55, 140), first_row_as_headings=False, line_height=5) as table:
        for label, value in lines:
            table.row([text(label), text(str(value))])
    pdf.ln(3)
    pdf.set_font(font, size=11)
    pdf.cell(0, 7, text("Diagnoses (ICD-10-CM)"), new_x="LMARGIN", new_y="NEXT")
    pdf.set_font(font, size=9)
    heading = FontFace(emphasis="BOLD") if font != "DejaVu" else FontFace()
    with pdf.table(col_widths=(15, 25, 155), line_height=5, headings_style=heading) as table:
        table.row([text("Pointer"), text("Code"), text("Description")])
        for diagnosis in bill["diagnoses"]:
            table.row(
                [
                    text(diagnosis["pointer"]),
                    text(diagnosis["code"]),
                    text(diagnosis["description"]),
                ]
            )
    pdf.ln(3)
    pdf.set_font(font, size=11)
    pdf.cell(0, 7, text("Services"), new_x="LMARGIN", new_y="NEXT")
    pdf.set_font(font, size=9)
    with pdf.table(
        col_widths=(22, 18, 70, 20, 12, 18, 35),
        text_align=("LEFT", "LEFT", "LEFT", "LEFT", "RIGHT", "LEFT", "RIGHT"),
        line_height=5,
        headings_style=heading,
    ) as table:
        table.row(
            [text(t) for t in ("Date", "Code", "Description", "Modifiers", "Units", "Dx", "Charge")]
        )
        for line in bill["lines"]:
            table.row(
                [
                    text(bill["date_of_service"]),
                    text(line["code"]),
                    text(line["description"]),
                    text(" ".join(line["modifiers"])),
                    text(str(line["units"])),
                    text(line["diagnosis_pointers"]),
                    text(money(line["charge"])),
                ]
            )
    pdf.ln(3)
    pdf.set_font(font, size=10)
    for label, value in (
        ("Total charges", bill["total_charges"]),
        ("Amount paid", bill["amount_paid"]),
        ("Balance due", bill["balance_due"]),
    ):
        pdf.cell(160, 6, text(label))
        pdf.cell(0, 6, text(money(value)), align="R", new_x="LMARGIN", new_y="NEXT")
    pdf.ln(10)
    pdf.cell(0, 6, text(bill["signature"]), new_x="LMARGIN", new_y="NEXT")
    return bytes(pdf.output())


def _named(provider: dict[str, Any]) -> str:
    credentials = provider["credentials"]
    return f"{provider['name']}, {credentials}" if credentials else str(provider["name"])


def pdf_response(bill: dict[str, Any]) -> Response:
    response = Response(render_pdf(bill), mimetype="application/pdf")
    response.headers["Content-Disposition"] = (
        f'attachment; filename="superbill-{bill["invoice_number"]}.pdf"'
    )
    return response
