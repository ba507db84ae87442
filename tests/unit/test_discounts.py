"""Discounts add up: for any lines, sliding scales and promotion, each line's net plus its
discounts is its price, to the cent, and nothing goes below zero."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from billing.domain.discounts import PromotionTerms, apply
from billing.domain.money import Money
from billing.domain.pricing import IM_GROUP, session_price

prices = st.integers(min_value=100, max_value=5_000_000)
percents = st.one_of(st.none(), st.integers(min_value=1, max_value=50))
promotions = st.one_of(
    st.none(),
    st.builds(lambda p: PromotionTerms("P", percent_off=p), st.integers(1, 100)),
    st.builds(
        lambda a: PromotionTerms("A", amount_off=Money(a, "usd")), st.integers(1, 20_000_000)
    ),
)


@given(
    p=prices,
    seats=st.integers(min_value=2, max_value=5),
    data=st.data(),
    promotion=promotions,
)
def test_discounted_group_lines_add_up_to_the_cent(p, seats, data, promotion) -> None:
    seat = session_price(IM_GROUP, Money(p, "usd"))  # the group rule holds before discounts
    bases = [seat] * seats
    sliding = data.draw(st.lists(percents, min_size=seats, max_size=seats))
    lines = apply(bases, sliding, promotion)
    for line, base in zip(lines, bases, strict=True):
        assert line.net + line.sliding + line.promotion == base
        assert line.net.amount >= 0 and line.sliding.amount >= 0 and line.promotion.amount >= 0
    total_promotion = Money.sum([line.promotion for line in lines], "usd")
    if promotion is not None and promotion.amount_off is not None:
        after = Money.sum([b - line.sliding for b, line in zip(bases, lines, strict=True)], "usd")
        assert total_promotion == min(promotion.amount_off, after)


def test_an_amount_off_is_shared_by_what_each_line_still_costs() -> None:
    lines = apply(
        [Money(25000, "usd")] * 2, [30, None], PromotionTerms("A", amount_off=Money(10001, "usd"))
    )
    assert [line.sliding.amount for line in lines] == [7500, 0]
    # 17500 and 25000 share 10001: floors 4118 and 5882; the leftover unit goes to the
    # larger remainder.
    assert [line.promotion.amount for line in lines] == [4118, 5883]
    assert sum(line.net.amount for line in lines) == 50000 - 7500 - 10001
