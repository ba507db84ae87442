"""Patients as Stripe sees them: a Customer made once, and a card on file.

A card is saved the way Stripe asks for cards charged later while the patient is away:
set up with the bank through a SetupIntent (confirmed in the patient's browser, or here
for a PaymentMethod Stripe.js made), or on the pay page's payment with
`setup_future_usage`; never attached directly. The consent the patient gave is kept with
it as Stripe's mandate data describes a customer acceptance: the text, when, and from
which address and browser.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from billing.adapters.booking_models import CardConsent
from billing.adapters.db import dialect_insert
from billing.adapters.membership_models import Membership, MembershipPlan
from billing.adapters.models import Invoice, Patient, QuoteLine, new_id, utcnow
from billing.adapters.schedule_models import AutopaySetting, PaymentPlan
from billing.adapters.stripe_gateway import Card, MandateAcceptance, SetupResult, StripeGateway
from billing.domain import memberships as membership_rules
from billing.domain import schedules as plan_rules
from billing.domain.errors import Conflict, NotFound, PaymentRequired
from billing.services.access import audit


def get_or_create_patient(session: Session, patient_id: str) -> Patient:
    """The patient's row, made on first use; safe when two requests race to make it."""
    insert = dialect_insert(session)
    session.execute(
        insert(Patient)
        .values(id=new_id("pt"), patient_id=patient_id)
        .on_conflict_do_nothing(index_elements=["patient_id"])
    )
    session.commit()
    return session.scalars(select(Patient).where(Patient.patient_id == patient_id)).one()


def check_known(session: Session, patient_id: str) -> None:
    """404 `patient_not_found` unless a quote or an invoice of the clinic names the
    patient: no Stripe Customer is made for an id that nothing here has ever seen."""
    known = any(
        session.scalar(select(column).where(where == patient_id).limit(1))
        for column, where in (
            (Patient.id, Patient.patient_id),
            (QuoteLine.id, QuoteLine.patient_id),
            (Invoice.id, Invoice.patient_id),
        )
    )
    session.commit()
    if not known:
        raise NotFound(
            "patient_not_found",
            f"No quote or invoice names patient {patient_id}: quote a booking for them first.",
        )


def ensure_customer(session: Session, gateway: StripeGateway, patient_id: str) -> Patient:
    """The patient with a Stripe Customer, created once and known only by an opaque ref."""
    patient = get_or_create_patient(session, patient_id)
    session.commit()  # no transaction stays open across the call to Stripe
    if patient.stripe_customer_id:
        return patient
    customer_id = gateway.create_customer(patient.id)
    session.execute(
        update(Patient)
        .where(Patient.id == patient.id, Patient.stripe_customer_id.is_(None))
        .values(stripe_customer_id=customer_id)
    )
    session.commit()
    session.refresh(patient)
    return patient


def start_setup_intent(session: Session, gateway: StripeGateway, patient_id: str) -> SetupResult:
    """A SetupIntent whose client secret lets the patient's browser set a card up."""
    check_known(session, patient_id)
    patient = ensure_customer(session, gateway, patient_id)
    assert patient.stripe_customer_id is not None
    return gateway.create_setup_intent(patient.stripe_customer_id)


