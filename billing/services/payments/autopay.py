"""AutoPay: a patient's open balances charged to their saved card without anyone asking,
when attendance is marked and nightly for every open invoice whose session has passed (or
that has no session), as the practice-management systems do.

A patient is on AutoPay when they said so (`PUT /v1/patients/{id}/autopay`, with their
consent to it), or when the clinic puts every patient with a card saved with consent on it
(`AUTOPAY=on`) and they did not turn it off. AutoPay queues one scheduled charge per
invoice (a unique index: however often attendance or the nightly run queues it), which the
scheduler charges like an instalment, retries like one, and records in the audit trail
with what queued it. Invoices on a payment plan are left to their plan; a fee is never
charged to an HSA/FSA card.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import and_, exists, select, true, update
from sqlalchemy.orm import Session

from billing.adapters.booking_models import CardConsent
from billing.adapters.db import dialect_insert
from billing.adapters.models import Invoice, Patient, new_id, utcnow
from billing.adapters.schedule_models import AutopaySetting, PaymentPlan, ScheduledCharge
from billing.adapters.stripe_gateway import Card
from billing.domain import statuses
from billing.domain.dates import day_of
from billing.domain.errors import Conflict, field_error
from billing.domain.policy import MEMBERSHIP
from billing.domain.schedules import CANCELLED, DUE, LIVE, SCHEDULED
from billing.services.access import audit
from billing.services.payments import dunning
from billing.services.payments.patients import check_known

AUTOPAY = "autopay"
ATTENDED, NIGHTLY = "attended", "nightly"


@dataclass(frozen=True, slots=True)
class Consent:
    accepted: str = "offline"
    agreed_at: datetime | None = None
    ip_address: str | None = None
    user_agent: str | None = None


@dataclass(frozen=True, slots=True)
class AutopayView:
    patient_id: str
    enabled: bool
    source: str  # patient (their own setting) or clinic (AUTOPAY)
    setting: AutopaySetting | None
    card: dict[str, str | None] | None


def consent_text(clinic_name: str, brand: str, last4: str, contact: str) -> str:
    return (
        f"I authorize {clinic_name} to charge my {brand.title()} card ending {last4} for "
        "the balance of my invoices when a visit is marked done and, for a bill left open "
        "after its visit, each night until it is paid. A declined payment may be tried "
        f"again over the following days. I can turn this off at any time by contacting "
        f"{clinic_name} ({contact})."
    )


def set_autopay(
    session: Session,
    card_of: Callable[[str], Card],
    patient_id: str,
    enabled: bool,
    payment_method: str | None,
    consent: Consent,
    clinic_name: str,
    contact: str,
) -> AutopayView:
    """Turn the patient's AutoPay on (to `payment_method`, by default their default card,
    with their consent recorded) or off."""
    check_known(session, patient_id)
    card_id = payment_method or _default_card(session, patient_id)
    brand = last4 = None
    text = None
    if enabled:
        saved = session.get(CardConsent, card_id) if card_id else None
        if (
            saved is None
            or saved.patient_id != patient_id
            or saved.removed_at is not None
            or saved.mandate_id is not None  # a bank account: AutoPay charges cards
        ):
            raise field_error(
                "unknown_payment_method",
                "payment_method",
                f"Patient {patient_id} has no saved card "
                f"{'to name' if card_id is None else card_id}: save one first.",
            )
        session.commit()  # no transaction stays open across the call to Stripe
        card = card_of(str(card_id))
        brand, last4 = card.brand, card.last4
        text = consent_text(clinic_name, brand, last4, contact)
    session.execute(  # two first PUTs at once: one row, the second waits for it
        dialect_insert(session)(AutopaySetting)
        .values(patient_id=patient_id, enabled=enabled, updated_at=utcnow())
        .on_conflict_do_nothing(index_elements=["patient_id"])
    )
    setting = session.get_one(
        AutopaySetting, patient_id, with_for_update=True, populate_existing=True
    )
    setting.enabled = enabled
    _follow_the_setting(session, patient_id, card_id if enabled else None)
    if enabled:
        setting.payment_method_id, setting.card_brand, setting.card_last4 = card_id, brand, last4
        setting.consent_text, setting.consent_accepted = text, consent.accepted
        setting.agreed_at = consent.agreed_at or utcnow()
        setting.ip_address, setting.user_agent = consent.ip_address, consent.user_agent
    audit.record(
        session,
        "autopay.enabled" if enabled else "autopay.disabled",
        "patient",
        patient_id,
        payment_method_id=card_id if enabled else None,
    )
    session.commit()
    return autopay_of(session, patient_id)


def _follow_the_setting(session: Session, patient_id: str, card_id: str | None) -> None:
    """In the caller's transaction: AutoPay charges queued and not yet being made follow
    the patient's new setting: to the new card, or cancelled when it was turned off (one
    being made now goes on: it was asked for a moment too late)."""
    waiting = ScheduledCharge.patient_id == patient_id, ScheduledCharge.kind == AUTOPAY
    if card_id is None:
        session.execute(
            update(ScheduledCharge)
            .where(*waiting, ScheduledCharge.status.in_(DUE))
            .values(status=CANCELLED, next_attempt_at=None, updated_at=utcnow())
        )
    else:
        session.execute(
            update(ScheduledCharge)
            .where(*waiting, ScheduledCharge.status.in_(DUE))
            .values(payment_method_id=card_id, updated_at=utcnow())
        )


def autopay_of(session: Session, patient_id: str) -> AutopayView:
    check_known(session, patient_id)
    return _view(session, patient_id)


def _view(session: Session, patient_id: str) -> AutopayView:
    """The patient's AutoPay, in the caller's transaction (nothing committed)."""
    setting = session.get(AutopaySetting, patient_id, populate_existing=True)
    card = _card(session, patient_id, setting)
    if setting is not None:
        return AutopayView(patient_id, setting.enabled, "patient", setting, card)
    return AutopayView(
        patient_id, dunning.settings().autopay_on and card is not None, "clinic", None, card
    )


def queue(
    session: Session, invoice_ids: Sequence[str], reason: str, now: datetime | None = None
) -> int:
    """In the caller's transaction: AutoPay charges of these invoices, due now, for those
    whose patients are on AutoPay (and not already queued); how many were queued."""
    now = now or utcnow()
    made = 0
    insert = dialect_insert(session)
    for invoice in session.scalars(select(Invoice).where(Invoice.id.in_(invoice_ids))):
        card = _charged_card(session, invoice)
        if card is None or invoice.balance_due <= 0 or invoice.plan is not None:
            continue
        if invoice.status not in statuses.UNPAID:
            continue
        item_id = session.execute(
            insert(ScheduledCharge)
            .values(
                id=new_id("sch"),
                kind=AUTOPAY,
                reason=reason,
                invoice_id=invoice.id,
                patient_id=invoice.patient_id,
                due_on=day_of(now, dunning.settings().zone),
                amount=invoice.balance_due,
                currency=invoice.currency,
                status=SCHEDULED,
                payment_method_id=card,
                attempts=0,
                declines=0,
                amount_paid=0,
                next_attempt_at=now,
                api_key_id=_owner(session),
                created_at=now,
                updated_at=now,
            )
            .on_conflict_do_nothing()
            .returning(ScheduledCharge.id)
        ).scalar_one_or_none()
        if item_id is not None:
            audit.record(
                session,
                "schedule.queued",
                "scheduled_charge",
                item_id,
                invoice_id=invoice.id,
                reason=reason,
                amount=invoice.balance_due,
            )
            made += 1
    return made


def queue_nightly(session: Session, now: datetime) -> int:
    """Every open invoice whose session has passed (or that has no session, a package or a
    fee) of a patient on AutoPay, queued once."""
    queued_already = exists().where(
        ScheduledCharge.invoice_id == Invoice.id,
        ScheduledCharge.kind == AUTOPAY,
        ScheduledCharge.status != CANCELLED,
    )
    turned_on = exists().where(
        AutopaySetting.patient_id == Invoice.patient_id, AutopaySetting.enabled.is_(True)
    )
    on_a_plan = exists().where(
        and_(PaymentPlan.invoice_id == Invoice.id, PaymentPlan.status.in_(LIVE))
    )
    candidates = session.scalars(
        select(Invoice.id).where(
            Invoice.status.in_(statuses.PAYABLE),
            Invoice.kind != MEMBERSHIP,  # a membership's fee is its own scheduled charge
            Invoice.scheduled_at <= now,
            ~queued_already,
            ~on_a_plan,
            true() if dunning.settings().autopay_on else turned_on,  # the rest: nobody's AutoPay
        )
    ).all()
    made = queue(session, list(candidates), NIGHTLY, now)
    session.commit()
    return made


def withdraw_for_plan(session: Session, invoice_id: str) -> None:
    """In the caller's transaction, under the invoice's lock: a plan now pays the bill, so
    AutoPay's charge of it waiting is cancelled (409 while it is being made)."""
    waiting = session.scalars(  # locked: a runner cannot take one while this decides
        select(ScheduledCharge)
        .where(ScheduledCharge.invoice_id == invoice_id, ScheduledCharge.kind == AUTOPAY)
        .with_for_update()
        .execution_options(populate_existing=True)
    ).all()
    if any(item.status == "charging" for item in waiting):
        raise Conflict(
            "payment_in_progress",
            "AutoPay is charging this invoice now; try the plan again in a minute.",
        )
    session.execute(
        update(ScheduledCharge)
        .where(
            ScheduledCharge.invoice_id == invoice_id,
            ScheduledCharge.kind == AUTOPAY,
            ScheduledCharge.status.in_(DUE),
        )
        .values(status=CANCELLED, next_attempt_at=None, updated_at=utcnow())
    )


