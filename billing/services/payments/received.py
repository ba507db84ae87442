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

import logging
from datetime import datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from billing.adapters.account_models import AccountBalance, BalanceShare
from billing.adapters.models import Invoice, LedgerEntry, Payment, utcnow
from billing.adapters.stripe_gateway import StripeGateway
from billing.domain import statuses
from billing.domain.errors import Conflict, NotFound, ServiceError, field_error
from billing.domain.money import Money
from billing.domain.statuses import REVERSED, SUCCEEDED
from billing.services import idempotency
from billing.services.access import audit
from billing.services.bookings import holds
from billing.services.idempotency import Claim, IdempotencyRequest
from billing.services.integrations import events
from billing.services.invoicing import ledger
from billing.services.invoicing.invoices import get_invoice
from billing.services.payments import account, gift_cards
from billing.services.payments.charges import (
    announce,
    audit_payment,
    cancel_online,
    check_remainder,
    collectable_now,
    get_payment,
    has_live_online,
)

log = logging.getLogger("billing.payments")

RECEIVED_METHODS = ("cash", "check", "external")
CREDIT_METHOD = "account_credit"  # the patient's credit, applied by staff or on its own
GIFT_CARD_METHOD = gift_cards.METHOD  # a gift card's code, at the desk or on the pay page
# Recorded, never sent to Stripe.
RECORDED_METHODS = (*RECEIVED_METHODS, CREDIT_METHOD, GIFT_CARD_METHOD)
# The ledger's entry for each: money received, or money that was already the clinic's.
LEDGER_KINDS = {CREDIT_METHOD: ledger.FROM_CREDIT, GIFT_CARD_METHOD: ledger.GIFT_CARD}
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
    request: IdempotencyRequest | None,
    code: str | None = None,
    card_money: bool = False,
) -> Payment:
    """Record money received at the desk against an invoice, apply the patient's credit to
    it (`account_credit`; with `card_money`, only credit a card paid) or a gift card
    (`gift_card`, its `code`); `amount`: by default what it still owes (of credit or a
    gift card, as much as they pay). The payment, succeeded, its money in the ledger. The
    pay page stands aside first, through `gateway` (without one, a live pay page is 409)."""
    if method == GIFT_CARD_METHOD and request is None:
        # The pay page: a code that cannot pay costs no PaymentIntent (a request with an
        # Idempotency-Key is checked after its key, so that a replay answers as before).
        gift_cards.check_code(session, code)
    claim, invoice = locked_without_pay_page(session, gateway, invoice_id, request, "payment")
    if invoice is None:  # a replay: answered as the first time, pay page or not
        assert claim is not None and claim.replay_of is not None
        return _replayed(session, claim.replay_of)
    if invoice.status in statuses.CLOSED:
        raise Conflict("invoice_not_payable", f"Invoice {invoice.number} is {invoice.status}.")
    holds.check_not_held(session, invoice)
    collectable = collectable_now(session, invoice)
    if collectable.amount <= 0:
        raise Conflict(
            "invoice_not_payable", f"Invoice {invoice.number} owes nothing ({invoice.status})."
        )
    if amount is not None and amount > collectable.amount:
        raise field_error(
            "amount_exceeds_balance",
            "amount",
            f"At most {collectable.amount} can be received on invoice {invoice.number}"
            f" ({_owed_words(invoice, collectable)}).",
        )
    if amount is not None:
        check_remainder(invoice, collectable.amount, amount)
    amount, reference = _taken(
        session, invoice, method, amount, reference, code, collectable, card_money
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
    kind = LEDGER_KINDS.get(method, ledger.RECEIVED)
    ledger.record(
        session, invoice, kind, amount, payment.id, occurred_at=payment.received_at, method=method
    )
    if method == CREDIT_METHOD:
        account.record_applied(session, invoice, payment)
    action = "credit.applied" if method == CREDIT_METHOD else "payment.recorded"
    audit_payment(session, payment, action)
    events.publish(session, action, "payment", payment)
    announce(session, invoice, status_before, moved=True)
    if claim is not None:
        idempotency.complete(session, claim, payment.id)
    session.commit()
    return payment


def _taken(
    session: Session,
    invoice: Invoice,
    method: str,
    amount: int | None,
    reference: str | None,
    code: str | None,
    collectable: Money,
    card_money: bool = False,
) -> tuple[int, str | None]:
    """What the payment is (by default what may be collected now, or all the patient's
    credit or gift card pays of it), taken from its source: the patient's credit, or a
    gift card (then named as the payment's reference); and the reference."""
    if method == CREDIT_METHOD:
        taken = account.use_credit(session, invoice, amount, collectable.amount, card_money)
        return taken, reference
    if method == GIFT_CARD_METHOD:
        card, part = gift_cards.use(session, invoice, code, amount, collectable.amount)
        if amount is None:  # all the card pays, leaving nothing or what a card can pay
            part = account.automatic_part(collectable.amount, part, invoice.currency)
            if part <= 0:
                raise field_error(
                    "remainder_too_small",
                    "code",
                    "The gift card holds less than it would leave owed, and a card cannot pay"
                    " so little: pay it all another way.",
                )
        return part, card.id
    return (collectable.amount if amount is None else amount), reference


def locked_without_pay_page(
    session: Session,
    gateway: StripeGateway | None,
    invoice_id: str,
    request: IdempotencyRequest | None,
    resource_type: str,
) -> tuple[Claim | None, Invoice | None]:
    """The request's idempotency claim, and the invoice locked with no pay page open on
    it: the pay page's PaymentIntent is cancelled at Stripe first, through `gateway`
    (409 if the patient has just paid with it; without a gateway, 409 while it is open).
    No invoice when the request is a replay."""
    for _ in range(STAND_ASIDE_ATTEMPTS):
        claim = idempotency.claim(session, request, resource_type) if request else None
        if claim is not None and claim.replay_of is not None:
            return claim, None
        invoice = get_invoice(session, invoice_id, for_update=True)
        if not has_live_online(session, invoice.id):  # under the invoice's lock
            return claim, invoice
        # The pay page holds a PaymentIntent the patient could still pay: it is cancelled
        # at Stripe first, outside the lock, then the invoice is locked again.
        session.rollback()
        if gateway is None:
            raise Conflict(
                "payment_in_progress", "The pay page is open and Stripe cannot be reached."
            )
        cancel_online(session, gateway, invoice_id)
    raise Conflict("payment_in_progress", "The pay page keeps starting payments; try again.")


def apply_credit_automatically(session: Session, invoice_id: str, credit: int) -> Payment | None:
    """Apply as much of `credit` to the invoice as pays it (never leaving less owed than a
    card can pay); None when it owes nothing now or the pay page is open."""
    invoice = get_invoice(session, invoice_id, for_update=True)
    if has_live_online(session, invoice.id) or not statuses.is_payable(invoice.status):
        session.rollback()
        return None
    part = account.automatic_part(
        collectable_now(session, invoice).amount, credit, invoice.currency
    )
    session.rollback()
    if part <= 0:
        return None
    return record_payment(session, None, invoice_id, CREDIT_METHOD, part, None, None, None)


def apply_all_credit(session: Session) -> int:
    """The scheduled job: every patient's credit pays their oldest open invoices in its
    currency; how much was applied."""
    owners = session.execute(
        select(AccountBalance.patient_id, AccountBalance.currency)
        .join(
            Invoice,
            (Invoice.patient_id == AccountBalance.patient_id)
            & (Invoice.currency == AccountBalance.currency),
        )
        .where(AccountBalance.credit > 0, Invoice.status.in_(statuses.PAYABLE))
        .distinct()
    ).all()
    session.commit()
    return sum(apply_oldest(session, patient_id, currency) for patient_id, currency in owners)


def apply_oldest(session: Session, patient_id: str, currency: str) -> int:
    """Apply the patient's credit in `currency` to their open invoices, oldest first (by
    date of service), each in its own transaction; how much was applied. Never fails its
    caller: credit left unapplied stays on the account for staff to apply."""
    applied = 0
    owing = session.scalars(
        select(Invoice.id)
        .where(
            Invoice.patient_id == patient_id,
            Invoice.currency == currency,
            Invoice.status.in_(statuses.PAYABLE),
        )
        .order_by(Invoice.scheduled_at, Invoice.created_at)
    ).all()
    session.commit()
    for invoice_id in owing:
        credit = account.credit_of(session, patient_id, currency)
        sharing = _sharing_out(session, patient_id, currency)
        session.commit()
        if credit <= 0 or sharing:
            break  # a payment of the balance pays the bills the patient chose first
        try:
            payment = apply_credit_automatically(session, invoice_id, credit)
        except ServiceError as error:
            session.rollback()
            log.info("credit not applied to invoice %s: %s", invoice_id, error.detail)
            continue
        if payment is not None:
            applied += payment.amount
    return applied


def _sharing_out(session: Session, patient_id: str, currency: str) -> bool:
    """Whether a payment of the patient's balance succeeded and its credit has not paid
    all the bills chosen yet (`balance.allocate`)."""
    found = session.scalar(
        select(BalanceShare.id)
        .join(Payment, Payment.id == BalanceShare.payment_id)
        .join(Invoice, Invoice.id == Payment.invoice_id)
        .where(
            Invoice.patient_id == patient_id,
            Payment.currency == currency,
            Payment.status == SUCCEEDED,
            BalanceShare.done_at.is_(None),
        )
        .limit(1)
    )
    return found is not None


def desk_money(session: Session, invoice_id: str) -> int:
    """What the desk received on the invoice outside Stripe, less what was reversed, and
    what the patient's credit and gift cards paid of it: money no Stripe refund gives
    back."""
    found = session.scalar(
        select(func.coalesce(func.sum(ledger.applied_net(LedgerEntry.kind, LedgerEntry.amount)), 0))
        .where(LedgerEntry.invoice_id == invoice_id)
        .where(
            LedgerEntry.kind.in_(
                (ledger.RECEIVED, ledger.REVERSAL, ledger.FROM_CREDIT, ledger.GIFT_CARD)
            )
        )
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
    if payment.method in (CREDIT_METHOD, GIFT_CARD_METHOD):
        raise Conflict(
            "payment_not_reversible",
            f"Payment {payment.id} was paid with credit or a gift card: a credit note gives"
            " it back.",
        )
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
        account.take_back(session, invoice, payment.id)
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
