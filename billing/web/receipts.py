"""Receipts (superbills) a patient can file with an insurer or an HSA/FSA: HTML and PDF."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from flask import Response, current_app
from fpdf import FPDF

from billing.adapters.models import Invoice, InvoiceLine, Payment
from billing.domain.dates import clinic_date
from billing.domain.money import Money
from billing.domain.policy import FEE, PACKAGE
from billing.services.payments.balance import SHARED_BY
from billing.web import plans
from billing.web.plans import PlanShown
from schemas.discounts import discounts_of

UNICODE_FONT = Path("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf")


@dataclass(frozen=True, slots=True)
class ReceiptLine:
    description: str
    codes: list[str]
    amount: str  # the price before discounts
    discounts: list[tuple[str, str]] = field(default_factory=list)  # what, and "-$75.00"


@dataclass(frozen=True, slots=True)
class Receipt:
    clinic_name: str
    clinic_address: str
    clinic_tax_id: str
    invoice_number: str
    patient_name: str
    patient_id: str
    date_of_service: str
    lines: list[ReceiptLine]
    total: str
    amount_paid: str
    amount_refunded: str | None
    payment_date: str | None
    card: str | None
    # Each payment (date, how, amount) when there were several or not all by card, and
    # what is still owed when the bill was paid in part.
    payments: list[tuple[str, str, str]] = field(default_factory=list)
    balance_due: str | None = None
    # What credit notes and write-offs took off the total ("-$150.00"), when anything.
    credited: str | None = None
    written_off: str | None = None
    plan: PlanShown | None = None


def build_receipt(invoice: Invoice, payments: list[Payment], config: dict[str, Any]) -> Receipt:
    """What the receipt says, formatted for people."""
    payment = payments[0] if payments else None
    codes: dict[str, list[str]] = config["BILLING_CODES"]
    zone = config["CLINIC_ZONE"]

    def money(amount: int) -> str:
        return Money(amount, invoice.currency).format()

    paid_at = payment.paid_at if payment is not None else None
    card = how(payment) if payment is not None and payment.card_last4 else None
    return Receipt(
        clinic_name=config["CLINIC_NAME"],
        clinic_address=config["CLINIC_ADDRESS"],
        clinic_tax_id=config["CLINIC_TAX_ID"],
        invoice_number=invoice.number,
        patient_name=invoice.patient_name,
        patient_id=invoice.patient_id,
        date_of_service=clinic_date(invoice.scheduled_at, zone=zone),
        lines=[
            ReceiptLine(
                line.description,
                # A fee or a package is no treatment: its own code, not procedure codes.
                [line.billing_code]
                if invoice.kind in (FEE, PACKAGE) and line.billing_code
                else codes.get(line.session_type, []),
                money(line.base_amount if line.base_amount is not None else line.amount),
                [
                    (discount["description"], money(-discount["amount"]))
                    for discount in discounts_of(line)
                ]
                + _paid_with_credits(line, money),
            )
            for line in invoice.lines
        ],
        total=money(invoice.total),
        amount_paid=money(invoice.amount_paid),
        amount_refunded=money(invoice.amount_refunded) if invoice.amount_refunded else None,
        payment_date=clinic_date(paid_at, zone=zone) if paid_at else None,
        card=card,
        payments=[
            (clinic_date(when, zone=zone) if when else "", how(each), money(each.amount))
            for each in payments
            # Money taken at the desk is dated when it came in, not when it was typed in.
            for when in [each.received_at or each.paid_at]
        ]
        if len(payments) > 1 or (payment is not None and payment.card_last4 is None)
        else [],
        balance_due=money(invoice.balance_due) if invoice.balance_due > 0 else None,
        credited=money(-invoice.amount_credited) if invoice.amount_credited else None,
        written_off=money(-invoice.amount_written_off) if invoice.amount_written_off else None,
        plan=plans.shown(invoice.plan, zone) if invoice.balance_due > 0 else None,
    )


def how(payment: Payment) -> str:
    """How a payment was made, as a patient reads it on a receipt."""
    if payment.card_last4 and payment.source == "us_bank_account":
        return f"Bank account ending {payment.card_last4} ({payment.card_brand or 'bank'})"
    if payment.card_last4:
        return f"{(payment.card_brand or 'card').title()} ending {payment.card_last4}"
    reference = f" {payment.reference}" if payment.reference else ""
    if payment.method == "cash":
        return "Cash"
    if payment.method == "check":
        return f"Check{reference}"
    if payment.method == "external":
        return f"Card at the desk{reference}"
    if payment.method == "account_credit" and (payment.reference or "").startswith(SHARED_BY):
        return str(payment.reference).removeprefix(SHARED_BY) + ", paid with other bills"
    if payment.method == "account_credit":
        return "Account credit"
    if payment.method == "gift_card":
        return "Gift card"
    return "Card"


def _paid_with_credits(line: InvoiceLine, money: Callable[[int], str]) -> list[tuple[str, str]]:
    if not line.credit_units:
        return []
    count = f"{line.credits_used:g}"
    noun = "credit" if line.credits_used <= 1 else "credits"
    return [(f"Paid with {count} IV {noun} of a package", money(-(line.base_amount or 0)))]


def render_pdf(receipt: Receipt) -> bytes:
    """The receipt as a one-page PDF."""
    pdf = FPDF(format="A4")
    pdf.set_title(f"Receipt {receipt.invoice_number}")
    pdf.add_page()
    font = pdf_font(pdf)
    text = pdf_text(font)
    pdf.set_font(font, size=18)
    pdf.cell(0, 10, text(receipt.clinic_name), new_x="LMARGIN", new_y="NEXT")
    pdf.set_font(font, size=10)
    for line in (receipt.clinic_address, f"Tax id: {receipt.clinic_tax_id}"):
        pdf.cell(0, 5, text(line), new_x="LMARGIN", new_y="NEXT")
    pdf.ln(6)
    pdf.set_font(font, size=14)
    pdf.cell(
        0, 8, text(f"Receipt for invoice {receipt.invoice_number}"), new_x="LMARGIN", new_y="NEXT"
    )
    pdf.set_font(font, size=10)
    for label, value in (
        ("Patient", f"{receipt.patient_name} ({receipt.patient_id})"),
        ("Date of service", receipt.date_of_service),
    ):
        pdf.cell(0, 6, text(f"{label}: {value}"), new_x="LMARGIN", new_y="NEXT")
    pdf.ln(4)
    for item in receipt.lines:
        pdf.set_font(font, size=11)
        pdf.cell(140, 7, text(item.description))
        pdf.cell(0, 7, text(item.amount), align="R", new_x="LMARGIN", new_y="NEXT")
        pdf.set_font(font, size=9)
        for code in item.codes:
            pdf.cell(0, 5, text(f"    {code}"), new_x="LMARGIN", new_y="NEXT")
        pdf.set_font(font, size=11)
        for description, amount in item.discounts:
            pdf.cell(140, 7, text(f"    {description}"))
            pdf.cell(0, 7, text(amount), align="R", new_x="LMARGIN", new_y="NEXT")
    pdf.ln(3)
    pdf.set_font(font, size=11)
    rows = [("Total", receipt.total)]
    if receipt.credited:
        rows.append(("Credit notes", receipt.credited))
    if receipt.written_off:
        rows.append(("Written off", receipt.written_off))
    rows.append(("Amount paid", receipt.amount_paid))
    if receipt.amount_refunded:
        rows.append(("Refunded", receipt.amount_refunded))
    if receipt.balance_due:
        rows.append(("Balance due", receipt.balance_due))
    for label, value in rows:
        pdf.cell(140, 7, text(label))
        pdf.cell(0, 7, text(value), align="R", new_x="LMARGIN", new_y="NEXT")
    pdf.ln(3)
    pdf.set_font(font, size=10)
    if receipt.payments:
        pdf.cell(0, 6, text("Payments"), new_x="LMARGIN", new_y="NEXT")
        for day, way, amount in receipt.payments:
            pdf.cell(40, 6, text(f"    {day}"))
            pdf.cell(100, 6, text(way))
            pdf.cell(0, 6, text(amount), align="R", new_x="LMARGIN", new_y="NEXT")
    else:
        if receipt.payment_date:
            pdf.cell(0, 6, text(f"Paid on {receipt.payment_date}"), new_x="LMARGIN", new_y="NEXT")
        if receipt.card:
            pdf.cell(0, 6, text(f"Card: {receipt.card}"), new_x="LMARGIN", new_y="NEXT")
    if receipt.plan is not None:
        pdf.ln(3)
        pdf.multi_cell(0, 5, text(receipt.plan.summary), new_x="LMARGIN", new_y="NEXT")
        for day, amount, status in receipt.plan.rows:
            pdf.cell(40, 6, text(f"    {day}"))
            pdf.cell(30, 6, text(amount), align="R")
            pdf.cell(0, 6, text(f"    {status}"), new_x="LMARGIN", new_y="NEXT")
    return bytes(pdf.output())


def pdf_font(pdf: FPDF) -> str:
    """DejaVu for any patient's name where the system has it; else the PDF core font."""
    if UNICODE_FONT.exists():
        pdf.add_font("DejaVu", fname=str(UNICODE_FONT))
        return "DejaVu"
    return "Helvetica"


def pdf_text(font: str) -> Callable[[str], str]:
    """The core font knows Latin-1 only: anything else prints as '?'."""

    def latin1(value: str) -> str:
        return value.encode("latin-1", "replace").decode("latin-1")

    return str if font == "DejaVu" else latin1


def pdf_response(invoice: Invoice, payments: list[Payment]) -> Response:
    """The receipt PDF as a download named after the invoice."""
    body = render_pdf(build_receipt(invoice, payments, current_app.config))
    response = Response(body, mimetype="application/pdf")
    response.headers["Content-Disposition"] = f'attachment; filename="receipt-{invoice.number}.pdf"'
    return response