def save_card(
    session: Session,
    gateway: StripeGateway,
    patient_id: str,
    *,
    payment_method_id: str | None = None,
    setup_intent_id: str | None = None,
    consent: dict[str, Any] | None = None,
    hsa_fsa: bool = False,
) -> Card:
    """Make a card set up for off-session use the patient's card on file, with the consent
    the patient gave or none: the SetupIntent the patient's browser confirmed, or a
    PaymentMethod set up now through one. 402 `authentication_required` (with the
    SetupIntent's client secret) when the bank wants the patient to confirm the card."""
    check_known(session, patient_id)
    patient = ensure_customer(session, gateway, patient_id)
    customer_id = patient.stripe_customer_id
    assert customer_id is not None
    if setup_intent_id is not None:
        setup = gateway.retrieve_setup_intent(setup_intent_id)
        if setup.customer_id != customer_id:
            raise NotFound(
                "setup_intent_not_found",
                f"SetupIntent {setup_intent_id} was not made for patient {patient_id}.",
            )
    else:
        assert payment_method_id is not None
        setup = gateway.set_up_card(customer_id, payment_method_id)
    card = gateway.make_default_card(customer_id, _set_up_method(setup))
    session.execute(
        update(Patient)
        .where(Patient.id == patient.id)
        .values(
            default_payment_method_id=card.id,
            default_card_brand=card.brand,
            default_card_last4=card.last4,
        )
    )
    consent = consent or {}
    session.merge(
        CardConsent(
            payment_method_id=card.id,
            patient_id=patient_id,
            consent_text=consent.get("text"),
            agreed_at=consent.get("agreed_at"),
            ip_address=consent.get("ip_address"),
            user_agent=consent.get("user_agent"),
            setup_intent_id=setup.id,
            invoice_id=None,
            hsa_fsa=hsa_fsa,
            created_at=utcnow(),
            removed_at=None,
            max_per_charge=consent.get("max_per_charge"),
            max_per_year=consent.get("max_per_year"),
            expires_on=consent.get("expires_on"),
        )
    )
    audit.record(
        session,
        "card.saved",
        "patient",
        patient_id,
        payment_method_id=card.id,
        setup_intent_id=setup.id,
        max_per_charge=consent.get("max_per_charge"),
        max_per_year=consent.get("max_per_year"),
        expires_on=consent["expires_on"].isoformat() if consent.get("expires_on") else None,
        consent_text=consent.get("text"),
        agreed_at=consent["agreed_at"].isoformat() if consent.get("agreed_at") else None,
        ip_address=consent.get("ip_address"),
        hsa_fsa=hsa_fsa,
    )
    session.commit()
    return card


def save_bank_account(
    session: Session,
    gateway: StripeGateway,
    patient_id: str,
    payment_method_id: str,
    mandate: dict[str, Any],
) -> Card:
    """Make a US bank account (a PaymentMethod Stripe.js made, linked through Financial
    Connections) the patient's bank account on file, set up at Stripe for debits under the
    mandate the patient accepted: its text, when, and online (address and browser) or
    on a form signed at the desk. Every debit names that mandate."""
    check_known(session, patient_id)
    patient = ensure_customer(session, gateway, patient_id)
    customer_id = patient.stripe_customer_id
    assert customer_id is not None
    acceptance = MandateAcceptance(
        online=mandate["accepted"] == "online",
        accepted_at=mandate.get("agreed_at"),
        ip_address=mandate.get("ip_address"),
        user_agent=mandate.get("user_agent"),
    )
    setup = gateway.set_up_bank_account(customer_id, payment_method_id, acceptance)
    account = gateway.card_of(_set_up_method(setup))
    if account.kind != "us_bank_account" or setup.mandate_id is None:
        raise Conflict(
            "not_a_bank_account",
            f"PaymentMethod {payment_method_id} is not a US bank account set up with a mandate.",
        )
    session.execute(
        update(Patient)
        .where(Patient.id == patient.id)
        .values(
            bank_payment_method_id=account.id,
            bank_name=account.brand,
            bank_last4=account.last4,
        )
    )
    session.merge(
        CardConsent(
            payment_method_id=account.id,
            patient_id=patient_id,
            consent_text=mandate["text"],
            agreed_at=mandate.get("agreed_at") or utcnow(),
            ip_address=mandate.get("ip_address"),
            user_agent=mandate.get("user_agent"),
            setup_intent_id=setup.id,
            invoice_id=None,
            hsa_fsa=False,
            mandate_id=setup.mandate_id,
            created_at=utcnow(),
            removed_at=None,
        )
    )
    audit.record(
        session,
        "bank_account.saved",
        "patient",
        patient_id,
        payment_method_id=account.id,
        setup_intent_id=setup.id,
        mandate_id=setup.mandate_id,
        accepted=mandate["accepted"],
        consent_text=mandate["text"],
        ip_address=mandate.get("ip_address"),
    )
    session.commit()
    return account


