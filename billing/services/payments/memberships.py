"""A patient's membership: joined with a saved card and the patient's consent to its fee,
charged each period off-session by the scheduler (one invoice and one scheduled charge per
period, so each period is charged once, retried as any scheduled charge is), paused,
cancelled at the period's end or now (with the clinic's refund rule), and its benefit
applied to the sessions it covers.

Periods are opened by the scheduler's run on the day they start (`renew_due`): a run that
comes late (the service was down) opens each period missed, in order; two runs at once
open each period once (the membership's row is locked, and a period's number is unique).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from billing.adapters import providers
from billing.adapters.cache import bump
from billing.adapters.credit_models import CreditHold, PatientPackage
from billing.adapters.membership_models import Membership, MembershipPeriod, MembershipPlan
from billing.adapters.models import Invoice, Payment, Refund, utcnow
from billing.adapters.schedule_models import ScheduledCharge
from billing.adapters.stripe_gateway import StripeGateway
from billing.domain import memberships as rules
from billing.domain import schedules, statuses
from billing.domain.dates import clinic_date, day_of
from billing.domain.errors import Conflict, NotFound, ServiceError, field_error
from billing.domain.money import STRIPE_MINIMUM_CHARGE, Money
from billing.domain.policy import MEMBERSHIP
from billing.domain.schedules import CHARGING, DUE, OWED, SCHEDULED
from billing.services import idempotency
from billing.services.access import audit, keys
from billing.services.idempotency import IdempotencyRequest
from billing.services.integrations import events
from billing.services.invoicing import invoices, ledger
from billing.services.payments import charges, dunning, online, plans, refunds
from billing.services.pricing.memberships import current_membership_plan

NOW, PERIOD_END = "now", "period_end"
log = logging.getLogger("billing.memberships")


@dataclass(frozen=True, slots=True)
class Joining:
    """What joining asks for: the catalogue code, the saved card, the first day, the
    consent, and the patient's name and email for the invoices (or the last quote's)."""

    code: str
    card: str
    starts_on: date | None = None
    consent: plans.Consent = plans.Consent()
    name: str | None = None
    email: str | None = None


def get_membership(session: Session, membership_id: str) -> Membership:
    membership = session.scalars(
        select(Membership)
        .where(Membership.id == membership_id)
        .execution_options(populate_existing=True)
    ).one_or_none()
    if membership is None:
        raise NotFound("membership_not_found", f"No membership {membership_id!r}.")
    return membership


def memberships_of(session: Session, patient_id: str) -> list[Membership]:
    return list(
        session.scalars(
            select(Membership)
            .where(Membership.patient_id == patient_id)
            .order_by(Membership.created_at, Membership.id)
        )
    )


def join(
    session: Session,
    gateway: StripeGateway,
    patient_id: str,
    joining: Joining,
    clinic: plans.Clinic,
    api_key_id: int,
    request: IdempotencyRequest | None = None,
    prorated: bool = False,
    now: datetime | None = None,
) -> Membership:
    """The patient joins the current version of a membership; its first period is begun
    (its invoice made) and charged on its first day (today's at the next run)."""
    now = now or utcnow()
    if request is not None:  # a replay answers what the first request made, as it was
        replay = idempotency.claim(session, request, "membership").replay_of
        session.rollback()  # the key is taken below, with what the request makes
        if replay is not None:
            return get_membership(session, replay)
    offered = current_membership_plan(session, joining.code)
    plans.saved_card(session, patient_id, joining.card, fee=False)
    name, email = invoices.patient_for_invoice(
        session, patient_id, {"name": joining.name, "email": joining.email}
    )
    today = day_of(now, clinic.zone)
    starts_on = joining.starts_on or today
    if starts_on < today:
        raise field_error("date_in_past", "starts_at", f"A membership starts {today} or later.")
    session.commit()  # no transaction stays open across the call to Stripe
    card = gateway.card_of(joining.card)
    claim = idempotency.Claim()
    if request is not None:  # taken with what it makes, in one transaction
        claim = idempotency.claim(session, request, "membership")
        if claim.replay_of is not None:
            session.commit()
            return get_membership(session, claim.replay_of)
    _refuse_a_second(session, patient_id)
    membership = Membership(
        patient_id=patient_id,
        membership_plan_id=offered.id,
        status=rules.ACTIVE,
        starts_on=starts_on,
        anchor_on=starts_on,
        anchor_number=1,
        prorated=prorated,
        payment_method_id=joining.card,
        card_brand=card.brand,
        card_last4=card.last4,
        consent_text=consent_text(offered, starts_on, card.brand, card.last4, clinic, prorated),
        consent_accepted=joining.consent.accepted,
        agreed_at=joining.consent.agreed_at or now,
        ip_address=joining.consent.ip_address,
        user_agent=joining.consent.user_agent,
        patient_name=name,
        patient_email=email,
        api_key_id=api_key_id,
        created_at=now,
    )
    session.add(membership)
    try:
        session.flush()
    except IntegrityError:  # joined at the same moment by another request
        session.rollback()
        _refuse_a_second(session, patient_id)
        raise
    membership.plan = offered
    if starts_on <= today:  # a later start is begun by the scheduler on its day
        _open_period(session, membership, 1, now, clinic.zone)
    audit.record(
        session,
        "membership.created",
        "membership",
        membership.id,
        patient_id=patient_id,
        code=offered.code,
        version=offered.version,
        starts_on=starts_on.isoformat(),
        payment_method_id=joining.card,
    )
    events.publish(session, "membership.created", "membership", membership)
    bump(session)  # every process's quotes look for members' prices from now
    if claim.row_id is not None:
        idempotency.complete(session, claim, membership.id)
    session.commit()
    return get_membership(session, membership.id)


def _refuse_a_second(session: Session, patient_id: str) -> None:
    """A patient has one membership at a time that is not cancelled."""
    live = session.scalar(
        select(Membership.id).where(
            Membership.patient_id == patient_id, Membership.status.in_(rules.LIVE)
        )
    )
    if live is not None:
        raise Conflict(
            "membership_exists",
            f"Patient {patient_id} is a member already ({live}): cancel it first.",
        )


def consent_text(
    offered: MembershipPlan,
    starts_on: date,
    brand: str,
    last4: str,
    clinic: plans.Clinic,
    prorated: bool,
) -> str:
    """The words the patient agrees to: the fee, how often and from when, the card, how to
    cancel and what cancelling gives back."""
    fee = Money(offered.amount, offered.currency).format()
    every = "month" if offered.interval == rules.MONTH else "year"
    when = (
        f"on the 1st of each {every} (the first {every} in proportion to its days)"
        if prorated
        else f"each {every} from {clinic_date(starts_on)}"
    )
    back = (
        "cancelling now refunds the unused days of the period paid for, unless a session "
        "it included was used"
        if prorated
        else "cancelling takes effect at the end of the period paid for, which is not refunded"
    )
    return (
        f"I authorize {clinic.name} to charge my {brand.title()} card ending {last4} {fee} "
        f"{when} for the {offered.name} membership, starting {clinic_date(starts_on)}, until "
        f"I cancel. A declined payment may be tried again over the following days. I can "
        f"cancel at any time by contacting {clinic.name} ({clinic.contact}); {back}."
    )


def _span(membership: Membership, number: int) -> rules.Period:
    return rules.period(
        membership.starts_on,
        membership.anchor_on,
        membership.plan.interval,
        number - membership.anchor_number + 1,
        membership.prorated,
    )


def _open_period(
    session: Session, membership: Membership, number: int, now: datetime, zone: ZoneInfo
) -> MembershipPeriod:
    """The period's invoice and the scheduled charge that collects it on its first day
    (a prorated few days' fee below what a card can be charged is not asked for)."""
    offered = membership.plan
    span = _span(membership, number)
    fee = rules.fee(
        Money(offered.amount, offered.currency), span, offered.interval, membership.prorated
    )
    if fee.amount < STRIPE_MINIMUM_CHARGE.get(offered.currency, 1):
        fee = Money.zero(offered.currency)
    half = rules.included_half_credits(
        offered.benefit_value if offered.benefit == rules.INCLUDED_CREDITS else 0,
        span,
        offered.interval,
        membership.prorated,
    )
    last_day = span.ends_on - timedelta(days=1)
    invoice = invoices.sale_invoice(
        session,
        membership.patient_id,
        {"name": membership.patient_name, "email": membership.patient_email},
        MEMBERSHIP,
        f"{offered.name} membership, {clinic_date(span.starts_on)} to {clinic_date(last_day)}",
        fee.amount,
        offered.currency,
        now,
        zone,
    )
    period = MembershipPeriod(
        membership_id=membership.id,
        number=number,
        starts_on=span.starts_on,
        ends_on=span.ends_on,
        amount=fee.amount,
        currency=offered.currency,
        half_credits=half,
        invoice_id=invoice.id,
        created_at=now,
    )
    session.add(period)
    if half:
        session.add(
            PatientPackage(
                patient_id=membership.patient_id,
                package_id=None,
                code=offered.code,
                name=f"{offered.name} membership ({half / 2:g} IV credits this period)",
                half_credits=half,
                amount=fee.amount,
                currency=offered.currency,
                valid_days=span.days,
                invoice_id=invoice.id,
                sold_at=now,
                paid_at=now if fee.amount == 0 else None,
                expires_at=datetime.combine(span.ends_on, time(0), zone),
            )
        )
    if fee.amount == 0:
        invoice.status = statuses.PAID
        invoice.updated_at = now
    else:
        item = ScheduledCharge(
            kind=MEMBERSHIP,
            reason="period",
            invoice_id=invoice.id,
            patient_id=membership.patient_id,
            due_on=span.starts_on,
            amount=fee.amount,
            currency=offered.currency,
            status=SCHEDULED,
            payment_method_id=membership.payment_method_id,
            next_attempt_at=schedules.first_attempt(
                span.starts_on, zone, dunning.settings().window
            ),
            api_key_id=membership.api_key_id,
        )
        session.add(item)
        session.flush()
        period.scheduled_charge_id = item.id
    session.flush()
    events.publish(session, "invoice.created", "invoice", invoice)
    return period


def renew_due(session: Session, now: datetime) -> int:
    """Every live membership brought up to the clinic's day at `now`: the periods that have
    started opened (each missed one, in order), pauses begun or ended, memberships ending
    after their last day, or left unpaid at their period's end, cancelled. Safe to run at
    once on several machines; one membership that fails is logged and left for the next
    run, never stopping the others or the charges. Returns the periods opened."""
    zone = dunning.settings().zone
    today = day_of(now, zone)
    latest = (
        select(MembershipPeriod.membership_id, func.max(MembershipPeriod.ends_on).label("ends_on"))
        .group_by(MembershipPeriod.membership_id)
        .subquery()
    )
    paused = Membership.status == rules.PAUSED
    due = session.scalars(
        select(Membership.id)
        .outerjoin(latest, latest.c.membership_id == Membership.id)
        .where(
            Membership.status.in_(rules.LIVE),
            (~paused & (func.coalesce(latest.c.ends_on, Membership.starts_on) <= today))
            | (paused & (Membership.resumes_on <= today))
            | (Membership.ends_on < today),
        )
    ).all()
    session.commit()
    opened = 0
    for membership_id in due:
        try:
            opened += _bring_up_to(session, str(membership_id), today, now, zone)
            session.commit()
        except Exception:  # noqa: BLE001 - one membership's fault stops nothing else
            session.rollback()
            log.exception(
                "membership %s: not brought up to date; tried again next run", membership_id
            )
    return opened


def _bring_up_to(
    session: Session, membership_id: str, today: date, now: datetime, zone: ZoneInfo
) -> int:
    membership = _locked(session, membership_id)
    opened = 0
    while membership.status in rules.LIVE:
        last = membership.periods[-1] if membership.periods else None
        if membership.ends_on is not None and membership.ends_on < today:
            _end(session, membership, "The membership's last day has passed.", now, False)
            break
        if last is not None and last.ends_on > today:
            break  # the current period is open
        if last is not None:
            fee = session.get_one(Invoice, last.invoice_id, populate_existing=True)
            if fee.status not in statuses.SETTLED:  # the period ended unpaid
                item = session.get(ScheduledCharge, last.scheduled_charge_id or "")
                if item is not None and item.status in (*DUE, CHARGING):
                    break  # still being tried: the next period waits for the outcome
                membership.ends_on = last.ends_on - timedelta(days=1)
                _end(session, membership, "The period's fee was not paid.", now)
                _stop_charges(session, membership, now)
                session.commit()
                _void_unpaid(session, providers.gateway, membership)
                break
        start = last.ends_on if last is not None else membership.starts_on
        if membership.paused_from is not None and membership.paused_from <= start:
            if membership.status == rules.ACTIVE:
                membership.status = rules.PAUSED
                audit.record(session, "membership.paused", "membership", membership.id)
            if membership.resumes_on is None or membership.resumes_on > today:
                break
            _resume(session, membership, last)
            start = membership.anchor_on
        if membership.ends_on is not None and start > membership.ends_on:
            _end(session, membership, "The membership's last day has passed.", now, False)
            break
        number = (last.number + 1) if last is not None else 1
        _open_period(session, membership, number, now, zone)
        opened += 1
        session.flush()
        session.refresh(membership, ["periods"])
    return opened


def _resume(session: Session, membership: Membership, last: MembershipPeriod | None) -> None:
    """A pause ends: periods start again from the day it resumes."""
    membership.status = rules.ACTIVE
    membership.anchor_on = membership.resumes_on or membership.anchor_on
    membership.anchor_number = (last.number + 1) if last is not None else 1
    membership.paused_from = membership.resumes_on = None
    audit.record(
        session,
        "membership.resumed",
        "membership",
        membership.id,
        anchor_on=membership.anchor_on.isoformat(),
    )


def _end(
    session: Session, membership: Membership, reason: str, now: datetime, announce: bool = True
) -> None:
    """Cancelled from now; other systems hear it (unless they heard it when the end at the
    period's end was asked for)."""
    membership.status = rules.CANCELLED
    membership.cancelled_at = membership.cancelled_at or now
    membership.cancel_reason = membership.cancel_reason or reason
    membership.paused_from = membership.resumes_on = None
    audit.record(session, "membership.ended", "membership", membership.id, reason=reason)
    session.flush()
    if announce:
        events.publish(session, "membership.cancelled", "membership", membership)


def _void_unpaid(
    session: Session, gateway: Callable[[], StripeGateway], membership: Membership
) -> None:
    """The fees of an ended membership that nothing paid are no longer asked for (voided);
    one that cannot be voided now (a payment in flight) is left, and said so in the log."""
    for period in membership.periods:
        invoice = session.get_one(Invoice, period.invoice_id, populate_existing=True)
        if invoice.status != statuses.OPEN or invoice.amount_paid != 0:
            continue
        try:
            online.void_invoice(session, gateway, invoice.id)
            session.commit()
        except ServiceError as error:
            session.rollback()
            log.warning(
                "membership %s: fee %s not voided (%s)", membership.id, invoice.id, error.code
            )


def _stop_charges(session: Session, membership: Membership, now: datetime) -> None:
    """No more tries of the membership's charges not being made at this moment."""
    ids = [p.scheduled_charge_id for p in membership.periods if p.scheduled_charge_id]
    if ids:
        session.execute(
            update(ScheduledCharge)
            .where(
                ScheduledCharge.id.in_(ids),
                ScheduledCharge.status.in_(OWED),
                ScheduledCharge.status != CHARGING,
            )
            .values(status=schedules.CANCELLED, next_attempt_at=None, updated_at=now)
        )


def _locked(session: Session, membership_id: str) -> Membership:
    """The membership, locked as the payments' code locks (its latest period's invoice, then
    the scheduled charges, then the membership), its periods re-read."""
    latest = session.scalar(
        select(MembershipPeriod.invoice_id)
        .where(MembershipPeriod.membership_id == membership_id)
        .order_by(MembershipPeriod.number.desc())
        .limit(1)
    )
    if latest is not None:
        invoices.get_invoice(session, str(latest), for_update=True)
    session.scalars(
        select(ScheduledCharge.id)
        .join(MembershipPeriod, MembershipPeriod.scheduled_charge_id == ScheduledCharge.id)
        .where(MembershipPeriod.membership_id == membership_id)
        .order_by(ScheduledCharge.id)
        .with_for_update(of=ScheduledCharge)
    ).all()
    membership = session.scalars(
        select(Membership)
        .where(Membership.id == membership_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    ).one_or_none()
    if membership is None:
        raise NotFound("membership_not_found", f"No membership {membership_id!r}.")
    session.refresh(membership, ["periods"])
    return membership


def _current(membership: Membership, today: date) -> MembershipPeriod | None:
    """The period holding `today`, or the last one opened."""
    for period in reversed(membership.periods):
        if period.starts_on <= today < period.ends_on:
            return period
    return membership.periods[-1] if membership.periods else None


def pause(session: Session, membership_id: str, resumes_on: date, zone: ZoneInfo) -> Membership:
    """No charges and no benefits from the end of the period paid for until `resumes_on`,
    when periods start again from that day."""
    membership = _locked(session, membership_id)
    if membership.status != rules.ACTIVE or membership.ends_on is not None:
        raise Conflict(
            "membership_not_active",
            f"Membership {membership.id} is {membership.status}"
            f"{' and ending' if membership.ends_on else ''}: only an active one is paused.",
        )
    today = day_of(utcnow(), zone)
    current = _current(membership, today)
    paused_from = current.ends_on if current is not None else membership.starts_on
    if resumes_on <= paused_from:
        raise field_error(
            "resumes_before_pause",
            "resumes_at",
            f"The pause starts on {paused_from} (the period paid for ends then): it resumes "
            "after that day.",
        )
    membership.paused_from, membership.resumes_on = paused_from, resumes_on
    audit.record(
        session,
        "membership.pause_scheduled",
        "membership",
        membership.id,
        paused_from=paused_from.isoformat(),
        resumes_on=resumes_on.isoformat(),
    )
    session.commit()
    return get_membership(session, membership.id)


def cancel(
    session: Session,
    gateway: StripeGateway,
    membership_id: str,
    at: str,
    refund: str | None,
    reason: str | None,
    zone: ZoneInfo,
    now: datetime | None = None,
) -> Membership:
    """End the membership at the end of the period paid for (nothing more is charged; its
    benefit holds until then), or now: its benefit ends today, charges waiting are
    stopped, an unpaid fee is voided, the period's credits lapse, and with `refund`
    prorated (by default when the membership prorates) the unused days of a paid period
    are refunded unless a credit it included was used or is held. A period that has not
    begun is cancelled whole, and one that has no period yet ends before it starts. Asking
    again changes nothing, and what did not go through (a void, a refund) is tried again,
    each refund at most once (its key is derived from the membership)."""
    now = now or utcnow()
    today = day_of(now, zone)
    membership = _locked(session, membership_id)
    scheduled = at == PERIOD_END and membership.ends_on is not None
    if membership.status == rules.CANCELLED or scheduled:
        session.commit()
        if membership.status == rules.CANCELLED:
            _void_unpaid(session, lambda: gateway, membership)
        if membership.cancel_refund == rules.PRORATED:
            _refund_unused(session, gateway, membership_id)
        return get_membership(session, membership_id)
    reason = (reason or "Cancelled.")[:400]
    last = membership.periods[-1] if membership.periods else None
    if last is None:  # it starts later: it ends before it starts, nothing asked for
        membership.ends_on = membership.starts_on - timedelta(days=1)
        membership.cancel_reason, membership.cancel_refund = reason, rules.NO_REFUND
        _end(session, membership, reason, now)
        bump(session)
        session.commit()
        return get_membership(session, membership.id)
    begun = last.starts_on <= today
    if at == PERIOD_END and begun:
        # The last day of the last period opened (a paused membership's, or one whose next
        # period is not begun yet this morning, has passed: it ends at the next run).
        membership.ends_on = last.ends_on - timedelta(days=1)
        membership.cancel_reason = reason
        membership.cancel_refund = rules.NO_REFUND
        audit.record(
            session,
            "membership.cancel_scheduled",
            "membership",
            membership.id,
            ends_on=membership.ends_on.isoformat(),
            reason=reason,
        )
        if membership.ends_on < today:
            _end(session, membership, reason, now)
        else:
            session.flush()
            events.publish(session, "membership.cancelled", "membership", membership)
        bump(session)
        session.commit()
        return get_membership(session, membership.id)
    charging = session.scalar(
        select(ScheduledCharge.id)
        .join(MembershipPeriod, MembershipPeriod.scheduled_charge_id == ScheduledCharge.id)
        .where(MembershipPeriod.membership_id == membership.id, ScheduledCharge.status == CHARGING)
    )
    in_flight = session.scalar(  # a pay link's card waiting on its bank, a bank debit
        select(Payment.id)
        .join(MembershipPeriod, MembershipPeriod.invoice_id == Payment.invoice_id)
        .where(
            MembershipPeriod.membership_id == membership.id,
            Payment.status.in_(charges.IN_FLIGHT),
        )
    )
    if charging is not None or in_flight is not None:  # read under the locks
        raise Conflict(
            "payment_in_progress",
            "The membership's fee is being charged now; try again in a minute.",
        )
    _stop_charges(session, membership, now)
    membership.ends_on = today if begun else last.starts_on - timedelta(days=1)
    membership.cancel_reason = reason
    membership.cancel_refund = (
        rules.PRORATED
        if not begun
        else refund or (rules.PRORATED if membership.prorated else rules.NO_REFUND)
    )
    session.execute(  # the period's included credits lapse with it
        update(PatientPackage)
        .where(PatientPackage.invoice_id == last.invoice_id)
        .values(expires_at=now)
    )
    _end(session, membership, reason, now)
    bump(session)
    session.commit()
    _void_unpaid(session, lambda: gateway, membership)  # what nothing paid is not asked for
    if membership.cancel_refund == rules.PRORATED:
        _refund_unused(session, gateway, membership.id)
    return get_membership(session, membership.id)


def _refund_unused(session: Session, gateway: StripeGateway, membership_id: str) -> None:
    """The unused days of the last period, back to the card: its share of what the period
    kept (never more than Stripe can give back), nothing when a credit it included was
    used or is held by a quote."""
    membership = get_membership(session, membership_id)
    last_day = membership.ends_on
    period = membership.periods[-1] if membership.periods else None
    if period is None or last_day is None or last_day >= period.ends_on:
        return
    invoice = session.get_one(Invoice, period.invoice_id, populate_existing=True)
    kept = ledger.held(session, invoice.id)
    spoken_for = session.scalar(
        select(func.count())
        .select_from(CreditHold)
        .join(PatientPackage, PatientPackage.id == CreditHold.patient_package_id)
        .where(
            PatientPackage.invoice_id == invoice.id,
            CreditHold.returned_at.is_(None),
            CreditHold.used_at.is_not(None) | (CreditHold.expires_at > utcnow()),
        )
    )
    span = rules.Period(period.starts_on, period.ends_on)
    amount = 0 if spoken_for else rules.unused(kept, span, last_day)
    amount = min(amount, refunds.left_to_refund(session, invoice).amount)
    session.commit()
    if amount < STRIPE_MINIMUM_CHARGE.get(invoice.currency, 1):
        return
    failed = session.scalar(  # a refund that failed is asked again, under a new key
        select(func.count())
        .select_from(Refund)
        .where(Refund.invoice_id == invoice.id, Refund.status == "failed")
    )
    session.commit()
    key = f"membership-refund:{membership.id}:{failed}"
    request = IdempotencyRequest(
        api_key_id=membership.api_key_id or keys.system_key_id(session),
        key=key,
        fingerprint=key,
    )
    refunds.refund_invoice(
        session,
        gateway,
        invoice.id,
        amount,
        f"Membership {membership.id} cancelled: the unused days of the period.",
        request,
        for_membership=True,
    )
