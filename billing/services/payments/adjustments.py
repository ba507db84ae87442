"""Corrections of an issued invoice, which is never edited: a credit note lowers what it
owes (a price corrected, a service not given in full), and what was already paid beyond
the new amount goes back (to the cards, or to the patient's credit, as OVERPAYMENTS
says; money received at the desk always to credit); a write-off closes a balance the
clinic will not collect (bad debt, a small balance, hardship). Each names who approved it
and why, is in the audit trail, and is told to other systems (`credit_note.created`,
`invoice.written_off`).

Both are taken under the invoice's lock with nothing in flight on it: the pay page's
PaymentIntent is cancelled at Stripe first, and a charge or refund still in progress is
409, so what was paid is known when the correction is counted.
"""

from __future__ import annotations

import logging

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from billing.adapters.models import Invoice, InvoiceAdjustment, Payment, Refund, new_id, utcnow
from billing.adapters.stripe_gateway import StripeGateway
from billing.domain import policy, statuses
from billing.domain.errors import Conflict, ServiceError, field_error
from billing.services import idempotency
from billing.services.access import audit
from billing.services.idempotency import IdempotencyRequest
from billing.services.integrations import events
from billing.services.invoicing import ledger
from billing.services.payments import account, refunds
from billing.services.payments.charges import announce, check_nothing_charging
from billing.services.payments.overpayments import OVERPAYMENT
from billing.services.payments.received import locked_without_pay_page

log = logging.getLogger("billing.payments")

CREDIT_NOTE, WRITE_OFF = "credit_note", "write_off"
WRITE_OFF_CATEGORIES = ("bad_debt", "small_balance", "hardship", "other")
_NUMBERED = {CREDIT_NOTE: "CN", WRITE_OFF: "WO"}


def credit_note(
    session: Session,
    gateway: StripeGateway | None,
    invoice_id: str,
    amount: int,
    reason: str,
    approved_by: str,
    request: IdempotencyRequest,
) -> InvoiceAdjustment:
    """Lower what the invoice owes by `amount`; what was paid beyond the new amount goes
    back to the cards (OVERPAYMENTS=refund) or to the patient's credit."""
    claim, invoice = locked_without_pay_page(session, gateway, invoice_id, request, "adjustment")
    assert claim is not None  # a request always has its key
    if invoice is None:
        return _replayed(session, claim)
    _adjustable(invoice)
    if invoice.status in statuses.CLOSED:
        raise Conflict("invoice_not_adjustable", f"Invoice {invoice.number} is {invoice.status}.")
    _nothing_in_flight(session, invoice)
    if amount > invoice.amount_owed:
        raise field_error(
            "amount_exceeds_invoice",
            "amount",
            f"Invoice {invoice.number} owes {invoice.amount_owed} after its credit notes and"
            " write-offs; a credit note cannot take off more.",
        )
    status_before = invoice.status
    note = _adjustment(session, invoice, CREDIT_NOTE, amount, reason, approved_by, None)
    beyond = max(0, ledger.held(session, invoice.id) - invoice.amount_owed)
    to_send: list[str] = []
    if beyond and not account.keeps_overpayments():
        # What the patient's credit paid (maybe goodwill) stays credit, never a card's.
        by_card = max(0, beyond - account.credit_paid(session, invoice.id))
        to_send = _refund_to_cards(session, invoice, note, by_card) if by_card else []
        note.refunded = sum(session.get_one(Refund, rid).amount for rid in to_send)
    left = beyond - note.refunded  # desk money, or all of it when credit is kept
    if left:
        account.move_to_credit(
            session,
            invoice,
            left,
            account.CREDIT_NOTE,
            f"Credit note {note.number} on invoice {invoice.number}.",
            adjustment_id=note.id,
        )
        note.to_credit = left
    ledger.settle(session, invoice)
    _audited(
        session,
        "credit_note.created",
        note,
        credit_note_id=note.id,
        refunded=note.refunded,
        to_credit=note.to_credit,
    )
    events.publish(session, "credit_note.created", "credit_note", note)
    announce(session, invoice, status_before)
    idempotency.complete(session, claim, note.id)
    session.commit()
    for refund_id in to_send:
        _send(session, gateway, refund_id)
    return note


def write_off(
    session: Session,
    gateway: StripeGateway | None,
    invoice_id: str,
    amount: int | None,
    category: str,
    reason: str,
    approved_by: str,
    request: IdempotencyRequest,
) -> InvoiceAdjustment:
    """Close `amount` of what the invoice still owes (by default all of it) without
    collecting it; once nothing is owed, the invoice reads `written_off`."""
    claim, invoice = locked_without_pay_page(session, gateway, invoice_id, request, "adjustment")
    assert claim is not None  # a request always has its key
    if invoice is None:
        return _replayed(session, claim)
    _adjustable(invoice)
    if not statuses.is_payable(invoice.status) and invoice.status != statuses.PROCESSING:
        raise Conflict(
            "invoice_not_payable", f"Invoice {invoice.number} owes nothing ({invoice.status})."
        )
    _nothing_in_flight(session, invoice)
    due = invoice.balance_due
    amount = due if amount is None else amount
    if amount > due:
        raise field_error(
            "amount_exceeds_balance",
            "amount",
            f"Invoice {invoice.number} owes {due}; no more can be written off.",
        )
    status_before = invoice.status
    written = _adjustment(session, invoice, WRITE_OFF, amount, reason, approved_by, category)
    ledger.settle(session, invoice)
    if invoice.balance_due == 0:  # the write-off closed it (a later payment never does)
        invoice.status = statuses.WRITTEN_OFF
    _audited(session, "invoice.written_off", written, write_off_id=written.id, category=category)
    if invoice.status == statuses.WRITTEN_OFF and status_before != invoice.status:
        session.flush()
        session.refresh(invoice)
        events.publish(session, "invoice.written_off", "invoice", invoice)
    idempotency.complete(session, claim, written.id)
    session.commit()
    return written


