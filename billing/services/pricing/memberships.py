"""Memberships in the catalogue, versioned as packages are (a new version of a code is what
new members join; members keep the version they joined at, whose fee their consent names),
and the benefit a patient's membership gives the sessions it covers."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from billing.adapters.db import next_version
from billing.adapters.membership_models import Membership, MembershipPlan
from billing.adapters.models import utcnow
from billing.domain import memberships as rules
from billing.domain.dates import UTC_ZONE, day_of
from billing.domain.errors import field_error
from billing.services.access import audit


def create_membership_plan(
    session: Session, body: dict[str, Any], now: datetime | None = None
) -> MembershipPlan:
    """A new version of a membership code (the one before it is no longer joined); the
    body as MembershipPlanRequestSchema validated it (one benefit, a fee a card can pay)."""
    now = now or utcnow()
    code = body["code"].upper()
    benefit, value = _benefit(body)
    plan = MembershipPlan(
        code=code,
        version=next_version(session, MembershipPlan, code, now),
        name=body["name"],
        interval=body["interval"],
        amount=body["amount"],
        currency=body["currency"],
        benefit=benefit,
        benefit_value=value,
        created_at=now,
    )
    session.add(plan)
    session.flush()
    audit.record(
        session,
        "membership_plan.created",
        "membership_plan",
        plan.id,
        code=code,
        version=plan.version,
        interval=plan.interval,
        amount=plan.amount,
        currency=plan.currency,
        benefit=benefit,
        benefit_value=value,
    )
    session.commit()
    return plan


def _benefit(body: dict[str, Any]) -> tuple[str, int]:
    """The benefit the body names, as (kind, figure): a percent, a price in minor units,
    or half-credits."""
    name = next(name for name in rules.BENEFITS if body.get(name) is not None)
    if name == rules.INCLUDED_CREDITS:
        return name, int(round(body[name] * 2))
    return name, int(body[name])


def list_membership_plans(session: Session, include_retired: bool = False) -> list[MembershipPlan]:
    statement = select(MembershipPlan).order_by(MembershipPlan.code, MembershipPlan.version)
    if not include_retired:
        statement = statement.where(MembershipPlan.retired_at.is_(None))
    return list(session.scalars(statement))


def current_membership_plan(session: Session, code: str, field: str = "code") -> MembershipPlan:
    plan = session.scalars(
        select(MembershipPlan).where(
            MembershipPlan.code == code.upper(), MembershipPlan.retired_at.is_(None)
        )
    ).first()
    if plan is None:
        raise field_error("membership_not_found", field, f"No membership {code!r} is offered.")
    return plan


@dataclass(frozen=True, slots=True)
class Benefit:
    """A membership's benefit for one patient's session."""

    membership_id: str
    code: str
    kind: str
    value: int


def benefits(
    session: Session, patient_ids: Sequence[str], at: datetime, currency: str
) -> dict[str, Benefit]:
    """The membership benefit of each patient whose membership holds on the clinic's day of
    `at` (active, not paused then, not ended before it) in the quote's currency."""
    day = day_of(at, _clinic_zone())
    rows = session.execute(
        select(Membership, MembershipPlan)
        .join(MembershipPlan, MembershipPlan.id == Membership.membership_plan_id)
        .where(
            Membership.patient_id.in_(patient_ids),
            Membership.status.in_((rules.ACTIVE, rules.PAUSED)),
            Membership.starts_on <= day,
            MembershipPlan.currency == currency,
        )
    ).all()
    found = {}
    for membership, offered in rows:
        if membership.ends_on is not None and day > membership.ends_on:
            continue
        if _paused_on(membership, day):
            continue
        found[membership.patient_id] = Benefit(
            membership.id, offered.code, offered.benefit, offered.benefit_value
        )
    return found


def _paused_on(membership: Membership, day: date) -> bool:
    paused_from, resumes_on = membership.paused_from, membership.resumes_on
    if paused_from is None:
        return False
    return paused_from <= day and (resumes_on is None or day < resumes_on)


def _clinic_zone() -> Any:
    """The clinic's time zone (UTC outside an app)."""
    from flask import current_app, has_app_context

    return current_app.config["CLINIC_ZONE"] if has_app_context() else UTC_ZONE