def _set_up_method(setup: SetupResult) -> str:
    """The card a SetupIntent set up, or why it set nothing up."""
    if setup.status == "requires_action":
        raise PaymentRequired(
            "authentication_required",
            "The card's bank asks the patient to confirm this card: confirm the SetupIntent "
            "in the patient's browser with its client secret, then send its id as "
            "`setup_intent`.",
            extra={"setup_intent": setup.id, "client_secret": setup.client_secret},
        )
    if setup.status != "succeeded" or setup.payment_method_id is None:
        raise Conflict(
            "setup_intent_not_succeeded",
            f"SetupIntent {setup.id} is {setup.status}: no card was set up with it.",
        )
    return setup.payment_method_id


def keep_card(session: Session, invoice: Any, payment: Any, payment_method_id: str) -> None:
    """In the transaction that records a pay-page payment whose patient ticked "save this
    card": the card (Stripe attached it to the customer) is the card on file, with the
    consent text, its time and the invoice."""
    session.execute(
        update(Patient)
        .where(Patient.patient_id == invoice.patient_id)
        .values(
            default_payment_method_id=payment_method_id,
            default_card_brand=payment.card_brand,
            default_card_last4=payment.card_last4,
        )
    )
    known = session.get(CardConsent, payment_method_id)
    hsa_fsa = bool(known and known.hsa_fsa)  # a card once marked HSA/FSA stays so
    session.merge(
        CardConsent(
            payment_method_id=payment_method_id,
            patient_id=invoice.patient_id,
            consent_text=payment.save_card_consent,
            agreed_at=payment.save_card_agreed_at,
            ip_address=payment.save_card_ip_address,
            user_agent=payment.save_card_user_agent,
            setup_intent_id=None,
            invoice_id=invoice.id,
            hsa_fsa=hsa_fsa,
            created_at=utcnow(),
            removed_at=None,
        )
    )
    audit.record(
        session,
        "card.saved",
        "patient",
        invoice.patient_id,
        payment_method_id=payment_method_id,
        consent_text=payment.save_card_consent,
        agreed_at=payment.save_card_agreed_at.isoformat() if payment.save_card_agreed_at else None,
        ip_address=payment.save_card_ip_address,
        invoice_id=invoice.id,
        hsa_fsa=hsa_fsa,
    )


def uses_of(
    session: Session, patient_id: str, payment_method_id: str, autopay: bool = True
) -> list[str]:
    """What charges a saved card on a schedule, in a patient's words: a payment plan or a
    membership that is not over, and (with `autopay`) AutoPay."""
    uses = [
        f"the payment plan of invoice {number}"
        for number in session.scalars(
            select(Invoice.number)
            .join(PaymentPlan, PaymentPlan.invoice_id == Invoice.id)
            .where(
                PaymentPlan.patient_id == patient_id,
                PaymentPlan.payment_method_id == payment_method_id,
                PaymentPlan.status.in_(plan_rules.LIVE),
            )
            .order_by(Invoice.number)
        )
    ]
    uses += [
        f"the membership {name}"
        for name in session.scalars(
            select(MembershipPlan.name)
            .join(Membership, Membership.membership_plan_id == MembershipPlan.id)
            .where(
                Membership.patient_id == patient_id,
                Membership.payment_method_id == payment_method_id,
                Membership.status.in_(membership_rules.LIVE),
            )
        )
    ]
    setting = session.get(AutopaySetting, patient_id) if autopay else None
    if setting is not None and setting.enabled and setting.payment_method_id == payment_method_id:
        uses.append("AutoPay")
    return uses


