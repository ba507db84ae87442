"""Payment plans: an invoice's balance split into instalments charged to a saved card on
their days, with the patient's consent to exactly those amounts and dates.

A plan covers what the invoice owes when it is made. Each instalment is a scheduled
charge (`schedule` charges it, and retries a decline); money paid outside the plan (a pay
link, the desk, credit) settles the earliest instalments first. Changing a plan is making
a new one: the old one is cancelled and what it collected stays paid; the new one covers
what is owed now. Cancelling one charges nothing more.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from zoneinfo import ZoneInfo

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from billing.adapters.booking_models import CardConsent
from billing.adapters.models import Invoice, utcnow
from billing.adapters.schedule_models import PaymentPlan, ScheduledCharge
from billing.adapters.stripe_gateway import StripeGateway
from billing.domain import schedules
from billing.domain.dates import clinic_date, day_of
from billing.domain.errors import Conflict, NotFound, field_error
from billing.domain.money import STRIPE_MINIMUM_CHARGE, Money
from billing.domain.schedules import (
    ACTIVE,
    CANCELLED,
    CHARGING,
    LIVE,
    OWED,
    SCHEDULED,
)
from billing.services.access import audit
from billing.services.integrations import events
from billing.services.invoicing.invoices import get_invoice
from billing.services.payments import autopay, charges, dunning


@dataclass(frozen=True, slots=True)
class Consent:
    """How the patient agreed to the plan: at the desk (`offline`, a signed form) or
    online (with their address and browser)."""

    accepted: str = "offline"
    agreed_at: datetime | None = None
    ip_address: str | None = None
    user_agent: str | None = None


@dataclass(frozen=True, slots=True)
class Terms:
    """What a plan is asked for: `count` instalments every `interval` from `first`, or
    explicit (day, amount) pairs in `explicit`; charged to the saved card `card`."""

    card: str
    count: int | None = None
    interval: str | None = None
    first: date | None = None
    explicit: Sequence[tuple[date, int]] = ()
    consent: Consent = Consent()


@dataclass(frozen=True, slots=True)
class Clinic:
    """The clinic as the consent names it, and its calendar."""

    name: str
    contact: str
    zone: ZoneInfo


def create_plan(
    session: Session,
    gateway: StripeGateway,
    invoice_id: str,
    terms: Terms,
    clinic: Clinic,
    api_key_id: int,
    now: datetime | None = None,
) -> PaymentPlan:
    """Put what the invoice owes on a plan (replacing a plan it had), with the consent
    text recorded for the card; the first instalment is charged on its day."""
    now = now or utcnow()
    invoice = get_invoice(session, invoice_id)
    consent = saved_card(session, invoice.patient_id, terms.card, fee=invoice.kind == "fee")
    session.commit()  # no transaction stays open across the call to Stripe
    card = gateway.card_of(terms.card)
    invoice = get_invoice(session, invoice_id, for_update=True)
    charges.check_payable(session, invoice)
    if invoice.kind == "membership":
        raise Conflict(
            "invoice_not_payable",
            f"Invoice {invoice.number} is a membership's fee: the membership charges it.",
        )
    owed = charges.collectable_now(session, invoice).amount
    if owed <= 0:
        raise Conflict("invoice_not_payable", f"Invoice {invoice.number} owes nothing now.")
    if invoice.plan is not None:
        _cancel(session, invoice.plan, "Replaced by a new plan.", now)
    autopay.withdraw_for_plan(session, invoice.id)  # the plan pays it now, not AutoPay
    dated = _instalments(invoice, terms, Money(owed, invoice.currency), day_of(now, clinic.zone))
    plan = PaymentPlan(
        invoice_id=invoice.id,
        patient_id=invoice.patient_id,
        currency=invoice.currency,
        amount=owed,
        interval=terms.interval or "custom",
        status=ACTIVE,
        payment_method_id=terms.card,
        card_brand=card.brand,
        card_last4=card.last4,
        consent_text=consent_text(invoice, dated, card.brand, card.last4, clinic),
        consent_accepted=terms.consent.accepted,
        agreed_at=terms.consent.agreed_at or now,
        ip_address=terms.consent.ip_address,
        user_agent=terms.consent.user_agent,
        api_key_id=api_key_id,
    )
    session.add(plan)
    session.flush()
    window = dunning.settings().window
    for number, (day, amount) in enumerate(dated, start=1):
        session.add(
            ScheduledCharge(
                kind="instalment",
                invoice_id=invoice.id,
                patient_id=invoice.patient_id,
                plan_id=plan.id,
                number=number,
                due_on=day,
                amount=amount,
                currency=invoice.currency,
                status=SCHEDULED,
                payment_method_id=terms.card,
                next_attempt_at=schedules.first_attempt(day, clinic.zone, window),
                api_key_id=api_key_id,
            )
        )
    session.flush()
    session.refresh(plan, ["items"])
    _saved_with_card(consent, plan)
    audit.record(
        session,
        "plan.created",
        "plan",
        plan.id,
        invoice_id=invoice.id,
        amount=owed,
        currency=invoice.currency,
        instalments=len(dated),
        payment_method_id=terms.card,
    )
    events.publish(session, "plan.created", "plan", plan)
    session.commit()
    return _plan_by_id(session, plan.id)


def cancel_plan(session: Session, invoice_id: str, reason: str | None = None) -> PaymentPlan:
    """Charge nothing more on the invoice's plan; what it collected stays paid."""
    invoice = get_invoice(session, invoice_id, for_update=True)
    plan = invoice.plan
    if plan is None or plan.status not in LIVE:
        raise NotFound("plan_not_found", f"Invoice {invoice.number} has no plan to cancel.")
    _cancel(session, plan, reason or "Cancelled.", utcnow())
    session.commit()
    return _plan_by_id(session, plan.id)


