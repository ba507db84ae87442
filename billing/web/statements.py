"""A patient's statement as a PDF: the clinic (name, address, tax id), the period, and
per patient and currency the opening balance, each bill (with its billing codes),
payment, refund and correction with the running balance, the totals and the closing
balance. Long descriptions wrap within their column."""

from __future__ import annotations

from typing import Any

from flask import Response
from fpdf import FPDF
from fpdf.fonts import FontFace

from billing.domain.dates import clinic_date
from billing.services.portal.statements import Section, Statement
from billing.web.receipts import pdf_font, pdf_text

WIDTHS = (26, 104, 30, 30)  # date, what, amount, balance (mm, within A4's 190)


def render_statement(statement: Statement, config: dict[str, Any]) -> bytes:
    pdf = FPDF(format="A4")
    title = f"Statement {clinic_date(statement.first)} to {clinic_date(statement.last)}"
    pdf.set_title(title)
    pdf.set_auto_page_break(auto=True, margin=15)
    pdf.add_page()
    font = pdf_font(pdf)
    text = pdf_text(font)
    pdf.set_font(font, size=18)
    pdf.cell(0, 10, text(config["CLINIC_NAME"]), new_x="LMARGIN", new_y="NEXT")
    pdf.set_font(font, size=10)
    for line in (config["CLINIC_ADDRESS"], f"Tax id: {config['CLINIC_TAX_ID']}"):
        pdf.cell(0, 5, text(line), new_x="LMARGIN", new_y="NEXT")
    pdf.ln(5)
    pdf.set_font(font, size=14)
    pdf.cell(0, 8, text(title), new_x="LMARGIN", new_y="NEXT")
    if not statement.sections:
        pdf.set_font(font, size=11)
        pdf.cell(0, 8, text("Nothing was billed or paid in this period."), new_x="LMARGIN")
    for section in statement.sections:
        _section(pdf, font, section)
    return bytes(pdf.output())


def _section(pdf: FPDF, font: str, section: Section) -> None:
    text = pdf_text(font)
    money = section.money
    pdf.ln(4)
    pdf.set_font(font, size=12)
    heading = f"{section.patient_name} ({section.patient_id}), {section.currency.upper()}"
    pdf.cell(0, 7, text(heading), new_x="LMARGIN", new_y="NEXT")
    pdf.set_font(font, size=9)
    bold = FontFace(emphasis="BOLD") if font != "DejaVu" else None
    with pdf.table(
        col_widths=WIDTHS,
        text_align=("LEFT", "LEFT", "RIGHT", "RIGHT"),
        headings_style=bold or FontFace(),
        line_height=5,
    ) as table:
        table.row([text(t) for t in ("Date", "Description", "Amount", "Balance")])
        table.row(["", text("Opening balance"), "", text(money(section.opening))])
        for row, balance in section.rows:
            what = row.description + ("\n" + ", ".join(row.codes) if row.codes else "")
            table.row(
                [
                    text(clinic_date(row.day)),
                    text(what),
                    text(money(row.amount)),
                    text(money(balance)),
                ]
            )
    pdf.ln(2)
    pdf.set_font(font, size=10)
    for label, value in (
        ("Added: bills, and money given back to you", section.total(positive=True)),
        ("Taken off: payments, credit notes and credit", section.total(positive=False)),
        ("Closing balance (owed, less your credit)", section.closing),
    ):
        pdf.cell(WIDTHS[0] + WIDTHS[1] + WIDTHS[2], 6, text(label))
        pdf.cell(WIDTHS[3], 6, text(money(value)), align="R", new_x="LMARGIN", new_y="NEXT")


def statement_response(statement: Statement, config: dict[str, Any]) -> Response:
    body = render_statement(statement, config)
    response = Response(body, mimetype="application/pdf")
    name = f"statement-{statement.first.isoformat()}-to-{statement.last.isoformat()}.pdf"
    response.headers["Content-Disposition"] = f'attachment; filename="{name}"'
    return response
