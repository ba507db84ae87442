"""Refunds: full or partial, several allowed, never more than a charge can still give back
(what it collected less what was refunded, is being refunded, or is disputed). Stripe's
stand-in checks none of that; we do.

Every refund in flight has an owner that settles it: the request; a replay of its key;
the next refund of the same invoice, which looks unknown ones up at Stripe first; and
`payments reconcile-pending`. A refund Stripe refused, or that never reached it, is
marked failed and its amount is free again; so is one Stripe made and later reported
failed (the card's bank returned it), whose money the ledger then counts back.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from billing.adapters import metrics
from billing.adapters.models import Invoice, LedgerEntry, Payment, Refund, utcnow
from billing.adapters.stripe_gateway import RefundResult, StripeGateway
from billing.domain.errors import Conflict, ServiceError, Unprocessable, field_error
from billing.domain.events import REFUND_EVENTS
from billing.domain.money import Money
from billing.domain.policy import GIFT_CARD, MEMBERSHIP, PACKAGE
from billing.domain.statuses import FAILED, PENDING, SUCCEEDED, UNKNOWN
from billing.services import idempotency
from billing.services.access import audit
from billing.services.idempotency import REPLAY_WAIT, STALE_AFTER, IdempotencyRequest
from billing.services.integrations import events
from billing.services.invoicing import ledger
from billing.services.invoicing.invoices import get_invoice
from billing.services.payments import gift_cards

RESERVING = (SUCCEEDED, PENDING, UNKNOWN)  # refunds whose amount is spoken for
# Payments a Stripe refund can give back.
STRIPE_METHODS = ("card_on_file", "bank_debit", "online", "balance")
# Stripe's statuses of a refund it counts in the charge's amount_refunded.
COUNTED_AT_STRIPE = ("succeeded", "pending")
# Stripe's `failure_reason` of a refund, as finance reads it.
FAILURE_REASONS = {
    "expired_or_canceled_card": "The card was expired or cancelled",
    "lost_or_stolen_card": "The card was reported lost or stolen",
    "declined": "The card's bank declined the refund",
    "insufficient_funds": "The clinic's Stripe balance could not cover the refund",
    "charge_for_pending_refund_disputed": "The charge was disputed while the refund was pending",
    "merchant_request": "The refund was cancelled at the clinic's request",
}
PENDING_AGAIN = {"status": PENDING}
# Called in the transaction that marks a refund failed (its invoice locked or not yet):
# what else must follow, such as credit that was refunded coming back (payments.account).
ON_FAILED: list[Callable[[Session, Refund], None]] = []
NEVER_SENT = {
    "status": FAILED,
    "failure_code": "not_sent",
    "failure_message": "The refund never reached Stripe; nothing was refunded.",
}


def get_refund(session: Session, refund_id: str) -> Refund:
    return session.scalars(
        select(Refund).where(Refund.id == refund_id).execution_options(populate_existing=True)
    ).one()


def refund_invoice(
    session: Session,
    gateway: StripeGateway,
    invoice_id: str,
    amount: int,
    reason: str,
    request: IdempotencyRequest,
    for_credits: bool = False,
    for_membership: bool = False,
) -> Refund:
    """Refund part or all of what an invoice's payment collected. A package's invoice is
    refunded only through its unused credits (`for_credits`), so no credit outlives the
    money that paid it."""
    claim = idempotency.claim(session, request, "refund")
    if claim.replay_of is not None:
        session.commit()
        return _replay(session, gateway, claim.replay_of)
    session.rollback()  # the key is taken again below, once earlier refunds are settled
    settle_unknown(session, gateway, invoice_id)

    claim = idempotency.claim(session, request, "refund")
    if claim.replay_of is not None:  # a concurrent copy of this request got there first
        session.commit()
        return _replay(session, gateway, claim.replay_of)
    invoice = get_invoice(session, invoice_id, for_update=True)
    if invoice.kind == PACKAGE and not for_credits:
        raise Conflict(
            "refund_package_credits",
            f"Invoice {invoice.number} sold a package: refund its unused credits with "
            "POST /v1/patients/{patient_id}/packages/{package_id}/refunds.",
        )
    if invoice.kind == MEMBERSHIP and not for_membership:
        raise Conflict(
            "refund_membership",
            f"Invoice {invoice.number} is a membership's fee: cancel the membership now "
            "(POST /v1/memberships/{id}/cancel) to refund its unused days.",
        )
    if invoice.kind == GIFT_CARD:  # only what is left on the card goes back to its buyer
        unused = gift_cards.balance(session, gift_cards.of_invoice(session, invoice.id))
        if amount > unused:
            raise field_error(
                "refund_exceeds_paid",
                "amount",
                f"Invoice {invoice.number} sold a gift card with {unused} left on it; what was"
                " spent cannot be refunded.",
            )
    payment, left = _most_refundable(session, invoice.id, invoice.currency)
    # Never more than the invoice holds: what a credit note or a cancellation moved to
    # the patient's credit is not the card's to get back as well.
    left = min(left, Money(max(0, ledger.held(session, invoice.id)), invoice.currency))
    if payment is None or payment.stripe_payment_intent_id is None:
        if invoice.amount_paid > 0:
            raise Conflict(
                "refund_outside_stripe",
                f"Invoice {invoice.number} was not paid through Stripe on this invoice (at "
                "the desk, with the patient's credit or a gift card, or by a card payment of "
                "several bills made on an older one): a credit note gives what credit paid "
                "back to the patient's credit, which a refund of credit sends to the card it "
                "came from; money from the desk goes back the way it came.",
            )
        raise Conflict("invoice_not_paid", f"Invoice {invoice.number} has no payment to refund.")
    if left < Money(amount, invoice.currency):
        raise field_error("refund_exceeds_paid", "amount", _refusal(session, invoice, left))
    refund = Refund(
        invoice_id=invoice.id,
        payment_id=payment.id,
        amount=amount,
        currency=invoice.currency,
        reason=reason,
        status=PENDING,
    )
    session.add(refund)
    session.flush()
    audit_refund(session, refund, "refund.created", reason=reason)
    idempotency.complete(session, claim, refund.id)
    session.commit()
    return outcome(send(session, gateway, refund.id))


def refundable(session: Session, payment: Payment) -> Money:
    """What one charge can still give back: collected, less refunds and disputes."""
    reserved = session.scalar(
        select(func.coalesce(func.sum(Refund.amount), 0)).where(
            Refund.payment_id == payment.id, Refund.status.in_(RESERVING)
        )
    )
    disputed: int | None = 0
    if payment.stripe_charge_id:
        disputed = session.scalar(
            select(func.coalesce(func.sum(LedgerEntry.amount), 0)).where(
                LedgerEntry.kind == ledger.DISPUTE,
                LedgerEntry.stripe_charge_id == payment.stripe_charge_id,
            )
        )
    currency = payment.currency
    return (
        Money(payment.amount, currency)
        - Money(int(reserved or 0), currency)
        - Money(int(disputed or 0), currency)
    )


def left_to_refund(session: Session, invoice: Invoice) -> Money:
    """What the invoice's payments could still give back (never more than it holds)."""
    left = _most_refundable(session, invoice.id, invoice.currency)[1]
    return min(left, Money(max(0, ledger.held(session, invoice.id)), invoice.currency))


