"""Credit arithmetic as pure functions: half-credits, the shares of a package's price, and
which packages pay a place."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from billing.domain import credits
from billing.domain.money import Money


def test_an_iv_session_takes_a_credit_and_a_group_seat_half() -> None:
    assert credits.half_credits_for("iv_individual") == 2
    assert credits.half_credits_for("im_group") == 1
    assert credits.as_credits(3) == 1.5


@given(paid=st.integers(1, 10_000_000), total=st.integers(1, 200), data=st.data())
def test_used_deferred_and_refunded_add_up_to_the_price(paid: int, total: int, data) -> None:
    used = data.draw(st.integers(0, total))
    refunded = data.draw(st.integers(0, total - used))
    price = Money(paid, "usd")
    parts = [
        credits.value_of(price, total, 0, used),
        credits.value_of(price, total, used, total - used - refunded),
        credits.refund_due(price, total, total - refunded, Money.zero("usd")),
    ]
    assert Money.sum(parts, "usd") == price


@given(
    held=st.lists(st.integers(0, 12), max_size=6),
    needed=st.integers(1, 4),
)
def test_packages_pay_a_place_in_order_or_not_at_all(held: list[int], needed: int) -> None:
    available = [(f"pp{i}", left) for i, left in enumerate(held)]
    taken = credits.take(available, needed)
    if sum(held) < needed:
        assert taken is None
        return
    assert taken is not None
    assert sum(share for _, share in taken) == needed
    left = dict(available)
    assert all(0 < share <= left[package] for package, share in taken)
    # Soonest first: every package before the last one used is used up.
    used = [package for package, _ in taken]
    for package, share in taken[:-1]:
        assert share == left[package]
    assert used == [p for p, n in available if p in used]


@given(
    total=st.integers(0, 50),
    data=st.data(),
    expired=st.booleans(),
)
def test_a_balance_conserves_half_credits(total: int, data, expired: bool) -> None:
    reserved = data.draw(st.integers(0, total))
    used = data.draw(st.integers(0, total - reserved))
    refunded = data.draw(st.integers(0, total - reserved - used))
    balance = credits.balance(total, reserved, used, refunded, expired)
    assert balance.available >= 0
    assert (
        balance.available + balance.reserved + balance.used + balance.refunded + balance.expired
        == total
    )
    assert (balance.available == 0) if expired else (balance.expired == 0)


def test_a_balance_cannot_hold_more_than_was_sold() -> None:
    with pytest.raises(ValueError):
        credits.balance(2, 1, 1, 1, False)
    with pytest.raises(ValueError):
        credits.refund_due(Money(100, "usd"), 2, 3, Money.zero("usd"))


@given(
    paid=st.integers(1, 10_000_000),
    total=st.integers(1, 60),
    steps=st.lists(st.tuples(st.integers(0, 60), st.booleans()), max_size=12),
)
def test_refunds_of_what_is_not_kept_never_exceed_what_was_paid(
    paid: int, total: int, steps: list[tuple[int, bool]]
) -> None:
    """Any sequence of refunds, each of everything but what is kept (used or held; it goes
    up and down as places are used and given back, within what is not refunded yet), some
    of them failing at Stripe (their half-credits come back)."""
    price = Money(paid, "usd")
    given = Money.zero("usd")
    refunded_units = 0
    for kept, succeeded in steps:
        kept = min(kept, total - refunded_units)
        due = credits.refund_due(price, total, kept, given)
        assert Money.zero("usd") <= due
        if succeeded:
            given = given + due
            refunded_units = total - kept
            # What is left of the price is exactly the kept half-credits' shares.
            assert price - given == credits.value_of(price, total, 0, kept)
        assert given <= price
    if refunded_units == total:
        assert given == price


def test_a_failed_refund_leaves_the_rest_refundable() -> None:
    """4 half-credits for 1.02: a refund of the last 2 (0.50) fails; the first 2 come back
    and are refunded later with all 4: 1.02 in all, never refused as too much."""
    price = Money(102, "usd")
    assert credits.refund_due(price, 4, 2, Money.zero("usd")) == Money(50, "usd")  # fails
    assert credits.refund_due(price, 4, 0, Money.zero("usd")) == Money(102, "usd")
    # The same after a refund of 0.50 that did succeed: the rest, 0.52.
    assert credits.refund_due(price, 4, 0, Money(50, "usd")) == Money(52, "usd")
