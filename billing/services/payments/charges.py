"""Charging an invoice: commit our intent, call Stripe, commit the outcome. Never twice.

An invoice has at most one live PaymentIntent: charging the card on file first cancels
the pay page's PaymentIntent at Stripe, or is refused while Stripe is processing it. Money
that Stripe collects anyway, on an invoice already settled or void, goes back to the card
automatically, once (see `overpayments`).

A payment whose outcome we do not know (a timeout, an outage, a crash between the call
and the outcome commit) is settled by asking Stripe, never by creating a second charge:
its PaymentIntent by id when we have it; else the same create re-sent with the same
idempotency key while Stripe keeps keys (24 h), which returns the original; past that,
Stripe's search by our payment id.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

from sqlalchemy import ColumnElement, func, select, update
from sqlalchemy.orm import Session

from billing.adapters import metrics
from billing.adapters.account_models import BalanceShare
from billing.adapters.booking_models import CardConsent
from billing.adapters.models import Invoice, Patient, Payment, Refund, utcnow
from billing.adapters.schedule_models import ScheduledCharge
from billing.adapters.stripe_gateway import (
    BANK_ACCOUNT,
    Card,
    CardUsage,
    Dispute,
    Intent,
    StripeGateway,
)
from billing.domain import schedules, statuses
from billing.domain.dates import day_of, day_start
from billing.domain.errors import Conflict, PaymentRequired, ServiceError, field_error
from billing.domain.events import PAYMENT_EVENTS
from billing.domain.money import STRIPE_MINIMUM_CHARGE, Money
from billing.domain.statuses import (
    AWAITING_PATIENT,
    CANCELED,
    FAILED,
    PENDING,
    PROCESSING,
    REQUIRES_ACTION,
    RETURNED,
    SUCCEEDED,
    UNKNOWN,
)
from billing.services import idempotency
from billing.services.access import audit
from billing.services.bookings import holds
from billing.services.idempotency import REPLAY_WAIT, IdempotencyRequest
from billing.services.integrations import emails, events
from billing.services.invoicing import disputes, ledger, paid
from billing.services.invoicing.invoices import get_invoice
from billing.services.payments import (
    account,
    dunning,
    membership_periods,
    mismatches,
    overpayments,
    patients,
    refunds,
)

log = logging.getLogger("billing.payments")

IN_FLIGHT = (PENDING, UNKNOWN, REQUIRES_ACTION, PROCESSING)  # a charge not yet settled
CARD_ON_FILE, BANK_DEBIT = "card_on_file", "bank_debit"
# A payment the patient makes in the browser: an invoice's pay page (`online`), or the
# portal's payment of several bills at once (`balance`, made on the oldest of them).
ONLINE, BALANCE = "online", "balance"
ONLINE_METHODS = (ONLINE, BALANCE)
OFF_SESSION = (CARD_ON_FILE, BANK_DEBIT)  # charges we send while the patient is away
SETTLED = (SUCCEEDED, FAILED, CANCELED)
KEYS_KEPT = timedelta(hours=23)  # Stripe keeps an idempotency key 24 h; keep a margin
# Failures recorded on a charge that was never sent, answered again on a replay as 409s.
CONFLICTS = ("payment_in_progress", "invoice_not_payable")

__all__ = ["AWAITING_PATIENT", "FAILED", "IN_FLIGHT", "PENDING", "SUCCEEDED", "UNKNOWN"]


def get_payment(session: Session, payment_id: str) -> Payment:
    return session.scalars(
        select(Payment).where(Payment.id == payment_id).execution_options(populate_existing=True)
    ).one()


def pay_with_card_on_file(
    session: Session,
    gateway: StripeGateway,
    invoice_id: str,
    request: IdempotencyRequest,
    card_allowed: Callable[[Session, str, str], bool] | None = None,
    amount: int | None = None,
) -> Payment:
    """Charge the patient's saved card off-session for `amount` (by default all the
    invoice still owes); with `card_allowed`, only a card it allows (checked under the
    invoice's lock)."""
    return _pay_off_session(
        session, gateway, invoice_id, request, CARD_ON_FILE, amount, card_allowed
    )


def pay_by_bank_debit(
    session: Session,
    gateway: StripeGateway,
    invoice_id: str,
    request: IdempotencyRequest,
    amount: int | None = None,
) -> Payment:
    """Debit the patient's saved US bank account under its mandate (ACH) for `amount` (by
    default all the invoice still owes). Stripe answers `processing`: the payment and the
    invoice read so for days, until Stripe says the debit succeeded or failed."""
    return _pay_off_session(session, gateway, invoice_id, request, BANK_DEBIT, amount)


@dataclass(frozen=True, slots=True)
class Scheduled:
    """A charge the scheduler makes (`item_id`, a ScheduledCharge) to the card it names,
    which need not be the patient's default: its id, brand and last four digits."""

    item_id: str
    attempt: int
    card: tuple[str, str | None, str | None]


def pay_scheduled(
    session: Session,
    gateway: StripeGateway,
    invoice_id: str,
    request: IdempotencyRequest,
    amount: int,
    scheduled: Scheduled,
) -> Payment:
    """Charge a scheduled item's card off-session for `amount`; the payment names the
    item, which names the payment in the same transaction (a runner that dies after this
    commit leaves the item knowing what to ask Stripe about)."""
    return _pay_off_session(
        session, gateway, invoice_id, request, CARD_ON_FILE, amount, scheduled=scheduled
    )


def _pay_off_session(
    session: Session,
    gateway: StripeGateway,
    invoice_id: str,
    request: IdempotencyRequest,
    method: str,
    amount: int | None,
    card_allowed: Callable[[Session, str, str], bool] | None = None,
    scheduled: Scheduled | None = None,
) -> Payment:
    claim = idempotency.claim(session, request, "payment")
    if claim.replay_of is not None:
        session.commit()
        return _replay(session, gateway, claim.replay_of)

    invoice = get_invoice(session, invoice_id, for_update=True)
    check_payable(session, invoice, cancels_online=True)
    disputes.check_not_disputed(session, invoice)  # the patient may still pay it themselves
    if method == BANK_DEBIT and invoice.currency != "usd":
        raise field_error(
            "bank_debit_usd_only",
            "method",
            f"Bank debits (ACH) are in US dollars only; invoice {invoice.number} is in "
            f"{invoice.currency.upper()}.",
        )
    amount = check_amount(session, invoice, amount)
    patient = session.scalars(
        select(Patient).where(Patient.patient_id == invoice.patient_id)
    ).first()
    saved = scheduled.card if scheduled is not None else _saved_for(patient, method)
    if scheduled is not None and _removed(session, scheduled.card[0]):
        saved = None
    if patient is None or saved is None or not patient.stripe_customer_id:
        if method == BANK_DEBIT:
            raise Conflict(
                "no_bank_account",
                f"Patient {invoice.patient_id} has no saved bank account; save one with its "
                "mandate, or send a pay link.",
            )
        raise Conflict(
            "no_card_on_file",
            f"Patient {invoice.patient_id} has no saved card; save one or send a pay link.",
        )
    check_consent_limits(session, saved[0], amount, invoice.currency)
    if method == BANK_DEBIT and _mandate_of(session, saved[0]) is None:
        raise Conflict(
            "no_bank_account",
            f"Patient {invoice.patient_id}'s bank account has no mandate on file; save it "
            "again with the patient's authorization.",
        )
    if card_allowed is not None and not card_allowed(session, invoice.patient_id, saved[0]):
        raise Conflict(
            "no_card_on_file",
            f"Patient {invoice.patient_id}'s card on file was not saved with consent to this.",
        )
    payment = Payment(
        invoice_id=invoice.id,
        method=method,
        status=PENDING,
        amount=amount,
        currency=invoice.currency,
        stripe_customer_id=patient.stripe_customer_id,
        stripe_payment_method_id=saved[0],
        card_brand=saved[1],
        card_last4=saved[2],
        source=BANK_ACCOUNT if method == BANK_DEBIT else "card",
        scheduled_charge_id=scheduled.item_id if scheduled is not None else None,
    )
    session.add(payment)
    invoice.status = statuses.advance(invoice.status, statuses.PROCESSING)
    session.flush()
    if scheduled is not None:  # still this attempt's item (not cancelled meanwhile)?
        mine = session.execute(
            update(ScheduledCharge)
            .where(
                ScheduledCharge.id == scheduled.item_id,
                ScheduledCharge.status == "charging",
                ScheduledCharge.attempts == scheduled.attempt,
            )
            .values(last_payment_id=payment.id)
            .returning(ScheduledCharge.id)
        ).scalar_one_or_none()
        if mine is None:
            raise Conflict(
                "schedule_item_cancelled",
                "The instalment was cancelled (or taken by another runner) before it was "
                "charged; nothing was charged.",
            )
    audit_payment(session, payment, "payment.created")
    idempotency.complete(session, claim, payment.id)
    session.commit()  # our intent is durable, and the pay page now stands aside
    try:
        cancel_online(session, gateway, invoice.id)
    except ServiceError as error:
        _abandon(session, payment.id, error)
        raise
    return outcome(_send(session, gateway, payment.id))


def check_consent_limits(
    session: Session, payment_method_id: str, amount: int, currency: str
) -> None:
    """Refuse (409 `consent_limit`, saying which) a charge the patient's consent to this
    saved card does not cover: past its last day, above the most per charge, or taking
    the calendar year's charges of the card above the most per year."""
    consent = session.get(CardConsent, payment_method_id, with_for_update=True)
    if consent is None:  # locked: two charges of the card at once count each other
        return
    zone = dunning.settings().zone
    today = day_of(utcnow(), zone)
    if consent.expires_on is not None and today > consent.expires_on:
        raise Conflict(
            "consent_limit",
            f"The patient's consent to charge this card ended on {consent.expires_on}.",
            extra={"limit": "expires_on", "expires_on": consent.expires_on.isoformat()},
        )
    if consent.max_per_charge is not None and amount > consent.max_per_charge:
        raise Conflict(
            "consent_limit",
            f"The patient agreed to charges of this card of at most "
            f"{Money(consent.max_per_charge, currency)}; this one is {Money(amount, currency)}.",
            extra={"limit": "max_per_charge", "max": str(consent.max_per_charge)},
        )
    if consent.max_per_year is not None:
        year_start = day_start(date(today.year, 1, 1), zone)
        this_year = (
            (Payment.stripe_payment_method_id == payment_method_id)
            & (Payment.currency == currency)
            & Payment.status.in_((SUCCEEDED, *IN_FLIGHT))
            & (Payment.created_at >= year_start)
        )
        gross = session.scalar(select(func.coalesce(func.sum(Payment.amount), 0)).where(this_year))
        given_back = session.scalar(  # refunds of those charges (not overpayments: counted)
            select(func.coalesce(func.sum(Refund.amount), 0))
            .join(Payment, Payment.id == Refund.payment_id)
            .where(this_year, Refund.status == SUCCEEDED, Refund.kind != "overpayment")
        )
        charged = int(gross or 0) - int(given_back or 0)
        if charged + amount > consent.max_per_year:
            raise Conflict(
                "consent_limit",
                f"The patient agreed to at most {Money(consent.max_per_year, currency)} a year "
                f"on this card; {Money(charged, currency)} was charged this year.",
                extra={
                    "limit": "max_per_year",
                    "max": str(consent.max_per_year),
                    "charged_this_year": str(charged),
                },
            )


def _mandate_of(session: Session, payment_method_id: str) -> str | None:
    """The mandate a saved bank account is debited under (None: not saved with one)."""
    consent = session.get(CardConsent, payment_method_id)
    return consent.mandate_id if consent is not None and consent.removed_at is None else None


def _removed(session: Session, payment_method_id: str) -> bool:
    """Whether the patient removed this saved card (or it was never saved)."""
    consent = session.get(CardConsent, payment_method_id)
    return consent is None or consent.removed_at is not None


def _usage(session: Session, payment: Payment) -> CardUsage:
    """How the card is charged, as the networks ask it said: a scheduled item's kind."""
    if payment.scheduled_charge_id is None:
        return "unscheduled"
    kind = session.scalar(
        select(ScheduledCharge.kind).where(ScheduledCharge.id == payment.scheduled_charge_id)
    )
    return schedules.CARD_USAGE.get(str(kind), "unscheduled")


def _saved_for(patient: Patient | None, method: str) -> tuple[str, str | None, str | None] | None:
    """The patient's saved payment method for `method`: its id, brand (or bank) and last4."""
    if patient is None:
        return None
    if method == BANK_DEBIT:
        if patient.bank_payment_method_id is None:
            return None
        return patient.bank_payment_method_id, patient.bank_name, patient.bank_last4
    if patient.default_payment_method_id is None:
        return None
    return patient.default_payment_method_id, patient.default_card_brand, patient.default_card_last4


def outcome(payment: Payment) -> Payment:
    """The payment, or the reason nothing was charged as the error that names it."""
    if payment.status == FAILED:
        extra = {"payment_id": payment.id, "invoice_id": payment.invoice_id}
        code = payment.failure_code or "card_declined"
        message = payment.failure_message or "The card was declined."
        if code in CONFLICTS:
            raise Conflict(code, message, extra=extra)
        raise PaymentRequired(code, message, extra=extra)
    return payment


def check_nothing_charging(session: Session, invoice_id: str, methods: tuple[str, ...]) -> None:
    """Refuse (409) while a charge of the invoice by one of `methods` is in flight, or a
    payment of several bills that includes it is (`balance_charging`)."""
    in_flight = session.scalars(
        select(Payment.id).where(
            Payment.invoice_id == invoice_id,
            Payment.method.in_(methods),
            Payment.status.in_(IN_FLIGHT),
        )
    ).first() or balance_charging(session, invoice_id)
    if in_flight is not None:
        raise Conflict(
            "payment_in_progress",
            f"Payment {in_flight} for this invoice is still in progress.",
            extra={"payment_id": in_flight},
        )


def check_payable(session: Session, invoice: Invoice, cancels_online: bool = False) -> None:
    """Refuse (409) unless the invoice is open with no card-on-file charge in flight.

    With `cancels_online` (the caller cancels the pay page's PaymentIntent at Stripe
    before charging, and `cancel_online` refuses while Stripe is still processing it), an
    invoice processing only the pay page's payment is not refused here: Stripe is asked.
    """
    check_nothing_charging(session, invoice.id, OFF_SESSION)
    if not statuses.is_payable(invoice.status) and not (
        cancels_online and _processing_only_online(session, invoice)
    ):
        raise Conflict(
            "invoice_not_payable", f"Invoice {invoice.number} is {invoice.status}, not open."
        )
    holds.check_not_held(session, invoice)


def collectable_now(session: Session, invoice: Invoice, online_counts: bool = True) -> Money:
    """What may still be collected on the invoice now: its balance due, less what charges
    in flight may still collect (a card on file being charged; the pay page's payment
    Stripe is processing, unless not `online_counts`: the caller cancels it at Stripe
    first, or is refused)."""
    charging = Payment.method.in_(OFF_SESSION) & Payment.status.in_(IN_FLIGHT)
    if online_counts:
        charging = charging | ((Payment.method == "online") & (Payment.status == PROCESSING))
    in_flight = session.scalar(
        select(func.coalesce(func.sum(Payment.amount), 0)).where(
            Payment.invoice_id == invoice.id, charging
        )
    )
    session.refresh(invoice, ["amount_paid"])
    due = Money(invoice.balance_due, invoice.currency)
    return due - Money(min(int(in_flight or 0), due.amount), invoice.currency)


def check_amount(
    session: Session, invoice: Invoice, amount: int | None, least: int | None = None
) -> int:
    """The amount to charge the card on file or on the pay page: `amount`, or by default
    all that may be collected now (the pay page's payment is cancelled at Stripe first).
    Refused (422) beyond that, or below `least` (the clinic's minimum for a part, if
    any) or the least Stripe charges, unless it is all that is owed."""
    collectable = collectable_now(session, invoice, online_counts=False)
    if collectable.amount <= 0:
        raise Conflict(
            "invoice_not_payable", f"Invoice {invoice.number} owes nothing now ({invoice.status})."
        )
    return part_of(invoice, collectable.amount, amount, least)


def part_of(invoice: Invoice, owed: int, amount: int | None, least: int | None = None) -> int:
    """`amount` (by default all of `owed`) if it may be collected of `owed` at once."""
    if amount is None:
        return owed
    if amount > owed:
        raise field_error(
            "amount_exceeds_balance",
            "amount",
            f"At most {owed} can be collected on invoice {invoice.number} now.",
        )
    least = max(least or 0, STRIPE_MINIMUM_CHARGE.get(invoice.currency, 0))
    if amount < least and amount != owed:
        raise field_error(
            "amount_too_small",
            "amount",
            f"At least {least} {invoice.currency} at a time, or all {owed} that is owed.",
        )
    check_remainder(invoice, owed, amount)
    return amount


def check_remainder(invoice: Invoice, owed: int, amount: int) -> None:
    """What a part leaves owed is 0, or enough for a card to pay (Stripe's minimum): never
    a few cents only cash could settle."""
    left, card_least = owed - amount, STRIPE_MINIMUM_CHARGE.get(invoice.currency, 0)
    if 0 < left < card_least:
        raise field_error(
            "remainder_too_small",
            "amount",
            f"That would leave {left} {invoice.currency} owed, less than a card can pay"
            f" ({card_least}): take all {owed}, or at most {owed - card_least}.",
        )


def _processing_only_online(session: Session, invoice: Invoice) -> bool:
    """Whether the invoice reads processing only because Stripe was processing its pay
    page's payment when we last heard."""
    if invoice.status != statuses.PROCESSING:
        return False
    online = session.scalars(
        select(Payment.id).where(
            Payment.invoice_id == invoice.id,
            Payment.method == "online",
            Payment.status == PROCESSING,
        )
    ).first()
    return online is not None


def covering(invoice_id: str) -> ColumnElement[bool]:
    """The payments a patient makes in the browser that pay the invoice: its pay page's,
    and a payment of the balance (from the portal) that includes it."""
    shared = select(BalanceShare.payment_id).where(BalanceShare.invoice_id == invoice_id)
    return ((Payment.invoice_id == invoice_id) & (Payment.method == ONLINE)) | (
        (Payment.method == BALANCE) & Payment.id.in_(shared)
    )


# A payment of several bills being charged to a saved card: no PaymentIntent to cancel.
BALANCE_CHARGING = (PENDING, UNKNOWN, PROCESSING)


def balance_charging(session: Session, invoice_id: str) -> str | None:
    """A payment of several bills that includes the invoice and may be collecting money
    for it now: being charged to a saved card, or paid and not yet shared out to it. Its
    id, or None."""
    unshared = select(BalanceShare.payment_id).where(
        BalanceShare.invoice_id == invoice_id, BalanceShare.done_at.is_(None)
    )
    found = session.scalars(
        select(Payment.id).where(
            covering(invoice_id),
            Payment.method == BALANCE,
            Payment.status.in_(BALANCE_CHARGING)
            | ((Payment.status == SUCCEEDED) & Payment.id.in_(unshared)),
        )
    ).first()
    return str(found) if found is not None else None


def has_live_online(session: Session, invoice_id: str) -> bool:
    """Whether the invoice's pay page, or a payment of the balance that includes it,
    holds a PaymentIntent the patient could still pay."""
    live = session.scalars(
        select(Payment.id).where(
            covering(invoice_id),
            Payment.status.not_in((SUCCEEDED, CANCELED)),  # a declined card may try again
            # ... on its PaymentIntent: a saved card declined as it was charged has none.
            ~((Payment.status == FAILED) & Payment.stripe_payment_intent_id.is_(None)),
        )
    ).first()
    return live is not None


def cancel_online(session: Session, gateway: StripeGateway, invoice_id: str) -> None:
    """Cancel the pay page's PaymentIntent at Stripe before the invoice is collected otherwise.

    Raises a Conflict when the patient's payment got there first: it succeeded (the invoice
    is paid) or Stripe is processing it.
    """
    session.execute(  # an intent still being made finds its row cancelled and cancels itself
        update(Payment)
        .where(
            covering(invoice_id),
            Payment.status == AWAITING_PATIENT,
            Payment.stripe_payment_intent_id.is_(None),
        )
        .values(status=CANCELED, updated_at=utcnow())
    )
    live = list(
        session.scalars(
            select(Payment).where(
                covering(invoice_id),
                Payment.stripe_payment_intent_id.is_not(None),
                Payment.status.not_in((SUCCEEDED, CANCELED)),
            )
        )
    )
    charging = balance_charging(session, invoice_id)
    session.commit()  # no transaction stays open across the call to Stripe
    if charging is not None:  # a saved card being charged for it: nothing to cancel
        raise Conflict(
            "payment_in_progress",
            "A payment of this invoice with other bills is being made; wait for its outcome.",
            extra={"payment_id": charging},
        )
    for payment in live:
        intent = gateway.cancel_payment_intent(str(payment.stripe_payment_intent_id))
        apply_intent(session, gateway, payment.id, intent)
        if intent.status == "succeeded":
            raise Conflict("invoice_not_payable", "The patient has just paid this invoice online.")
        if intent.status != "canceled":
            raise Conflict(
                "payment_in_progress",
                "The patient's online payment is being processed by Stripe; wait for its outcome.",
                extra={"payment_id": payment.id},
            )


def _abandon(session: Session, payment_id: str, error: ServiceError) -> None:
    """A charge that was never sent: record why, and leave the invoice as it was."""
    payment = get_payment(session, payment_id)
    invoice = get_invoice(session, payment.invoice_id, for_update=True)
    payment.status = FAILED
    payment.failure_code, payment.failure_message = error.code, error.detail
    invoice.status = _after_attempt(session, invoice, payment)
    audit_payment(session, payment)
    if payment.scheduled_charge_id is not None:
        dunning.follow(session, invoice, payment)
    session.commit()
    metrics.payment_outcome(payment.method, FAILED)


def _after_attempt(session: Session, invoice: Invoice, payment: Payment) -> str:
    """The invoice's status once `payment` is over (failed, abandoned, or paid part of
    it): payable again (open, or partially paid), unless another payment of it is still in
    progress (the pay page's, which Stripe is processing; a card-on-file charge not yet
    settled), when it still reads processing."""
    in_progress = session.scalars(
        select(Payment.id).where(
            Payment.invoice_id == invoice.id,
            Payment.id != payment.id,
            (Payment.status == PROCESSING)
            | (Payment.method.in_(OFF_SESSION) & Payment.status.in_(IN_FLIGHT)),
        )
    ).first()
    if in_progress is not None:
        return invoice.status
    return statuses.after_failed_attempt(invoice.status, ledger.amounts(session, invoice.id).paid)


def _send(session: Session, gateway: StripeGateway, payment_id: str) -> Payment:
    """Call Stripe for a recorded payment and commit what it answered."""
    payment = get_payment(session, payment_id)
    customer_id, method_id = payment.stripe_customer_id, payment.stripe_payment_method_id
    if customer_id is None or method_id is None:  # recorded before these were kept
        patient = session.scalars(
            select(Patient)
            .join(Invoice, Invoice.patient_id == Patient.patient_id)
            .where(Invoice.id == payment.invoice_id)
        ).one()
        customer_id, method_id = patient.stripe_customer_id, patient.default_payment_method_id
    mandate_id = _mandate_of(session, str(method_id))
    usage = _usage(session, payment)
    session.commit()  # no transaction stays open across the call to Stripe
    sent: dict[str, Any] = {  # the same for a card and a bank account
        "payment_id": payment.id,
        "invoice_ref": payment.invoice_id,
        "amount": payment.amount,
        "currency": payment.currency,
        "customer_id": str(customer_id),
        "payment_method_id": str(method_id),
    }
    try:
        if payment.method == BANK_DEBIT:
            intent = gateway.debit_bank_account(**sent, mandate_id=str(mandate_id))
        elif payment.method == BALANCE:  # a saved card chosen on the portal's page
            intent = gateway.charge_saved_card(**sent)
        else:
            intent = gateway.charge_card_on_file(**sent, usage=usage)
    except ServiceError as error:
        if not error.outcome_unknown:  # Stripe answered: nothing was charged
            _abandon(session, payment.id, error)
            raise
        _set_status(session, payment.id, UNKNOWN)
        raise
    return apply_intent(session, gateway, payment.id, intent)


def apply_intent(
    session: Session,
    gateway: StripeGateway,
    payment_id: str,
    intent: Intent,
    card: Card | None = None,
) -> Payment:
    """Commit what Stripe says of a payment's PaymentIntent; statuses never go backwards.

    Only the PaymentIntent made for the payment, in its currency and for its amount, is
    applied (`mismatches`). Money collected beyond what the invoice still owes is refunded
    at once (and by the recovery job if that call fails).
    """
    # Locks are taken invoice first, then its payment, everywhere: no deadlock with a
    # refund or a charge of the same invoice.
    invoice_id = session.scalars(select(Payment.invoice_id).where(Payment.id == payment_id)).one()
    invoice = get_invoice(session, invoice_id, for_update=True)
    payment = session.scalars(
        select(Payment)
        .where(Payment.id == payment_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    ).one()
    wrong = mismatches.mismatch(payment, intent)
    if wrong is not None:  # not about this payment: applied to nothing
        mismatches.keep(session, payment, intent, wrong)
        session.commit()
        return payment
    # An online payment that failed is not over: the patient may try another card on it.
    final = (SUCCEEDED, CANCELED) if payment.method in ONLINE_METHODS else SETTLED
    if payment.status == RETURNED or (payment.status in final and intent.status != "succeeded"):
        session.commit()  # a returned bank debit stays so, whatever its PaymentIntent says
        return payment
    before, invoice_before = payment.status, invoice.status
    if card is not None:  # what the patient paid with on the pay page, now known
        payment.source = card.kind
        payment.card_brand, payment.card_last4 = card.brand, card.last4
    if intent.id and not payment.stripe_payment_intent_id:
        payment.stripe_payment_intent_id = intent.id
    excess_refund = None
    moved = False  # money came in now (a ledger entry written)
    if intent.status == "succeeded":
        payment.status = SUCCEEDED
        payment.stripe_charge_id = intent.charge_id or payment.stripe_charge_id
        payment.paid_at = payment.paid_at or utcnow()
        payment.failure_code = payment.failure_message = None
        saves = payment.save_card_consent and payment.source != BANK_ACCOUNT  # a card only
        if before != SUCCEEDED and saves and intent.payment_method_id:
            patients.keep_card(session, invoice, payment, intent.payment_method_id)
        moved = ledger.record(
            session, invoice, ledger.CHARGE, payment.amount, str(intent.id), intent.charge_id
        )
        if moved and (account.keeps_overpayments() or payment.method == BALANCE):
            # Applied to open bills by a job; a payment of the balance's beyond its first
            # bill pays the others the patient chose (`balance.allocate`).
            account.keep_excess(session, invoice, payment)
        elif moved:
            excess_refund = overpayments.reserve(session, invoice, payment)
        if invoice.status == statuses.PROCESSING:  # part of it paid: what is left is payable
            invoice.status = _after_attempt(session, invoice, payment)
    elif intent.status == "requires_action":
        payment.status = REQUIRES_ACTION
        payment.client_secret = intent.client_secret
    elif intent.status == "processing":
        payment.status = PROCESSING
        invoice.status = statuses.advance(invoice.status, statuses.PROCESSING)
    elif intent.status == "canceled" and payment.method in ONLINE_METHODS:
        payment.status = CANCELED
    elif intent.status in ("failed", "requires_payment_method", "canceled"):
        payment.status = FAILED
        payment.failure_code = intent.failure_code or "card_declined"
        payment.failure_message = intent.failure_message or "The card was declined."
        payment.decline_code = intent.decline_code
        invoice.status = _after_attempt(session, invoice, payment)
    if payment.status != before:
        audit_payment(session, payment)
        _ask_the_patient(session, invoice, payment)
        if payment.scheduled_charge_id is not None:  # an instalment follows its payment
            dunning.follow(session, invoice, payment)
    announce(session, invoice, invoice_before, moved)
    session.commit()
    if payment.status != before:
        metrics.payment_outcome(payment.method, payment.status)
    if excess_refund is not None:
        _give_back(session, gateway, excess_refund)
    return payment


def bank_debit_returned(
    session: Session, invoice: Invoice, payment_id: str, dispute: Dispute
) -> None:
    """In the caller's transaction, under the invoice's lock: a bank debit that succeeded
    came back (an ACH return, which Stripe reports as a dispute, final). What it paid is
    owed again: the invoice reopens, the payment reads `returned`, finance hears it
    (`payment.returned`, the audit trail; reconciliation pairs it with Stripe's dispute)
    and the patient is emailed a pay link. Once, however often Stripe says it."""
    if not ledger.record(
        session, invoice, ledger.BANK_RETURN, dispute.amount, dispute.id, dispute.charge_id
    ):
        return
    payment = session.scalars(
        select(Payment).where(Payment.id == payment_id).with_for_update()
    ).one()
    payment.status = RETURNED
    payment.failure_code = "bank_return"
    payment.failure_message = (
        f"The bank returned {Money(dispute.amount, invoice.currency)} after the debit "
        f"succeeded ({dispute.reason or 'no reason given'})."
    )
    audit_payment(session, payment)
    account.take_back(session, invoice, payment.id)  # had it become the patient's credit
    emails.queue(session, emails.BANK_DEBIT_RETURNED, invoice, f"returned:{payment.id}")
    metrics.payment_outcome(payment.method, RETURNED)


def announce(session: Session, invoice: Invoice, status_before: str, moved: bool = False) -> None:
    """In the caller's transaction: other systems hear that an invoice was partly paid
    (each time money, `moved` now, leaves it partly paid), or paid."""
    if invoice.status == statuses.PARTIALLY_PAID and (moved or status_before != invoice.status):
        session.flush()
        session.refresh(invoice, ["amount_paid", "amount_refunded"])
        events.publish(session, "invoice.partially_paid", "invoice", invoice)
    paid.announce_paid(session, invoice, status_before)
    if status_before not in statuses.SETTLED and invoice.status in statuses.SETTLED:
        membership_periods.invoice_paid(session, invoice)


def card_for_receipt(gateway: StripeGateway, payment: Payment, intent: Intent) -> Card | None:
    """The card (or bank account) a payment that succeeded, or that Stripe is processing, was
    made with, when we do not know it yet (the pay page's is entered in Stripe's form):
    asked of Stripe, outside any transaction."""
    if (
        intent.status in ("succeeded", "processing")
        # the pay page's: a first try may have been another card or a bank account
        and (payment.card_last4 is None or payment.method in ONLINE_METHODS)
        and intent.payment_method_id
        and intent.status != payment.status
    ):
        return gateway.card_of(intent.payment_method_id)
    return None


def audit_payment(session: Session, payment: Payment, action: str | None = None) -> None:
    """A payment made, or its new status (succeeded, failed, requires_action, ...), in the
    audit trail, and as an event where other systems care."""
    if action is None and payment.status in PAYMENT_EVENTS:
        events.publish(session, PAYMENT_EVENTS[payment.status], "payment", payment)
    audit.record(
        session,
        action or f"payment.{payment.status}",
        "payment",
        payment.id,
        invoice_id=payment.invoice_id,
        method=payment.method,
        amount=payment.amount,
        currency=payment.currency,
        failure_code=payment.failure_code,
        # The schedule that caused it (an instalment, AutoPay), when staff did not.
        **(
            {"scheduled_charge_id": payment.scheduled_charge_id}
            if payment.scheduled_charge_id
            else {}
        ),
    )


def _ask_the_patient(session: Session, invoice: Invoice, payment: Payment) -> None:
    """An off-session charge the bank wants confirmed, or declined, or a bank debit that
    failed days later (the patient has long left the pay page): the patient is emailed a
    pay link at once, so nobody at the front desk has to chase it."""
    by_bank = payment.source == BANK_ACCOUNT
    if payment.method not in OFF_SESSION and not by_bank:
        return
    if payment.status not in (REQUIRES_ACTION, FAILED):
        return
    if payment.failure_code in (*CONFLICTS, "not_sent"):
        return  # nothing the patient can do: the charge never reached their bank
    if payment.scheduled_charge_id is not None and payment.status == FAILED:
        return  # retried on the clinic's schedule; the patient is emailed when it gives up
    kind = emails.BANK_DEBIT_FAILED if by_bank else emails.ACTION_NEEDED
    emails.queue(session, kind, invoice, f"action:{payment.id}")


def _give_back(session: Session, gateway: StripeGateway, refund_id: str) -> None:
    """Send an overpayment's refund now; if Stripe cannot take it, recovery sends it later."""
    try:
        refunds.send(session, gateway, refund_id)
    except ServiceError as error:
        log.warning("overpayment refund %s not sent yet: %s", refund_id, error.detail)


def _set_status(session: Session, payment_id: str, status: str) -> None:
    session.execute(
        update(Payment).where(Payment.id == payment_id).values(status=status, updated_at=utcnow())
    )
    session.commit()


def _take_over(session: Session, seen: Payment) -> bool:
    """Compare-and-set: move a payment as we last saw it back to pending; True if we won."""
    taken = session.execute(
        update(Payment)
        .where(
            Payment.id == seen.id,
            Payment.status == seen.status,
            Payment.updated_at == seen.updated_at,
        )
        .values(status=PENDING, updated_at=utcnow())
        .returning(Payment.id)
    ).scalar_one_or_none()
    session.commit()
    return taken is not None


def _replay(session: Session, gateway: StripeGateway, payment_id: str) -> Payment:
    """The same answer as the first request: wait for it, or finish what it left unknown."""
    deadline = time.monotonic() + REPLAY_WAIT.total_seconds()
    while True:
        payment = get_payment(session, payment_id)
        session.commit()
        if is_stuck(payment):
            return outcome(resolve(session, gateway, payment.id))
        if payment.status != PENDING:
            return outcome(payment)
        if time.monotonic() > deadline:
            raise Conflict(
                "idempotency_request_in_progress",
                "The first request with this Idempotency-Key is still running; retry shortly.",
            )
        time.sleep(0.05)


def is_stuck(payment: Payment) -> bool:
    return idempotency.is_stuck(payment.status, payment.updated_at)


def resolve(session: Session, gateway: StripeGateway, payment_id: str) -> Payment:
    """Settle a payment whose outcome we do not know by asking Stripe; never charge twice."""
    payment = get_payment(session, payment_id)
    session.commit()
    if payment.stripe_payment_intent_id:
        intent = gateway.retrieve_payment_intent(payment.stripe_payment_intent_id)
        card = card_for_receipt(gateway, payment, intent)
        return apply_intent(session, gateway, payment.id, intent, card)
    sent_by_us = payment.method in OFF_SESSION or (
        payment.method == BALANCE and payment.stripe_payment_method_id is not None
    )  # not the browser: we made the create call, and may make it again with its key
    if sent_by_us and utcnow() - payment.created_at < KEYS_KEPT:
        # The same create with the same key: Stripe answers with the PaymentIntent it made
        # then, or makes it now if the first call never arrived.
        if _take_over(session, payment):
            return _send(session, gateway, payment.id)
        return _replay(session, gateway, payment.id)  # another request is re-sending it
    found = gateway.search_payment_intent(payment.id)
    if found is not None:
        return apply_intent(session, gateway, payment.id, found)
    never_sent = Intent(
        id=None,
        status="failed",
        amount=payment.amount,
        currency=payment.currency,
        failure_code="not_sent",
        failure_message="The charge never reached Stripe; nothing was collected.",
    )
    return apply_intent(session, gateway, payment.id, never_sent)
