"""Money: halving, allocation and formatting, checked over generated amounts."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from billing.domain.money import MAX_AMOUNT, CurrencyMismatch, Money

amounts = st.integers(min_value=0, max_value=10**12)
currencies = st.sampled_from(["usd", "eur", "jpy", "krw", "gbp"])


@given(amounts, currencies)
def test_half_is_within_one_minor_unit_above_exact_half(amount: int, currency: str) -> None:
    half = Money(amount, currency).halve()
    assert 0 <= 2 * half.amount - amount <= 1
    assert half.currency == currency


def test_halving_rounds_half_up() -> None:
    assert Money(50001, "usd").halve() == Money(25001, "usd")
    assert Money(50000, "usd").halve() == Money(25000, "usd")
    assert Money(1, "jpy").halve() == Money(1, "jpy")


@given(amounts, st.lists(st.integers(min_value=0, max_value=1000), min_size=1, max_size=20))
def test_allocation_always_sums_to_the_whole(amount: int, weights: list[int]) -> None:
    if sum(weights) == 0:
        weights = [*weights, 1]
    parts = Money(amount, "usd").allocate(weights)
    assert sum(part.amount for part in parts) == amount
    assert len(parts) == len(weights)


@given(amounts, st.lists(st.integers(min_value=1, max_value=1000), min_size=1, max_size=20))
def test_each_allocated_share_is_within_one_unit_of_its_exact_share(
    amount: int, weights: list[int]
) -> None:
    parts = Money(amount, "usd").allocate(weights)
    total = sum(weights)
    for part, weight in zip(parts, weights, strict=True):
        exact_floor = amount * weight // total
        assert exact_floor <= part.amount <= exact_floor + 1


def test_allocation_hands_leftover_units_to_largest_remainders() -> None:
    assert [m.amount for m in Money(100, "usd").allocate([1, 1, 1])] == [34, 33, 33]
    assert [m.amount for m in Money(5, "usd").allocate([1, 3])] == [1, 4]


def test_allocation_refuses_weights_that_sum_to_zero() -> None:
    with pytest.raises(ValueError):
        Money(100, "usd").allocate([0, 0])


def test_money_refuses_floats_and_booleans() -> None:
    with pytest.raises(TypeError):
        Money(10.5, "usd")  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        Money(True, "usd")


def test_money_refuses_unknown_currency() -> None:
    with pytest.raises(ValueError):
        Money(100, "xyz")


def test_arithmetic_across_currencies_is_refused() -> None:
    with pytest.raises(CurrencyMismatch):
        Money(100, "usd") + Money(100, "eur")


@pytest.mark.parametrize(
    ("money", "text"),
    [
        (Money(25000, "usd"), "$250.00"),
        (Money(123456789, "usd"), "$1,234,567.89"),
        (Money(5, "usd"), "$0.05"),
        (Money(5000, "jpy"), "¥5,000"),
        (Money(125000, "chf"), "1,250.00 CHF"),
        (Money(-1999, "eur"), "-€19.99"),
    ],
)
def test_format_for_people(money: Money, text: str) -> None:
    assert money.format() == text


def test_zero_decimal_currency_is_not_scaled() -> None:
    assert Money(MAX_AMOUNT, "jpy").format() == "¥10,000,000"


@pytest.mark.parametrize(
    ("typed", "currency", "amount"),
    [
        ("150", "usd", 15000),
        ("150.5", "usd", 15050),
        (" $1,250.00 ", "usd", 125000),
        ("5.", "usd", 500),
        ("5000", "jpy", 5000),
    ],
)
def test_what_a_patient_types_is_read_in_major_units(
    typed: str, currency: str, amount: int
) -> None:
    assert Money.parse(typed, currency) == Money(amount, currency)


@pytest.mark.parametrize(
    ("typed", "currency"),
    [("1.234", "usd"), ("-5", "usd"), ("0", "usd"), ("1e3", "usd"), ("", "usd"), ("50.5", "jpy")],
)
def test_what_is_not_an_amount_is_none(typed: str, currency: str) -> None:
    assert Money.parse(typed, currency) is None


def test_pay_page_minimums_are_whole_amounts_per_known_currency() -> None:
    from billing.config import ConfigError, from_env

    assert from_env({})["PAY_PAGE_MINIMUMS"] == {"usd": 5000}
    assert from_env({"PAY_PAGE_MINIMUMS": '{"eur": 2000}'})["PAY_PAGE_MINIMUMS"] == {"eur": 2000}
    for wrong in ('{"usd": 50.0}', '{"xxx": 5}', '{"usd": 0}', "[5000]", '{"usd": true}'):
        with pytest.raises(ConfigError, match="PAY_PAGE_MINIMUMS"):
            from_env({"PAY_PAGE_MINIMUMS": wrong})