def _most_refundable(
    session: Session, invoice_id: str, currency: str
) -> tuple[Payment | None, Money]:
    """The invoice's charge with the most left to give back (an invoice collected twice has
    two charges, one of them given back already)."""
    paid = session.scalars(  # what Stripe collected: money received at the desk goes back there
        select(Payment)
        .where(
            Payment.invoice_id == invoice_id,
            Payment.status == SUCCEEDED,
            Payment.method.in_(STRIPE_METHODS),
        )
        .order_by(Payment.paid_at)
    ).all()
    best: tuple[Payment | None, Money] = (None, Money.zero(currency))
    for payment in paid:
        left = refundable(session, payment)
        if best[0] is None or best[1] < left:
            best = (payment, left)
    return best


def _refusal(session: Session, invoice: Invoice, left: Money) -> str:
    held = session.scalar(
        select(func.coalesce(func.sum(Refund.amount), 0)).where(
            Refund.invoice_id == invoice.id, Refund.status.in_((PENDING, UNKNOWN))
        )
    )
    message = f"At most {left.amount} can be refunded on invoice {invoice.number}."
    if held:
        message += (
            f" {held} more is held by refunds Stripe has not confirmed yet; it is released"
            " within minutes if they never reached Stripe."
        )
    return message


def outcome(refund: Refund) -> Refund:
    """The refund, or Stripe's refusal as the error that names it."""
    if refund.status == FAILED:
        raise Unprocessable(
            refund.failure_code or "refund_failed",
            refund.failure_message or "Stripe did not make this refund; nothing was refunded.",
            extra={"refund_id": refund.id, "invoice_id": refund.invoice_id},
        )
    return refund


