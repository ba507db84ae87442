"""Discounts on a quote's lines, as pure functions: a staff-approved sliding-scale
percentage per line, then a promotion code's percentage or amount off the whole quote.

Each line starts at its session price (a group seat at exactly half of P: the group rule
holds before any discount). A sliding scale takes its percentage of the line (rounding
half up); a promotion's percentage is taken of each line after that, and its amount off
is allocated across the lines by what they still cost (Money.allocate), so the parts
always add up: each line's net plus its discounts is its price, to the cent.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from billing.domain.money import Money

MEMBER_PRICE = "member_price"  # a membership's lower price, before the discounts below
SLIDING_SCALE = "sliding_scale"
PROMOTION = "promotion"


@dataclass(frozen=True, slots=True)
class PromotionTerms:
    code: str
    percent_off: int | None = None
    amount_off: Money | None = None


@dataclass(frozen=True, slots=True)
class DiscountedLine:
    base: Money
    sliding: Money  # the sliding-scale discount
    promotion: Money  # this line's share of the promotion
    net: Money

    @property
    def discounted(self) -> bool:
        return self.net != self.base


def apply(
    bases: Sequence[Money], sliding_percents: Sequence[int | None], promotion: PromotionTerms | None
) -> list[DiscountedLine]:
    """Each line's sliding-scale discount, share of the promotion and net amount."""
    currency = bases[0].currency
    zero = Money.zero(currency)
    sliding = [
        base.percent(percent) if percent else zero
        for base, percent in zip(bases, sliding_percents, strict=True)
    ]
    after = [base - off for base, off in zip(bases, sliding, strict=True)]
    shares = [zero for _ in bases]
    if promotion is not None and promotion.percent_off:
        shares = [line.percent(promotion.percent_off) for line in after]
    elif promotion is not None and promotion.amount_off is not None:
        left = Money.sum(after, currency)
        off = min(promotion.amount_off, left)
        if off.amount > 0:
            shares = off.allocate([line.amount for line in after])
    return [
        DiscountedLine(base, slide, share, base - slide - share)
        for base, slide, share in zip(bases, sliding, shares, strict=True)
    ]
