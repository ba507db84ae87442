"""The everyday quote's answer is written without marshmallow (`dump_new_quote`): it must
be exactly what QuoteSchema dumps, for every kind of quote."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone

from hypothesis import given
from hypothesis import strategies as st

from billing.domain.policy import DEFAULT_POLICY, CancellationPolicy, Fee
from schemas.quotes import QuoteSchema, dump_new_quote

texts = st.text(min_size=1, max_size=12)
amounts = st.integers(min_value=0, max_value=5_000_000)
moments = st.datetimes(
    min_value=datetime(2020, 1, 1), max_value=datetime(2030, 1, 1), timezones=st.just(UTC)
) | st.datetimes(
    min_value=datetime(2020, 1, 1),
    max_value=datetime(2030, 1, 1),
    timezones=st.builds(lambda h: timezone(timedelta(hours=h)), st.integers(-12, 12)),
)
fees = st.builds(Fee, percent=st.none() | st.integers(0, 100)) | st.builds(
    Fee, amount=st.integers(0, 100_000)
)
policies = st.just(DEFAULT_POLICY) | st.builds(
    CancellationPolicy, notice_hours=st.integers(0, 168), late_cancellation=fees, no_show=fees
)


@st.composite
def lines(draw: st.DrawFn, promotion_code: str | None) -> dict[str, object]:
    sliding = draw(st.none() | st.integers(1, 50))
    exemption = draw(st.none() | st.fixed_dictionaries({"reason": texts, "approved_by": texts}))
    units = draw(st.sampled_from([0, 1, 2]))
    return {
        "quote_id": "qt_x",
        "position": draw(st.integers(0, 4)),
        "patient_id": draw(texts),
        "patient_name": draw(texts),
        "patient_email": draw(st.none() | st.just("a@example.org")),
        "prior_iv_sessions": draw(st.integers(0, 9)),
        "iv_exemption_reason": exemption and exemption["reason"],
        "iv_exemption_approved_by": exemption and exemption["approved_by"],
        "description": draw(texts),
        "amount": draw(amounts),
        "base_amount": draw(st.none() | amounts),
        "sliding_percent": sliding,
        "sliding_reason": sliding and draw(texts),
        "sliding_approved_by": sliding and draw(texts),
        "sliding_amount": draw(amounts) if sliding else 0,
        "promotion_amount": draw(amounts) if promotion_code else 0,
        "credit_units": units,
        "iv_exemption": exemption,
        "promotion_code": promotion_code,
        "credits_used": units / 2,
        "deposit": draw(st.integers(0, 10**6)),
    }


@st.composite
def quotes(draw: st.DrawFn) -> dict[str, object]:
    promotion_code = draw(st.none() | st.just("WINTER25"))
    return {
        "id": "qt_" + draw(st.text("0123456789abcdef", min_size=24, max_size=24)),
        "booking_id": draw(texts),
        "session_type": draw(st.sampled_from(["iv_individual", "im_group"])),
        "currency": draw(st.sampled_from(["usd", "eur", "jpy"])),
        "price_version": draw(st.integers(1, 99)),
        "total": draw(amounts),
        "scheduled_at": draw(moments),
        "created_at": draw(moments),
        "expires_at": draw(moments),
        "promotion_code": promotion_code,
        "lines": draw(st.lists(lines(promotion_code), min_size=1, max_size=5)),
        "cancellation_policy": draw(policies),
    }


@given(quote=quotes())
def test_written_out_dump_is_the_schemas_dump(quote: dict[str, object]) -> None:
    # As JSON text: 1 == 1.0 in Python, but not in the answer.
    written = json.dumps(dump_new_quote(quote), sort_keys=True)
    assert written == json.dumps(QuoteSchema().dump(quote), sort_keys=True)