def _adjustment(
    session: Session,
    invoice: Invoice,
    kind: str,
    amount: int,
    reason: str,
    approved_by: str,
    category: str | None,
) -> InvoiceAdjustment:
    """The adjustment, numbered after its invoice (`2026-000123-CN1`) under its lock."""
    count = session.scalar(
        select(func.count())
        .select_from(InvoiceAdjustment)
        .where(InvoiceAdjustment.invoice_id == invoice.id, InvoiceAdjustment.kind == kind)
    )
    made = InvoiceAdjustment(
        id=new_id("cn" if kind == CREDIT_NOTE else "wo"),
        number=f"{invoice.number}-{_NUMBERED[kind]}{int(count or 0) + 1}",
        invoice_id=invoice.id,
        kind=kind,
        amount=amount,
        currency=invoice.currency,
        category=category,
        reason=reason,
        approved_by=approved_by,
        created_by=audit.current_actor().name[:254],
        created_at=utcnow(),
    )
    session.add(made)
    session.flush()
    session.refresh(invoice, ["amount_credited", "amount_written_off", "amount_paid"])
    return made


def _audited(session: Session, action: str, made: InvoiceAdjustment, **details: object) -> None:
    """The adjustment in its invoice's audit trail: what, how much, why and who approved."""
    audit.record(
        session,
        action,
        "invoice",
        made.invoice_id,
        **details,
        number=made.number,
        amount=made.amount,
        currency=made.currency,
        reason=made.reason,
        approved_by=made.approved_by,
    )


def _adjustable(invoice: Invoice) -> None:
    """A package's, a gift card's or a membership period's invoice sold something that
    outlives it (credits, a card's value, days of membership): it is refunded through that
    instead, never corrected."""
    if invoice.kind in policy.SOLD:
        raise Conflict(
            "invoice_not_adjustable",
            f"Invoice {invoice.number} sold a {invoice.kind.replace('_', ' ')}: refund what is"
            " unused of it instead.",
        )


def _nothing_in_flight(session: Session, invoice: Invoice) -> None:
    """409 while a charge or a refund of the invoice is still in progress."""
    check_nothing_charging(session, invoice.id, refunds.STRIPE_METHODS)
    refunding = session.scalar(
        select(Refund.id).where(
            Refund.invoice_id == invoice.id,
            Refund.status.in_((statuses.PENDING, statuses.UNKNOWN)),
        )
    )
    if refunding is not None:
        raise Conflict("refund_in_progress", f"Refund {refunding} of this invoice is in progress.")


def _refund_to_cards(
    session: Session, invoice: Invoice, note: InvoiceAdjustment, beyond: int
) -> list[str]:
    """Reserve refunds of `beyond` to the invoice's card payments, newest first, none
    beyond what each can still give back; their ids (sent after the commit)."""
    paid_by_card = session.scalars(
        select(Payment)
        .where(
            Payment.invoice_id == invoice.id,
            Payment.method.in_(refunds.STRIPE_METHODS),
            Payment.status == statuses.SUCCEEDED,
        )
        .order_by(Payment.paid_at.desc(), Payment.id)
    ).all()
    reserved = []
    for payment in paid_by_card:
        amount = min(beyond, refunds.refundable(session, payment).amount)
        if amount <= 0:
            continue
        refund = Refund(
            id=new_id("rf"),
            invoice_id=invoice.id,
            payment_id=payment.id,
            amount=amount,
            currency=invoice.currency,
            reason=f"Credit note {note.number}: {note.reason}"[:500],
            kind=OVERPAYMENT,
            status=statuses.PENDING,
        )
        session.add(refund)
        session.flush()
        refunds.audit_refund(session, refund, "refund.created", credit_note_id=note.id)
        reserved.append(refund.id)
        beyond -= amount
        if beyond == 0:
            break
    return reserved


def _send(session: Session, gateway: StripeGateway | None, refund_id: str) -> None:
    """Send a credit note's refund now; if Stripe cannot take it, recovery sends it later."""
    if gateway is None:
        return
    try:
        refunds.send(session, gateway, refund_id)
    except ServiceError as error:
        log.warning("credit note refund %s not sent yet: %s", refund_id, error.detail)


def _replayed(session: Session, claim: idempotency.Claim) -> InvoiceAdjustment:
    assert claim.replay_of is not None
    found = session.get_one(InvoiceAdjustment, claim.replay_of)
    session.commit()
    return found