def still_charges(session: Session, invoice: Invoice, item: ScheduledCharge) -> str | None:
    """None when AutoPay still charges this bill to the item's card; else why not:
    `no_card_on_file` (the card was removed: given up, finance and the patient told), or
    `withdrawn` (turned off, another card, a plan pays the bill now: cancelled quietly)."""
    consent = session.get(CardConsent, str(item.payment_method_id))
    if consent is None or consent.removed_at is not None:
        return "no_card_on_file"
    if invoice.plan is None and _charged_card(session, invoice) == item.payment_method_id:
        return None
    return "withdrawn"


def _charged_card(session: Session, invoice: Invoice) -> str | None:
    """The card AutoPay charges for the invoice, or None when it does not."""
    view = _view(session, invoice.patient_id)
    if not view.enabled or view.card is None:
        return None
    card_id = str(view.card["id"])
    consent = session.get(CardConsent, card_id)
    if consent is None or consent.removed_at is not None:
        return None
    if invoice.kind == "fee" and consent.hsa_fsa:
        return None  # never a fee to an HSA/FSA card
    return card_id


def _card(
    session: Session, patient_id: str, setting: AutopaySetting | None
) -> dict[str, str | None] | None:
    if setting is not None and setting.payment_method_id:
        return {
            "id": setting.payment_method_id,
            "brand": setting.card_brand,
            "last4": setting.card_last4,
        }
    patient = session.scalars(select(Patient).where(Patient.patient_id == patient_id)).first()
    if patient is None or patient.default_payment_method_id is None:
        return None
    consent = session.get(CardConsent, patient.default_payment_method_id)
    if setting is None and (consent is None or not consent.consent_text):
        return None  # the clinic's AutoPay only charges a card saved with consent
    return {
        "id": patient.default_payment_method_id,
        "brand": patient.default_card_brand,
        "last4": patient.default_card_last4,
    }


def card_shown(
    session: Session, patient_id: str, payment_method_id: str
) -> tuple[str | None, str | None]:
    """The brand and last four digits of the patient's card `payment_method_id`."""
    card = _card(session, patient_id, session.get(AutopaySetting, patient_id))
    if card is not None and card["id"] == payment_method_id:
        return card["brand"], card["last4"]
    return None, None


def _default_card(session: Session, patient_id: str) -> str | None:
    patient = session.scalars(select(Patient).where(Patient.patient_id == patient_id)).first()
    return patient.default_payment_method_id if patient is not None else None


def _owner(session: Session) -> int | None:
    """The key AutoPay's charges are made under (their idempotency keys' owner): the
    service's own."""
    from billing.services.access import keys

    return keys.system_key_id(session)
