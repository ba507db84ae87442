"""What a membership's period does when its money moves: paid (the membership renewed, and
active again if it was past due), or its charge given up (past due: no benefits until the
period is paid). Called in the transaction that moved the money; apart from payments, so
that the invoice's and the scheduler's code can both call it."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from billing.adapters.membership_models import Membership, MembershipPeriod
from billing.adapters.models import Invoice
from billing.adapters.schedule_models import ScheduledCharge
from billing.domain import memberships as rules
from billing.domain.policy import MEMBERSHIP
from billing.services.access import audit
from billing.services.integrations import events


def _locked(session: Session, period: MembershipPeriod) -> Membership:
    return session.scalars(
        select(Membership)
        .where(Membership.id == period.membership_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    ).one()


def invoice_paid(session: Session, invoice: Invoice) -> None:
    """A period's invoice was just paid (by the scheduler, a pay link or the desk)."""
    if invoice.kind != MEMBERSHIP:
        return
    period = session.scalars(
        select(MembershipPeriod).where(MembershipPeriod.invoice_id == invoice.id)
    ).one_or_none()
    if period is None:
        return
    membership = _locked(session, period)
    if membership.status == rules.PAST_DUE:
        membership.status = rules.ACTIVE
        audit.record(session, "membership.reactivated", "membership", membership.id)
    audit.record(
        session,
        "membership.renewed",
        "membership",
        membership.id,
        period=period.number,
        invoice_id=invoice.id,
        amount=period.amount,
    )
    session.flush()
    if membership.status != rules.CANCELLED:  # a fee paid late for an ended one: audit only
        events.publish(session, "membership.renewed", "membership", membership)


def charge_given_up(session: Session, item: ScheduledCharge) -> None:
    """A period's charge was given up (retries used up, or a decline no retry changes):
    the membership is past due, its benefits paused until the period is paid."""
    if item.kind != MEMBERSHIP:
        return
    period = session.scalars(
        select(MembershipPeriod).where(MembershipPeriod.scheduled_charge_id == item.id)
    ).one_or_none()
    if period is None:
        return
    latest = session.scalar(
        select(MembershipPeriod.id)
        .where(MembershipPeriod.membership_id == period.membership_id)
        .order_by(MembershipPeriod.number.desc())
        .limit(1)
    )
    membership = _locked(session, period)
    if membership.status != rules.ACTIVE or latest != period.id:
        return
    membership.status = rules.PAST_DUE
    audit.record(session, "membership.past_due", "membership", membership.id, period=period.number)
    session.flush()
    events.publish(session, "membership.past_due", "membership", membership)
