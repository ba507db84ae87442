"""The clinic's pricing rules, as pure functions."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from billing.domain import pricing
from billing.domain.errors import Unprocessable
from billing.domain.money import Money
from billing.domain.pricing import IM_GROUP, IV_INDIVIDUAL, PatientHistory

P = Money(50000, "usd")
VETERAN = PatientHistory("P-1", prior_iv_sessions=1)


def veterans(count: int) -> list[PatientHistory]:
    return [PatientHistory(f"P-{i}", prior_iv_sessions=1) for i in range(count)]


@given(st.integers(min_value=1, max_value=10**9))
def test_group_price_is_half_of_iv_rounded_up(amount: int) -> None:
    group = pricing.session_price(IM_GROUP, Money(amount, "usd"))
    assert 0 <= 2 * group.amount - amount <= 1


def test_iv_individual_costs_the_base_price() -> None:
    assert pricing.price_booking(IV_INDIVIDUAL, [VETERAN], P) == [P]


def test_each_group_patient_pays_half() -> None:
    assert pricing.price_booking(IM_GROUP, veterans(3), P) == [Money(25000, "usd")] * 3


def test_odd_base_price_rounds_group_price_half_up() -> None:
    assert pricing.price_booking(IM_GROUP, veterans(2), Money(50001, "usd"))[0].amount == 25001


@pytest.mark.parametrize("count", [0, 1, 6, 7])
def test_group_takes_two_to_five_patients(count: int) -> None:
    with pytest.raises(Unprocessable) as raised:
        pricing.price_booking(IM_GROUP, veterans(count), P)
    assert raised.value.code == "invalid_group_size"
    assert "patients" in raised.value.errors


@pytest.mark.parametrize("count", [2, 5])
def test_group_size_bounds_are_inclusive(count: int) -> None:
    assert len(pricing.price_booking(IM_GROUP, veterans(count), P)) == count


@pytest.mark.parametrize("count", [0, 2])
def test_iv_individual_takes_exactly_one_patient(count: int) -> None:
    with pytest.raises(Unprocessable) as raised:
        pricing.price_booking(IV_INDIVIDUAL, veterans(count), P)
    assert raised.value.code == "invalid_group_size"


def test_new_patient_cannot_start_with_group_im() -> None:
    newcomer = PatientHistory("P-NEW")
    with pytest.raises(Unprocessable) as raised:
        pricing.price_booking(IM_GROUP, [VETERAN, newcomer], P)
    assert raised.value.code == "first_session_must_be_iv"
    assert "patients.1" in raised.value.errors


def test_exempt_new_patient_may_start_with_group_im() -> None:
    exempt = PatientHistory("P-NEW", has_iv_exemption=True)
    assert len(pricing.price_booking(IM_GROUP, [VETERAN, exempt], P)) == 2


def test_iv_sessions_known_from_our_invoices_count() -> None:
    known = PatientHistory("P-2", completed_iv_sessions=1)
    assert len(pricing.price_booking(IM_GROUP, [VETERAN, known], P)) == 2


def test_new_patient_may_start_with_iv() -> None:
    assert pricing.price_booking(IV_INDIVIDUAL, [PatientHistory("P-NEW")], P) == [P]


def test_same_patient_twice_in_a_group_is_refused() -> None:
    with pytest.raises(Unprocessable) as raised:
        pricing.price_booking(IM_GROUP, [VETERAN, VETERAN], P)
    assert raised.value.code == "duplicate_patient"
    assert "patients.1.patient_id" in raised.value.errors


def test_quote_expires_after_its_ttl() -> None:
    created = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)
    expires = pricing.quote_expiry(created, timedelta(hours=24))
    assert expires == datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
    assert not pricing.is_expired(expires, expires - timedelta(seconds=1))
    assert pricing.is_expired(expires, expires)