def _plan_by_id(session: Session, plan_id: str) -> PaymentPlan:
    return session.scalars(
        select(PaymentPlan)
        .where(PaymentPlan.id == plan_id)
        .execution_options(populate_existing=True)
    ).one()


def _cancel(session: Session, plan: PaymentPlan, reason: str, now: datetime) -> None:
    """In the caller's transaction, under the invoice's lock: stop the plan's charges, or
    refuse (409) while one is being made."""
    items = session.scalars(  # locked: a runner cannot take one while this decides
        select(ScheduledCharge)
        .where(ScheduledCharge.plan_id == plan.id)
        .with_for_update()
        .execution_options(populate_existing=True)
    ).all()
    if any(item.status == CHARGING for item in items):
        raise Conflict(
            "payment_in_progress",
            "An instalment of this plan is being charged now; try again in a minute.",
        )
    session.execute(
        update(ScheduledCharge)
        .where(
            ScheduledCharge.plan_id == plan.id,
            ScheduledCharge.status.in_(OWED),
            ScheduledCharge.status != CHARGING,
        )
        .values(status=CANCELLED, next_attempt_at=None, updated_at=now)
    )
    plan.status, plan.cancelled_at, plan.cancel_reason = CANCELLED, now, reason[:500]
    session.flush()
    session.refresh(plan, ["items"])
    audit.record(session, "plan.cancelled", "plan", plan.id, invoice_id=plan.invoice_id)
    events.publish(session, "plan.cancelled", "plan", plan)


def saved_card(session: Session, patient_id: str, payment_method_id: str, fee: bool) -> CardConsent:
    """The patient's saved card a plan or a membership charges: saved (not removed), a card
    (not a bank account), and for a fee not an HSA/FSA card."""
    consent = session.get(CardConsent, payment_method_id)
    if (
        consent is None
        or consent.patient_id != patient_id
        or consent.removed_at is not None
        or consent.mandate_id is not None
    ):
        raise field_error(
            "unknown_payment_method",
            "payment_method",
            f"{payment_method_id} is not a card saved for patient {patient_id}: save "
            "the card first (POST /v1/patients/{id}/payment-methods).",
        )
    if fee and consent.hsa_fsa:
        raise field_error(
            "hsa_fsa_card_for_fee",
            "payment_method",
            "An HSA/FSA card is never charged a fee automatically; name another card.",
        )
    return consent


def _saved_with_card(consent: CardConsent, plan: PaymentPlan) -> None:
    """The plan's consent is kept with the card as well: the card's record says it may be
    charged these instalments (Stripe asks a merchant to keep the terms of stored-card
    charges with the card)."""
    note = f"Payment plan {plan.id} ({plan.agreed_at:%Y-%m-%d}): {plan.consent_text}"
    kept = consent.consent_text or ""
    if plan.id not in kept:
        consent.consent_text = f"{kept}\n\n{note}".strip()


def _instalments(
    invoice: Invoice, terms: Terms, owed: Money, today: date
) -> list[tuple[date, int]]:
    """The plan's (day, amount) pairs: explicit, or split by allocation; each a day from
    today on, in order, no smaller than a card can be charged, adding up to `owed`."""
    if terms.explicit:
        dated = [(day, amount) for day, amount in terms.explicit]
        if sum(amount for _, amount in dated) != owed.amount:
            raise field_error(
                "schedule_does_not_add_up",
                "schedule",
                f"The instalments add up to {sum(a for _, a in dated)}; invoice "
                f"{invoice.number} owes {owed.amount} now.",
            )
        field = "schedule"
    else:
        assert terms.first is not None and terms.count is not None and terms.interval
        days = schedules.due_days(terms.first, terms.count, terms.interval)
        dated = list(
            zip(days, (part.amount for part in schedules.split(owed, terms.count)), strict=True)
        )
        field = "first_at"
    days = [day for day, _ in dated]
    if days[0] < today:
        raise field_error("date_in_past", field, f"The first instalment is before {today}.")
    if any(later <= earlier for earlier, later in zip(days, days[1:], strict=False)):
        raise field_error("dates_out_of_order", field, "Each instalment falls after the last.")
    least = STRIPE_MINIMUM_CHARGE.get(invoice.currency, 1)
    if min(amount for _, amount in dated) < least:
        raise field_error(
            "instalment_too_small",
            "instalments" if field == "first_at" else field,
            f"Each instalment must be at least {Money(least, invoice.currency).format()}, "
            "the least a card can be charged: choose fewer instalments.",
        )
    return dated


def consent_text(
    invoice: Invoice, dated: list[tuple[date, int]], brand: str, last4: str, clinic: Clinic
) -> str:
    """The words the patient agrees to: who charges which card, each amount and date, and
    how to cancel (what Stripe asks a merchant to say before charging a saved card later)."""
    listed = "; ".join(
        f"{Money(amount, invoice.currency).format()} on {clinic_date(day)}" for day, amount in dated
    )
    total = Money(sum(amount for _, amount in dated), invoice.currency).format()
    return (
        f"I authorize {clinic.name} to charge my {brand.title()} card ending {last4} "
        f"{len(dated)} payment{'s' if len(dated) != 1 else ''} for invoice {invoice.number}, "
        f"{total} in all: {listed}. A declined payment may be tried again over the following "
        f"days. I can cancel this plan at any time before a payment date by contacting "
        f"{clinic.name} ({clinic.contact}); cancelling does not refund payments already made, "
        "and what is unpaid stays owed."
    )