def remove_card(
    session: Session, gateway: StripeGateway, patient_id: str, payment_method_id: str
) -> None:
    """Detach a saved card at Stripe; it is no longer the card on file, nor charged. A card
    a payment plan or a membership charges is kept (409 `card_in_use`) until another card
    is chosen for them (or they end); AutoPay's card may go (its next charge is given up
    and the patient told, as for a card that expired)."""
    uses = uses_of(session, patient_id, payment_method_id, autopay=False)
    if uses:
        session.rollback()
        raise Conflict(
            "card_in_use",
            f"This card is used by {', '.join(uses)}: choose another card for "
            f"{'it' if len(uses) == 1 else 'them'} first.",
        )
    consent = session.get(CardConsent, payment_method_id)
    patient = session.scalars(select(Patient).where(Patient.patient_id == patient_id)).first()
    kept = consent is not None and consent.patient_id == patient_id and consent.removed_at is None
    on_file = (patient.default_payment_method_id, patient.bank_payment_method_id) if patient else ()
    known = patient is not None and (kept or payment_method_id in on_file)
    session.commit()
    if not known or patient is None:
        raise NotFound(
            "payment_method_not_found",
            f"Patient {patient_id} has no saved card {payment_method_id!r}.",
        )
    gateway.detach_card(payment_method_id)
    session.execute(
        update(Patient)
        .where(Patient.id == patient.id, Patient.default_payment_method_id == payment_method_id)
        .values(default_payment_method_id=None, default_card_brand=None, default_card_last4=None)
    )
    session.execute(  # a bank account on file is removed the same way
        update(Patient)
        .where(Patient.id == patient.id, Patient.bank_payment_method_id == payment_method_id)
        .values(bank_payment_method_id=None, bank_name=None, bank_last4=None)
    )
    if consent is not None:
        session.execute(
            update(CardConsent)
            .where(CardConsent.payment_method_id == payment_method_id)
            .values(removed_at=utcnow())
        )
    audit.record(
        session, "card.removed", "patient", patient_id, payment_method_id=payment_method_id
    )
    session.commit()


def set_default(
    session: Session, gateway: StripeGateway, patient_id: str, payment_method_id: str
) -> Card:
    """Make one of the patient's saved cards the card on file (charged for visits and
    fees, and by AutoPay when it names no card)."""
    consent = session.get(CardConsent, payment_method_id)
    if (
        consent is None
        or consent.patient_id != patient_id
        or consent.removed_at is not None
        or consent.mandate_id is not None  # a bank account is not a card on file
    ):
        session.rollback()
        raise NotFound(
            "payment_method_not_found",
            f"Patient {patient_id} has no saved card {payment_method_id!r}.",
        )
    session.commit()  # no transaction stays open across the call to Stripe
    card = gateway.card_of(payment_method_id)
    session.execute(
        update(Patient)
        .where(Patient.patient_id == patient_id)
        .values(
            default_payment_method_id=card.id,
            default_card_brand=card.brand,
            default_card_last4=card.last4,
        )
    )
    audit.record(
        session, "card.made_default", "patient", patient_id, payment_method_id=payment_method_id
    )
    session.commit()
    return card


def consents(session: Session, patient_id: str) -> dict[str, CardConsent]:
    rows = session.scalars(select(CardConsent).where(CardConsent.patient_id == patient_id))
    return {row.payment_method_id: row for row in rows}


def list_cards(session: Session, gateway: StripeGateway, patient_id: str) -> list[Card]:
    """The patient's saved cards (brand, last four, expiry); none before a Customer exists."""
    patient = session.scalars(select(Patient).where(Patient.patient_id == patient_id)).first()
    session.commit()
    if patient is None or patient.stripe_customer_id is None:
        return []
    return gateway.list_cards(patient.stripe_customer_id)


def default_card_id(session: Session, patient_id: str) -> str | None:
    patient = session.scalars(select(Patient).where(Patient.patient_id == patient_id)).first()
    return patient.default_payment_method_id if patient else None
