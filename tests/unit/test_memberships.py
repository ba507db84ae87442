"""The membership rules: periods on the clinic's days, prorated fees, a member's P, what a
cancelled period gives back, and how a fee is earned over its days."""

from __future__ import annotations

from datetime import date, timedelta

from hypothesis import given
from hypothesis import strategies as st

from billing.domain import memberships as rules
from billing.domain.money import Money
from billing.domain.pricing import IM_GROUP, session_price


def test_monthly_periods_from_the_31st_follow_the_months_last_days_without_drifting() -> None:
    start = date(2028, 1, 31)
    spans = [rules.period(start, start, rules.MONTH, n, False) for n in range(1, 5)]
    assert [(s.starts_on, s.ends_on) for s in spans] == [
        (date(2028, 1, 31), date(2028, 2, 29)),
        (date(2028, 2, 29), date(2028, 3, 31)),
        (date(2028, 3, 31), date(2028, 4, 30)),
        (date(2028, 4, 30), date(2028, 5, 31)),
    ]


def test_a_yearly_period_from_a_leap_day_ends_on_the_next_years_last_day_of_february() -> None:
    start = date(2028, 2, 29)
    assert rules.period(start, start, rules.YEAR, 1, False).ends_on == date(2029, 2, 28)
    assert rules.period(start, start, rules.YEAR, 4, False).ends_on == date(2032, 2, 29)


def test_prorated_periods_run_from_the_first_and_the_first_is_charged_for_its_days() -> None:
    start = date(2027, 9, 11)
    first = rules.period(start, start, rules.MONTH, 1, True)
    second = rules.period(start, start, rules.MONTH, 2, True)
    assert (first.starts_on, first.ends_on) == (date(2027, 9, 11), date(2027, 10, 1))
    assert (second.starts_on, second.ends_on) == (date(2027, 10, 1), date(2027, 11, 1))
    fee = Money(9900, "usd")
    assert rules.fee(fee, first, rules.MONTH, True) == Money(6600, "usd")  # 20 of 30 days
    assert rules.fee(fee, second, rules.MONTH, True) == fee
    assert rules.fee(fee, first, rules.MONTH, False) == fee
    assert rules.included_half_credits(4, first, rules.MONTH, True) == 2  # 2 * 20 / 30, down


def test_a_members_p_and_the_group_seat_is_exactly_half_of_it() -> None:
    price = Money(50000, "usd")
    member = rules.member_price(price, rules.PERCENT_OFF, 15)
    assert member == Money(42500, "usd")
    assert session_price(IM_GROUP, member) == Money(21250, "usd")
    assert rules.member_price(price, rules.IV_PRICE, 39999) == Money(39999, "usd")
    assert rules.member_price(price, rules.IV_PRICE, 60000) == price  # never dearer
    assert rules.member_price(Money(333, "usd"), rules.PERCENT_OFF, 50) == Money(167, "usd")


def test_a_cancelled_period_gives_back_its_unused_days_never_more_than_was_paid() -> None:
    span = rules.Period(date(2027, 9, 11), date(2027, 10, 1))  # 20 days
    assert rules.unused(6600, span, date(2027, 9, 20)) == 3300  # 10 days held, 10 left
    assert rules.unused(6600, span, date(2027, 9, 30)) == 0
    assert rules.unused(6600, span, date(2027, 9, 1)) == 6600  # cancelled before it began


@given(
    basis=st.integers(min_value=0, max_value=10**9),
    days=st.integers(min_value=1, max_value=400),
    cut=st.integers(min_value=0, max_value=420),
)
def test_a_fee_is_earned_in_parts_that_add_up_to_it_and_never_go_back(
    basis: int, days: int, cut: int
) -> None:
    start = date(2027, 1, 15)
    span = rules.Period(start, start + timedelta(days=days))
    earned = [rules.earned_through(basis, span, start + timedelta(days=d)) for d in range(-1, days)]
    assert earned[0] == 0 and earned[-1] == basis
    assert all(a <= b for a, b in zip(earned, earned[1:], strict=False))
    # Every day earns the same to the cent: no day takes the rounding of the others.
    daily = [later - earlier for earlier, later in zip(earned, earned[1:], strict=False)]
    assert max(daily) - min(daily) <= 1
    # Cancelled after day `cut`: what goes back and what was earned never exceed the fee.
    cut_day = start + timedelta(days=cut)
    back, kept = rules.unused(basis, span, cut_day), rules.earned_through(basis, span, cut_day)
    assert basis - 1 <= back + kept <= basis