def send(session: Session, gateway: StripeGateway, refund_id: str) -> Refund:
    """Call Stripe for a recorded refund and commit what it answered."""
    refund = get_refund(session, refund_id)
    intent_id = _intent_of(session, refund)
    session.commit()  # no transaction stays open across the call to Stripe
    try:
        result = gateway.refund(
            refund_id=refund.id, payment_intent_id=intent_id, amount=refund.amount
        )
    except ServiceError as error:
        if error.outcome_unknown:
            _set_status(session, refund.id, UNKNOWN)
        else:  # Stripe answered: nothing was refunded, and the amount is free again
            _fail(session, refund.id, error.code, error.detail)
        raise
    return apply_refund(session, refund.id, result)


def apply_refund(session: Session, refund_id: str, result: RefundResult) -> Refund:
    """Commit what Stripe says of a refund, with its ledger entries and the invoice's new
    status; any number of times, in any order.

    Stripe counts a pending refund as refunded, and so do we: it is succeeded here, with
    its ledger entry. A refund Stripe reports failed (the card's bank returned it; it may
    have been pending or even succeeded before) is failed for good: as on Stripe's balance,
    a `refund_failure` entry gives back what its `refund` entry counted, and the invoice
    reads as its money then says. Stale news of it (pending, succeeded) changes nothing.
    """
    invoice_id = session.scalars(select(Refund.invoice_id).where(Refund.id == refund_id)).one()
    invoice = get_invoice(session, invoice_id, for_update=True)  # invoice first, always
    refund = session.scalars(
        select(Refund)
        .where(Refund.id == refund_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    ).one()
    refund.stripe_refund_id = refund.stripe_refund_id or result.id
    before = refund.status
    if result.status in COUNTED_AT_STRIPE and not _failed_at_stripe(session, result.id):
        refund.status = SUCCEEDED
        refund.failure_code = refund.failure_message = None
        ledger.record(session, invoice, ledger.REFUND, result.amount, result.id, result.charge_id)
    elif result.status == "failed" or (
        result.status not in COUNTED_AT_STRIPE and _counted(session, result.id)
    ):
        # Stripe's balance has both: the refund when it was made, its failure now.
        ledger.record(session, invoice, ledger.REFUND, result.amount, result.id, result.charge_id)
        ledger.record(
            session, invoice, ledger.REFUND_FAILURE, result.amount, result.id, result.charge_id
        )
        if before != FAILED or refund.failure_code in (None, NEVER_SENT["failure_code"]):
            refund.failure_code = result.failure_reason or "refund_failed"
            refund.failure_message = _failure_message(result.failure_reason)
        refund.status = FAILED
        _failed(session, refund)
    elif result.status in COUNTED_AT_STRIPE:
        pass  # stale: Stripe has since reported this refund failed
    elif refund.status != SUCCEEDED:
        refund.status = FAILED
        refund.failure_code = refund.failure_code or "refund_failed"
        _failed(session, refund)
    if refund.status != before:
        audit_refund(session, refund, f"refund.{refund.status}")
    session.commit()
    if refund.status != before:
        metrics.refund_outcome(refund.kind, refund.status)
    return refund


def _counted(session: Session, stripe_refund_id: str) -> bool:
    """Whether the ledger counted this Stripe refund as refunded."""
    return _entry(session, ledger.REFUND, stripe_refund_id)


def _failed_at_stripe(session: Session, stripe_refund_id: str) -> bool:
    """Whether the ledger has this Stripe refund's failure: it stays failed."""
    return _entry(session, ledger.REFUND_FAILURE, stripe_refund_id)


def _entry(session: Session, kind: str, stripe_object_id: str) -> bool:
    found = session.scalar(
        select(LedgerEntry.id).where(
            LedgerEntry.kind == kind, LedgerEntry.stripe_object_id == stripe_object_id
        )
    )
    return found is not None


def _failure_message(reason: str | None) -> str:
    why = FAILURE_REASONS.get(reason or "", "Stripe could not return the money to the card")
    return f"{why}; the refund failed and nothing was refunded."


def _intent_of(session: Session, refund: Refund) -> str:
    payment = session.get(Payment, refund.payment_id) if refund.payment_id else None
    return str(payment.stripe_payment_intent_id) if payment else ""


def _set_status(session: Session, refund_id: str, status: str) -> None:
    session.execute(
        update(Refund).where(Refund.id == refund_id).values(status=status, updated_at=utcnow())
    )
    session.commit()


def _fail(session: Session, refund_id: str, code: str, message: str) -> None:
    before = session.scalar(select(Refund.status).where(Refund.id == refund_id))
    session.execute(
        update(Refund)
        .where(Refund.id == refund_id, Refund.status != SUCCEEDED)
        .values(status=FAILED, failure_code=code, failure_message=message, updated_at=utcnow())
    )
    failed = before not in (SUCCEEDED, FAILED)
    if failed:
        refund = get_refund(session, refund_id)
        audit_refund(session, refund, "refund.failed")
        _failed(session, refund)
    session.commit()
    if failed:
        metrics.refund_outcome(refund.kind, FAILED)


def _failed(session: Session, refund: Refund) -> None:
    for follow in ON_FAILED:
        follow(session, refund)


def replayed(session: Session, gateway: StripeGateway, refund_id: str) -> Refund:
    """A replayed request's refund, as the first answer was (waited for, settled at
    Stripe if it was left unknown, its failure raised)."""
    return _replay(session, gateway, refund_id)


def audit_refund(session: Session, refund: Refund, action: str, **details: Any) -> None:
    """A refund asked for, or its outcome, in the audit trail, and as an event where other
    systems care."""
    if refund.status in REFUND_EVENTS and action == f"refund.{refund.status}":
        events.publish(session, REFUND_EVENTS[refund.status], "refund", refund)
    audit.record(
        session,
        action,
        "refund",
        refund.id,
        invoice_id=refund.invoice_id,
        kind=refund.kind,
        amount=refund.amount,
        currency=refund.currency,
        failure_code=refund.failure_code,
        **details,
    )


def _replay(session: Session, gateway: StripeGateway, refund_id: str) -> Refund:
    """The same answer as the first request: wait for it, or finish what it left unknown."""
    deadline = time.monotonic() + REPLAY_WAIT.total_seconds()
    while True:
        refund = get_refund(session, refund_id)
        session.commit()
        if is_stuck(refund):
            return outcome(resolve(session, gateway, refund.id, resend=True))
        if refund.status != PENDING:
            return outcome(refund)
        if time.monotonic() > deadline:
            raise Conflict(
                "idempotency_request_in_progress",
                "The first request with this Idempotency-Key is still running; retry shortly.",
            )
        time.sleep(0.05)


def is_stuck(refund: Refund) -> bool:
    return idempotency.is_stuck(refund.status, refund.updated_at)


def resolve(session: Session, gateway: StripeGateway, refund_id: str, resend: bool) -> Refund:
    """Settle a refund whose outcome we do not know: look it up at Stripe by our refund id.

    Found: it is applied. Not found: it is sent again when `resend` (a replay of its own
    request, or an overpayment we owe); else, once the call is too old to still land at
    Stripe, it is marked failed and its amount released.
    """
    refund = get_refund(session, refund_id)
    intent_id = _intent_of(session, refund)
    session.commit()
    found = gateway.find_refund(refund.id, intent_id)
    if found is not None:
        return apply_refund(session, refund.id, found)
    if not resend and utcnow() - refund.updated_at < STALE_AFTER:
        return refund  # a call this recent may still land at Stripe: ask again later
    taken = session.execute(
        update(Refund)
        .where(
            Refund.id == refund.id,
            Refund.status == refund.status,
            Refund.updated_at == refund.updated_at,
        )
        .values(**(PENDING_AGAIN if resend else NEVER_SENT), updated_at=utcnow())
        .returning(Refund.id)
    ).scalar_one_or_none()
    session.commit()
    if taken is None:  # someone else is settling it
        return _replay(session, gateway, refund.id) if resend else get_refund(session, refund.id)
    return send(session, gateway, refund.id) if resend else get_refund(session, refund.id)


def settle_unknown(session: Session, gateway: StripeGateway, invoice_id: str) -> None:
    """Look up the invoice's refunds that Stripe may or may not have made, so that what
    they hold is either spent or free again before another refund is weighed."""
    stuck = [
        refund
        for refund in session.scalars(
            select(Refund).where(
                Refund.invoice_id == invoice_id, Refund.status.in_((PENDING, UNKNOWN))
            )
        )
        if is_stuck(refund)
    ]
    session.commit()
    for refund in stuck:
        resolve(session, gateway, refund.id, resend=refund.kind == "overpayment")
