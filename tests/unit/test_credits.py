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


@given(
    paid=st.integers(1, 10_000_000),
    total=st.integers(1, 200),
    cuts=st.lists(st.integers(1, 200), max_size=20),
)
def test_refunds_over_a_package_never_exceed_what_was_paid(
    paid: int, total: int, cuts: list[int]
) -> None:
    price = Money(paid, "usd")
    refunded = 0
    given_back = Money.zero("usd")
    for cut in cuts:
        cut = min(cut, total - refunded)
        given_back = given_back + credits.refund_amount(price, total, refunded, cut)
        refunded += cut
        assert given_back <= price
        # What stays is exactly the shares of the half-credits still held.
        assert price - given_back == credits.value_of(price, total, 0, total - refunded)
    if refunded == total:
        assert given_back == price


@given(paid=st.integers(1, 10_000_000), total=st.integers(1, 200), data=st.data())
def test_used_deferred_and_refunded_add_up_to_the_price(paid: int, total: int, data) -> None:
    used = data.draw(st.integers(0, total))
    refunded = data.draw(st.integers(0, total - used))
    price = Money(paid, "usd")
    parts = [
        credits.value_of(price, total, 0, used),
        credits.value_of(price, total, used, total - used - refunded),
        credits.refund_amount(price, total, 0, refunded),
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
        credits.refund_amount(Money(100, "usd"), 2, 1, 2)
