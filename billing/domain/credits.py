"""Package credits, as pure functions: counted in half-credits so nothing is ever rounded.

One IV credit pays one individual IV session or two group IM seats: an IV session takes
2 half-credits, a group seat 1. A package of `n` IV credits holds `2n` half-credits.

What a package was paid is shared across its half-credits with Money.allocate, so the
parts add up to the price exactly. Refunded half-credits take their shares from the end,
so however many refunds a package has, together they never exceed what was paid, and
refunding every half-credit gives back exactly what was paid.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from billing.domain.money import Money
from billing.domain.pricing import IM_GROUP, IV_INDIVIDUAL

HALF_CREDITS = {IV_INDIVIDUAL: 2, IM_GROUP: 1}


def half_credits_for(session_type: str) -> int:
    """What one patient's place in a session of `session_type` takes, in half-credits."""
    return HALF_CREDITS[session_type]


def as_credits(half_credits: int) -> float:
    """Half-credits as IV credits for people and the API: 3 -> 1.5 (exact in binary)."""
    return half_credits / 2


@dataclass(frozen=True, slots=True)
class Balance:
    """One package's half-credits: every one is in exactly one of these states."""

    total: int
    reserved: int  # held by a quote that can still be invoiced
    used: int  # paid a session that was invoiced
    refunded: int  # given back as money
    expired: int  # neither used nor refunded by the expiry date

    @property
    def available(self) -> int:
        return self.total - self.reserved - self.used - self.refunded - self.expired


def balance(total: int, reserved: int, used: int, refunded: int, is_expired: bool) -> Balance:
    """The package's state; once it has expired what is neither held, used nor refunded
    has expired with it (a quote holding credits before the expiry keeps them)."""
    if min(total, reserved, used, refunded) < 0 or reserved + used + refunded > total:
        raise ValueError("a package cannot hold more half-credits than it was sold with")
    left = total - reserved - used - refunded
    return Balance(total, reserved, used, refunded, left if is_expired else 0)


def take(available: Sequence[tuple[str, int]], needed: int) -> list[tuple[str, int]] | None:
    """Which packages pay `needed` half-credits, in the order given (soonest to expire
    first), as (package id, half-credits); None when together they hold too few."""
    taken = []
    for package_id, left in available:
        if needed == 0:
            break
        share = min(left, needed)
        if share > 0:
            taken.append((package_id, share))
            needed -= share
    return taken if needed == 0 else None


def refund_amount(paid: Money, total: int, refunded_before: int, refunding: int) -> Money:
    """What refunding `refunding` more half-credits of a package gives back: the shares
    of what was `paid` that belong to them, counted from the end of the package."""
    if refunding < 0 or refunded_before < 0 or refunded_before + refunding > total:
        raise ValueError("cannot refund more half-credits than the package holds")
    if refunding == 0:
        return Money.zero(paid.currency)
    shares = paid.allocate([1] * total)
    end = total - refunded_before
    return Money.sum(shares[end - refunding : end], paid.currency)


def value_of(paid: Money, total: int, first: int, count: int) -> Money:
    """The shares of half-credits `first` .. `first + count - 1` of a package (counted
    from its start): what a package's used credits are worth in revenue."""
    if count == 0:
        return Money.zero(paid.currency)
    shares = paid.allocate([1] * total)
    return Money.sum(shares[first : first + count], paid.currency)
