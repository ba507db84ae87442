"""Package credits, as pure functions: counted in half-credits so nothing is ever rounded.

One IV credit pays one individual IV session or two group IM seats: an IV session takes
2 half-credits, a group seat 1. A package of `n` IV credits holds `2n` half-credits.

What a package was paid is shared across its half-credits with Money.allocate, so the
parts add up to the price exactly. The half-credits kept (used or held) keep their shares
from the start; a refund gives back the rest of the price, less what earlier refunds gave.
However many refunds a package has, together they never exceed what was paid, and
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
    withdrawn: int = 0  # the package's money left by another way (a refund at Stripe, a dispute)

    @property
    def available(self) -> int:
        return (
            self.total - self.reserved - self.used - self.refunded - self.expired - self.withdrawn
        )


def balance(
    total: int,
    reserved: int,
    used: int,
    refunded: int,
    is_expired: bool,
    is_withdrawn: bool = False,
) -> Balance:
    """The package's state; once it has expired what is neither held, used nor refunded
    has expired with it (a quote holding credits before the expiry keeps them); once
    money left its invoice other than by a refund of credits, the same is withdrawn."""
    if min(total, reserved, used, refunded) < 0 or reserved + used + refunded > total:
        raise ValueError("a package cannot hold more half-credits than it was sold with")
    left = total - reserved - used - refunded
    if is_withdrawn:
        return Balance(total, reserved, used, refunded, 0, left)
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


def refund_due(paid: Money, total: int, kept: int, refunded: Money) -> Money:
    """What a refund of everything but `kept` half-credits (used or held) gives back, when
    earlier refunds of the package gave `refunded`: the kept ones keep their shares from
    the start of the package, and the rest of what was paid goes back. However earlier
    refunds fell (one failed and its credits came back, say), the refunds add up to at
    most what was paid, and to exactly that once nothing is kept."""
    if not 0 <= kept <= total:
        raise ValueError("cannot keep more half-credits than the package holds")
    due = paid - value_of(paid, total, 0, kept) - refunded
    return due if Money.zero(paid.currency) <= due else Money.zero(paid.currency)


def value_of(paid: Money, total: int, first: int, count: int) -> Money:
    """The shares of half-credits `first` .. `first + count - 1` of a package (counted
    from its start): what a package's used credits are worth in revenue."""
    if count == 0:
        return Money.zero(paid.currency)
    shares = paid.allocate([1] * total)
    return Money.sum(shares[first : first + count], paid.currency)
