"""The price list: versions of the IV individual price P, per currency."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import exists, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from billing.adapters.cache import Generation, SharedCache, bump
from billing.adapters.membership_models import Membership
from billing.adapters.models import PriceVersion, utcnow
from billing.domain.errors import Conflict, field_error
from billing.domain.money import Money
from billing.domain.policy import DEFAULT_POLICY, CancellationPolicy
from billing.services.access import audit

# A new price may be stated as effective "now" by a caller whose clock is a little behind.
CLOCK_SKEW = timedelta(minutes=5)
# The price list `seed` adds when there is none: P = $500.00.
DEFAULT_IV_AMOUNT, DEFAULT_CURRENCY = 50000, "usd"


@dataclass(frozen=True, slots=True)
class Catalog:
    """What a booking system reads: the current and the announced price versions."""

    current: list[PriceVersion]
    upcoming: list[PriceVersion]


@dataclass(frozen=True, slots=True)
class Price:
    """One price version, detached from any session."""

    version: int
    currency: str
    iv_individual_amount: int
    effective_at: datetime
    policy: CancellationPolicy = DEFAULT_POLICY

    @property
    def iv_individual(self) -> Money:
        return Money(self.iv_individual_amount, self.currency)


class PriceBook:
    """Every price version (a handful of rows), re-read at most every `seconds`.

    Scheduled changes apply on time, because the book holds future versions too; a new
    version bumps the shared cache generation, so every process re-reads the book within
    CACHE_CHECK_SECONDS.
    """

    def __init__(self, seconds: float, generation: Generation) -> None:
        self._cache = SharedCache[str, list[Price]](seconds, generation)
        self._members = SharedCache[str, bool](seconds, generation)

    def current(self, session: Session, currency: str, now: datetime) -> Price:
        """The version in force for `currency` at `now`: the latest effective wins."""
        versions = self._cache.lookup(session, "all")
        if versions is None:
            versions = [
                Price(v.version, v.currency, v.iv_individual_amount, v.effective_at, v.policy)
                for v in session.scalars(select(PriceVersion))
            ]
            self._cache.put("all", versions)
        in_force = [v for v in versions if v.currency == currency and v.effective_at <= now]
        if not in_force:
            raise field_error(
                "currency_not_offered", "currency", f"The clinic has no price list in {currency!r}."
            )
        return max(in_force, key=lambda v: (v.effective_at, v.version))

    def has_members(self, session: Session) -> bool:
        """Whether any patient has a membership that is not cancelled: until one does, a
        quote need not look for members' prices."""
        known = self._members.lookup(session, "any")
        if known is None:
            known = bool(session.scalar(select(exists().where(Membership.status != "cancelled"))))
            self._members.put("any", known)
        return known

    def forget(self) -> None:
        self._cache.clear()
        self._members.clear()
        self._cache.generation.forget()


def get_catalog(session: Session, now: datetime | None = None) -> Catalog:
    """Every currency's price in force now, and the versions that take effect later."""
    now = now or utcnow()
    versions = session.scalars(
        select(PriceVersion).order_by(PriceVersion.effective_at, PriceVersion.version)
    ).all()
    current: dict[str, PriceVersion] = {}
    upcoming = []
    for version in versions:
        if version.effective_at <= now:
            current[version.currency] = version
        else:
            upcoming.append(version)
    return Catalog(current=sorted(current.values(), key=lambda v: v.currency), upcoming=upcoming)


def create_price_version(
    session: Session,
    iv_individual_amount: int,
    currency: str,
    effective_at: datetime | None = None,
    now: datetime | None = None,
    cancellation_policy: CancellationPolicy | None = None,
) -> PriceVersion:
    """Rule 4: a price change is a new version; quotes keep the version they used.

    The version carries a cancellation policy; without one it keeps the policy of the
    currency's latest version (the default policy for a new currency)."""
    now = now or utcnow()
    effective_at = effective_at or now
    if effective_at < now - CLOCK_SKEW:
        raise field_error(
            "effective_at_in_past", "effective_at", "A new price cannot take effect in the past."
        )
    next_version = (session.scalar(select(func.max(PriceVersion.version))) or 0) + 1
    policy = cancellation_policy or _latest_policy(session, currency)
    price = PriceVersion(
        version=next_version,
        currency=currency,
        iv_individual_amount=iv_individual_amount,
        effective_at=effective_at,
        created_at=now,
        notice_hours=policy.notice_hours,
        late_cancellation_fee_percent=policy.late_cancellation.percent,
        late_cancellation_fee_amount=policy.late_cancellation.amount,
        no_show_fee_percent=policy.no_show.percent,
        no_show_fee_amount=policy.no_show.amount,
        deposit_for=policy.deposit.applies_to if policy.deposit else None,
        deposit_percent=policy.deposit.fee.percent if policy.deposit else None,
        deposit_amount=policy.deposit.fee.amount if policy.deposit else None,
        deposit_no_shows=policy.deposit.no_shows if policy.deposit else None,
    )
    session.add(price)
    audit.record(
        session,
        "price.created",
        "price_version",
        str(next_version),
        currency=currency,
        iv_individual_amount=iv_individual_amount,
        effective_at=effective_at.isoformat(),
        notice_hours=policy.notice_hours,
        late_cancellation_fee=_fee_words(policy.late_cancellation),
        no_show_fee=_fee_words(policy.no_show),
    )
    bump(session)
    try:
        session.commit()
    except IntegrityError:
        session.rollback()
        raise Conflict(
            "price_version_conflict", "Another price change was saved at the same time; retry."
        ) from None
    return price


def _latest_policy(session: Session, currency: str) -> CancellationPolicy:
    latest = session.scalars(
        select(PriceVersion)
        .where(PriceVersion.currency == currency)
        .order_by(PriceVersion.effective_at.desc(), PriceVersion.version.desc())
        .limit(1)
    ).first()
    return latest.policy if latest is not None else DEFAULT_POLICY


def _fee_words(fee: object) -> str:
    amount, percent = getattr(fee, "amount", None), getattr(fee, "percent", None)
    return f"{amount} (amount)" if amount is not None else f"{percent}%"


def seed_default(session: Session) -> PriceVersion | None:
    """Add the default price list if there is none; returns it, or None if one existed."""
    if session.scalar(select(func.count()).select_from(PriceVersion)):
        return None
    return create_price_version(session, DEFAULT_IV_AMOUNT, DEFAULT_CURRENCY)
