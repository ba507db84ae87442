"""A Good Faith Estimate as the API shows it and as a PDF the patient keeps."""

from __future__ import annotations

from typing import Any

from flask import Response, current_app
from fpdf import FPDF

from billing.adapters.estimate_models import Estimate
from billing.domain import estimates
from billing.domain.dates import clinic_date
from billing.domain.money import Money
from billing.services.invoicing.estimates import items_of
from billing.web.receipts import pdf_font, pdf_text

ITEM_WIDTHS = (150, 40)  # mm of an A4 page's 190 between margins


def view_of(estimate: Estimate, config: dict[str, Any], clinical: bool = True) -> dict[str, Any]:
    """Everything the rule asks an estimate to say, with the clinic's details; without
    `clinical` (a caller with no clinical scope), less the patient's date of birth and
    diagnoses, which only the PDF the patient keeps and clinical staff see."""
    threshold = estimates.dispute_threshold(
        estimate.currency, config["ESTIMATE_DISPUTE_THRESHOLDS"]
    )
    return {
        "id": estimate.id,
        "quote_id": estimate.quote_id,
        "booking_id": estimate.booking_id,
        "patient": {
            "patient_id": estimate.patient_id,
            "name": estimate.patient_name,
            "date_of_birth": estimate.date_of_birth if clinical else None,
        },
        "diagnosis_codes": [c for c in estimate.diagnosis_codes.split(",") if c]
        if clinical
        else [],
        "provider": {
            "name": config["CLINIC_NAME"],
            "npi": estimate.provider_npi or None,
            "tax_id": config["CLINIC_TAX_ID"],
            "address": config["CLINIC_ADDRESS"],
            "phone": config["CLINIC_PHONE"],
            "email": config["CLINIC_EMAIL"],
        },
        "scheduled_at": estimate.scheduled_at,
        "sessions": estimate.sessions,
        "course_months": estimate.course_months,
        "package_code": estimate.package_code or None,
        "currency": estimate.currency,
        "items": items_of(estimate),
        "total": estimate.total,
        "issued_at": estimate.issued_at,
        "due_by": estimate.due_by,
        "on_time": estimate.on_time,
        "requested": estimate.requested,
        "dispute_threshold": threshold.amount,
        "notice": estimates.NOTICE,
        "replaces_id": estimate.replaces_id,
        "may_differ": estimates.MAY_DIFFER,
        "scheduled_separately": estimates.SEPARATELY,
    }


def render_pdf(view: dict[str, Any], zone: Any) -> bytes:
    """The estimate on one page, headed as the rule names it."""
    currency = view["currency"]

    def money(amount: int) -> str:
        return Money(amount, currency).format()

    pdf = FPDF(format="A4")
    pdf.set_title(f"Good Faith Estimate {view['id']}")
    pdf.add_page()
    font = pdf_font(pdf)
    text = pdf_text(font)
    pdf.set_font(font, size=18)
    pdf.cell(0, 10, text("Good Faith Estimate"), new_x="LMARGIN", new_y="NEXT")
    pdf.set_font(font, size=10)
    provider = view["provider"]
    for line in (
        provider["name"],
        provider["address"],
        f"Tax id: {provider['tax_id']}",
        f"{provider['phone']} · {provider['email']}",
    ):
        pdf.cell(0, 5, text(line), new_x="LMARGIN", new_y="NEXT")
    pdf.ln(4)
    born = view["patient"]["date_of_birth"]
    for label, value in (
        ("Patient", f"{view['patient']['name']} ({view['patient']['patient_id']})"),
        ("Date of birth", clinic_date(born) if born else "not given"),
        ("Convening provider", f"{provider['name']}, NPI {provider['npi'] or 'not set'}"),
        ("Diagnosis codes", ", ".join(view["diagnosis_codes"]) or "none known yet"),
        ("Scheduled for", clinic_date(view["scheduled_at"], zone=zone)),
        ("Date of this estimate", clinic_date(view["issued_at"], zone=zone)),
        *([("Updates the estimate", str(view["replaces_id"]))] if view.get("replaces_id") else []),
        ("Estimate number", view["id"]),
    ):
        pdf.cell(0, 6, text(f"{label}: {value}"), new_x="LMARGIN", new_y="NEXT")
    pdf.ln(4)
    pdf.set_font(font, size=12)
    pdf.cell(0, 8, text("Expected items and services"), new_x="LMARGIN", new_y="NEXT")
    pdf.set_font(font, size=10)
    # A table: a long description (a course with a sliding-scale discount) wraps within
    # its column, and never runs over its amount or off the page.
    with pdf.table(
        col_widths=ITEM_WIDTHS,
        text_align=("LEFT", "RIGHT"),
        v_align="TOP",
        first_row_as_headings=False,
        borders_layout="HORIZONTAL_LINES",
        line_height=5,
    ) as table:
        for item in view["items"]:
            what = [item["description"]]
            if item["quantity"] > 1:
                what.append(f"{item['quantity']} × {money(item['unit_amount'])}")
            what += list(item["codes"])
            table.row([text("\n".join(what)), text(money(item["amount"]))])
        table.row([text("Total expected charges"), text(money(view["total"]))])
    pdf.ln(4)
    pdf.set_font(font, size=9)
    for paragraph in (view["may_differ"], view["scheduled_separately"], view["notice"]):
        pdf.multi_cell(0, 5, text(paragraph), new_x="LMARGIN", new_y="NEXT")
        pdf.ln(2)
    return bytes(pdf.output())


def pdf_response(view: dict[str, Any]) -> Response:
    body = render_pdf(view, current_app.config["CLINIC_ZONE"])
    response = Response(body, mimetype="application/pdf")
    response.headers["Content-Disposition"] = (
        f'attachment; filename="good-faith-estimate-{view["id"]}.pdf"'
    )
    return response
