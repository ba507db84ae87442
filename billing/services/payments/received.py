"""Money the front desk received outside Stripe: cash, a check, another terminal or
processor (`external`). Recorded as it arrived, in the ledger at once; never edited. A
payment that never arrives after all (a check that bounced) is reversed by a recorded
reversal, which reopens what it paid.

Like a card, it never collects beyond what the invoice still owes: the pay page's
PaymentIntent is cancelled at Stripe first (the patient may have just paid with it: then
409, and the payment is in the ledger), and the amount is checked under the invoice's lock
against the balance due, less what a charge in flight (a card on file being charged, the
pay page's payment Stripe is processing) may still collect.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from billing.adapters.models import Invoice, LedgerEntry, Payment, utcnow
from billing.adapters.stripe_gateway import StripeGateway
from billing.domain import statuses
from billing.domain.errors import Conflict, NotFound, field_error
from billing.domain.money import Money
from billing.domain.statuses import REVERSED, SUCCEEDED
from billing.services import idempotency
from billing.services.access import audit
from billing.services.bookings import holds
from billing.services.idempotency import IdempotencyRequest
from billing.services.integrations import events
from billing.services.invoicing import ledger
from billing.services.invoicing.invoices import get_invoice
from billing.services.payments.charges import (
    announce,
    audit_payment,
    cancel_online,
    check_remainder,
    collectable_now,
    get_payment,
    has_live_online,
)

RECEIVED_METHODS = ("cash", "check", "external")
STAND_ASIDE_ATTEMPTS = 3  # a pay page that keeps making intents meanwhile: 409 after this
# Money handed over at check-in may come in a little before the invoice is made; no more.
EARLIEST_BEFORE = timedelta(days=1)


def record_payment(
    session: Session,
    gateway: StripeGateway | None,
    invoice_id: str,
    method: str,
    amount: int | None,
    reference: str | None,
    received_at: datetime | None,
    request: IdempotencyRequest,
) -> Payment:
    """Record money received at the desk against an invoice (`amount`: by default what it
    still owes); the payment, succeeded, its money in the ledger. The pay page stands
    aside first, through `gateway` (without one, a live pay page is 409)."""
    for _ in range(STAND_ASIDE_ATTEMPTS):
        claim = idempotency.claim(session, request, "payment")
        if claim.replay_of is not None:  # answered as the first time, pay page or not
            return _replayed(session, claim.replay_of)
        invoice = get_invoice(session, invoice_id, for_update=True)
        if not has_live_online(session, invoice.id):  # under the invoice's lock
            break
        # The pay page holds a PaymentIntent the patient could still pay: it is cancelled
        # at Stripe first, outside the lock (409 if the patient just paid), then again.
        session.rollback()
        if gateway is None:
            raise Conflict(
                "payment_in_progress", "The pay page is open and Stripe cannot be reached."
            )
        cancel_online(session, gateway, invoice_id)
    else:
        raise Conflict("payment_in_progress", "The pay page keeps starting payments; try again.")
    if invoice.status == statuses.VOID:
        raise Conflict("invoice_not_payable", f"Invoice {invoice.number} is void.")
    holds.check_not_held(session, invoice)
    collectable = collectable_now(session, invoice)
    amount = collectable.amount if amount is None else amount
    if collectable.amount <= 0:
        raise Conflict(
            "invoice_not_payable", f"Invoice {invoice.number} owes nothing ({invoice.status})."
        )
    if amount > collectable.amount:
        raise field_error(
            "amount_exceeds_balance",
            "amount",
            f"At most {collectable.amount} can be received on invoice {invoice.number}"
            f" ({_owed_words(invoice, collectable)}).",
        )
    check_remainder(invoice, collectable.amount, amount)
    if method == "check" and not reference:
        raise field_error("reference_required", "reference", "Give the check's number.")
    now = utcnow()
    if received_at is not None and received_at < invoice.created_at - EARLIEST_BEFORE:
        raise field_error(
            "received_before_invoice",
            "received_at",
            f"Invoice {invoice.number} was made on {invoice.created_at:%Y-%m-%d}; money for it"
            " cannot have come in days before.",
        )
    payment = Payment(
        invoice_id=invoice.id,
        method=method,
        status=SUCCEEDED,
        amount=amount,
        currency=invoice.currency,
        reference=reference,
        received_at=received_at or now,
        recorded_by=audit.current_actor().name[:254],
        paid_at=now,
    )
    session.add(payment)
    session.flush()
    status_before = invoice.status
    ledger.record(
        session,
        invoice,
        ledger.RECEIVED,
        amount,
        payment.id,
        occurred_at=payment.received_at,
        method=method,
    )
    audit_payment(session, payment, "payment.recorded")
    events.publish(session, "payment.recorded", "payment", payment)
    announce(session, invoice, status_before, moved=True)
    idempotency.complete(session, claim, payment.id)
    session.commit()
    return payment


def desk_money(session: Session, invoice_id: str) -> int:
    """What the desk received on the invoice outside Stripe, less what was reversed."""
    found = session.scalar(
        select(func.coalesce(func.sum(ledger.paid_net(LedgerEntry.kind, LedgerEntry.amount)), 0))
        .where(LedgerEntry.invoice_id == invoice_id)
        .where(LedgerEntry.kind.in_((ledger.RECEIVED, ledger.REVERSAL)))
    )
    return int(found or 0)


def _replayed(session: Session, payment_id: str) -> Payment:
    """The payment a replayed Idempotency-Key made the first time."""
    payment = get_payment(session, payment_id)
    session.commit()
    return payment


def reverse_payment(
    session: Session, invoice_id: str, payment_id: str, reason: str, request: IdempotencyRequest
) -> Payment:
    """Money recorded as received that never arrived (a check that bounced, a terminal's
    payment voided): a reversal in the ledger reopens what it paid. Reversing twice
    changes nothing; a payment made through Stripe is refunded instead."""
    claim = idempotency.claim(session, request, "payment")
    if claim.replay_of is not None:
        return _replayed(session, claim.replay_of)
    invoice = get_invoice(session, invoice_id, for_update=True)
    found = session.scalars(
        select(Payment)
        .where(Payment.id == payment_id, Payment.invoice_id == invoice.id)
        .with_for_update()
        .execution_options(populate_existing=True)
    ).one_or_none()
    if found is None:
        raise NotFound("payment_not_found", f"No payment {payment_id!r} on this invoice.")
    payment = found
    if payment.method not in RECEIVED_METHODS:
        raise Conflict(
            "payment_not_reversible",
            f"Payment {payment.id} was made through Stripe: refund it instead.",
        )
    if payment.status != REVERSED:
        status_before = invoice.status
        payment.status = REVERSED
        payment.reversed_at = utcnow()
        payment.reversal_reason = reason
        ledger.record(
            session,
            invoice,
            ledger.REVERSAL,
            payment.amount,
            payment.id,
            occurred_at=payment.reversed_at,
            method=payment.method,
        )
        audit_payment(session, payment, "payment.reversed")
        events.publish(session, "payment.reversed", "payment", payment)
        if status_before in statuses.SETTLED and invoice.status not in statuses.SETTLED:
            audit.record(
                session,
                "invoice.reopened",
                "invoice",
                invoice.id,
                number=invoice.number,
                payment_id=payment.id,
            )
    idempotency.complete(session, claim, payment.id)
    session.commit()
    return payment


def _owed_words(invoice: Invoice, collectable: Money) -> str:
    due = invoice.balance_due
    if collectable.amount == due:
        return f"its balance due is {due}"
    return f"its balance due is {due}, of which {due - collectable.amount} is being charged now"
