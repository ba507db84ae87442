"""A patient moves what charges a saved card on a schedule (payment plans and memberships
that are not over) to another saved card, agreeing to the new card's words: after that
the old card can be removed. Charges waiting for their day (or a retry) follow at once;
one being made now goes on with the card it started with."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date

from sqlalchemy import ColumnElement, select, update
from sqlalchemy.orm import Session

from billing.adapters.membership_models import Membership, MembershipPeriod
from billing.adapters.models import Invoice, utcnow
from billing.adapters.schedule_models import PaymentPlan, ScheduledCharge
from billing.adapters.stripe_gateway import Card
from billing.domain import memberships as membership_rules
from billing.domain import schedules
from billing.domain.errors import field_error
from billing.domain.policy import FEE
from billing.services.access import audit
from billing.services.payments import memberships, plans


@dataclass(frozen=True, slots=True)
class Agreement:
    """How the patient agreed to the new card's words."""

    accepted: str  # online (the portal), offline
    ip_address: str | None = None
    user_agent: str | None = None


def move(
    session: Session,
    card_of: Callable[[str], Card],
    patient_id: str,
    from_card: str,
    to_card: str,
    agreement: Agreement,
    clinic: plans.Clinic,
    today: date,
) -> list[str]:
    """Move the patient's live plans and memberships charging `from_card` to `to_card`
    (a card saved for them); what moved, in the patient's words."""
    if from_card == to_card:
        raise field_error("same_card", "to", "Choose another card than the one they use now.")
    plans.saved_card(session, patient_id, to_card, fee=False)
    session.commit()  # no transaction stays open across the call to Stripe
    card = card_of(to_card)
    moved: list[str] = []
    for plan in session.scalars(
        select(PaymentPlan)
        .where(
            PaymentPlan.patient_id == patient_id,
            PaymentPlan.payment_method_id == from_card,
            PaymentPlan.status.in_(schedules.LIVE),
        )
        .with_for_update()
    ):
        invoice = session.get_one(Invoice, plan.invoice_id)
        plans.saved_card(session, patient_id, to_card, fee=invoice.kind == FEE)
        left = [
            (item.due_on, item.amount - item.amount_paid)
            for item in plan.items
            if item.status in schedules.DUE
        ]
        plan.consent_text = plans.consent_text(invoice, left, card.brand, card.last4, clinic)
        _agreed(plan, card, to_card, agreement)
        _follow(session, ScheduledCharge.plan_id == plan.id, from_card, to_card)
        audit.record(session, "plan.card_changed", "plan", plan.id, payment_method_id=to_card)
        moved.append(f"the payment plan of invoice {invoice.number}")
    for membership in session.scalars(
        select(Membership)
        .where(
            Membership.patient_id == patient_id,
            Membership.payment_method_id == from_card,
            Membership.status.in_(membership_rules.LIVE),
        )
        .with_for_update()
    ):
        next_day = membership_rules.next_charge_on(membership) or today
        membership.consent_text = memberships.consent_text(
            membership.plan,
            max(next_day, today),
            card.brand,
            card.last4,
            clinic,
            membership.prorated,
        )
        _agreed(membership, card, to_card, agreement)
        periods = select(MembershipPeriod.scheduled_charge_id).where(
            MembershipPeriod.membership_id == membership.id
        )
        _follow(session, ScheduledCharge.id.in_(periods), from_card, to_card)
        audit.record(
            session,
            "membership.card_changed",
            "membership",
            membership.id,
            payment_method_id=to_card,
        )
        moved.append(f"the membership {membership.plan.name}")
    session.commit()
    return moved


def _agreed(
    schedule: PaymentPlan | Membership, card: Card, to_card: str, agreement: Agreement
) -> None:
    schedule.payment_method_id = to_card
    schedule.card_brand, schedule.card_last4 = card.brand, card.last4
    schedule.consent_accepted = agreement.accepted
    schedule.agreed_at = utcnow()
    schedule.ip_address, schedule.user_agent = agreement.ip_address, agreement.user_agent


def _follow(session: Session, which: ColumnElement[bool], from_card: str, to_card: str) -> None:
    """Charges waiting for their day or a retry, of this schedule, follow the card."""
    session.execute(
        update(ScheduledCharge)
        .where(
            which,
            ScheduledCharge.payment_method_id == from_card,
            ScheduledCharge.status.in_(schedules.DUE),
        )
        .values(payment_method_id=to_card, updated_at=utcnow())
    )
