"""`lean_load` (the API's fast path for JSON bodies) against marshmallow's own load, on
generated bodies: valid ones and ones broken in every way. Whatever marshmallow loads,
lean_load loads to the same data; whatever marshmallow refuses, lean_load declines
(so marshmallow's error is the answer)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import event, given, settings
from hypothesis import strategies as st
from marshmallow import Schema, ValidationError, fields, post_load, validates_schema

import billing  # noqa: F401  (the schemas' imports need the package first)
from schemas.catalog import PriceVersionRequestSchema
from schemas.events import WebhookEndpointRequestSchema
from schemas.invoices import InvoiceRequestSchema, RefundRequestSchema
from schemas.lean import DECLINED, lean_load, plan_for
from schemas.packages import PackageRequestSchema
from schemas.quotes import QuoteRequestSchema

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-5, 2000)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=8)
    | st.sampled_from(["usd", "eur", "im_group", "iv_individual", "card", "credits", " "]),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner),
    max_leaves=6,
)


def when(days: int) -> str:
    return (datetime.now(UTC) + timedelta(days=days)).replace(microsecond=0).isoformat()


def pick(draw: st.DrawFn, good: Any, *bad: Any) -> Any:
    """Mostly the good value: a body is wrong in one place at a time, or none."""
    return good if draw(st.integers(0, 19)) else draw(st.sampled_from(bad))


@st.composite
def patients(draw: st.DrawFn) -> dict[str, Any]:
    patient: dict[str, Any] = {
        "patient_id": pick(draw, draw(st.sampled_from(["P-1001", "P-2"])), "bad id", ""),
        "name": pick(draw, draw(st.sampled_from(["Ana Ruiz", "  Ben  "])), "", "x" * 201),
    }
    if draw(st.booleans()):
        patient["email"] = pick(draw, "ana@example.org", "not-an-email")
    if draw(st.booleans()):
        patient["prior_iv_sessions"] = pick(
            draw, draw(st.sampled_from([0, 3])), 1001, -1, True, 2.0, "3"
        )
    if draw(st.booleans()):
        patient["iv_exemption"] = {
            "reason": pick(draw, "difficult_venous_access", "Bad Veins"),
            "approved_by": pick(draw, "Dr. Lee", " "),
        }
    if draw(st.booleans()):
        patient["discount"] = {
            "percent": pick(draw, 10, 0, 101),
            "reason": "hardship",
            "approved_by": "Jo Park",
        }
    if draw(st.booleans()):
        patient["pay_with"] = pick(draw, draw(st.sampled_from(["card", "credits"])), "cash")
    return patient


@st.composite
def bookings(draw: st.DrawFn) -> dict[str, Any]:
    body: dict[str, Any] = {
        "booking_id": pick(draw, "BK-2026-0412", "BK 1", ""),
        "session_type": pick(draw, draw(st.sampled_from(["im_group", "iv_individual"])), "yoga"),
        "scheduled_at": pick(draw, when(3), when(400), "2026-12-03T15:00:00", "tomorrow"),
        "currency": pick(draw, "usd", "USD", "xyz"),
        "patients": draw(st.lists(patients(), max_size=6)),
    }
    if draw(st.booleans()):
        body["promotion_code"] = pick(draw, "WINTER25", "!")
    return body


@st.composite
def broken(draw: st.DrawFn, bodies: st.SearchStrategy[dict[str, Any]]) -> Any:
    """A body, then a few random breakages anywhere in it: a key dropped, added or given
    any JSON value."""
    body = json.loads(json.dumps(draw(bodies)))
    for _ in range(pick(draw, 0, 1, 1, 2, 3)):
        target: Any = body
        while isinstance(target, dict | list) and target and draw(st.booleans()):
            keys = list(target) if isinstance(target, dict) else list(range(len(target)))
            child = target[draw(st.sampled_from(keys))]
            if not isinstance(child, dict | list):
                break
            target = child
        if isinstance(target, dict):
            action = draw(st.sampled_from(["drop", "add", "replace"]))
            keys = list(target)
            if action == "drop" and keys:
                del target[draw(st.sampled_from(keys))]
            elif action == "add":
                target[draw(st.text(max_size=6))] = draw(json_values)
            elif keys:
                target[draw(st.sampled_from(keys))] = draw(json_values)
        elif isinstance(target, list) and target:
            target[draw(st.integers(0, len(target) - 1))] = draw(json_values)
    return draw(st.just(body) | json_values) if draw(st.integers(0, 9)) == 0 else body


def agrees(schema: Schema, body: Any) -> None:
    lean = lean_load(schema, body)
    if plan_for(schema) is None:  # hooks it cannot walk: marshmallow loads it
        assert lean is DECLINED
        return
    try:
        loaded = schema.load(body)
    except ValidationError:
        event("refused")
        assert lean is DECLINED, (body, lean)
        return
    event("loaded")
    assert lean is not DECLINED, body  # the fast path takes every good body
    assert lean == loaded


@settings(max_examples=400, deadline=None)
@given(body=broken(bookings()))
def test_a_booking_loads_as_marshmallow_loads_it_or_not_at_all(body: Any) -> None:
    agrees(QuoteRequestSchema(), body)


@st.composite
def other_bodies(draw: st.DrawFn) -> tuple[Schema, Any]:
    schema, body = draw(
        st.sampled_from(
            [
                (InvoiceRequestSchema(), {"quote_id": "qt_" + "a" * 24}),
                (RefundRequestSchema(), {"amount": 100, "reason": "requested_by_customer"}),
                (
                    WebhookEndpointRequestSchema(),
                    {"url": "https://example.org/hook", "events": ["quote.created"]},
                ),
                (
                    PackageRequestSchema(),
                    {
                        "code": "INDUCTION6",
                        "name": "Induction",
                        "iv_credits": 6,
                        "amount": 270000,
                        "currency": "usd",
                        "valid_days": 180,
                    },
                ),
                (
                    PriceVersionRequestSchema(),
                    {"currency": "usd", "iv_individual_amount": 50000, "effective_at": when(2)},
                ),
            ]
        )
    )
    return schema, draw(broken(st.just(body)))


@settings(max_examples=300, deadline=None)
@given(case=other_bodies())
def test_other_request_bodies_load_as_marshmallow_loads_them(case: tuple[Schema, Any]) -> None:
    agrees(*case)


def test_schemas_it_cannot_walk_are_left_to_marshmallow() -> None:
    class WithPostLoad(Schema):
        a = fields.String()

        @post_load
        def _make(self, data: dict[str, Any], **_: Any) -> dict[str, Any]:
            return {"made": data}

    class Dotted(Schema):
        a = fields.String(attribute="x.y")

    class Inside(Schema):
        inner = fields.Nested(WithPostLoad)

    for schema in (WithPostLoad(), Dotted(), Inside(), QuoteRequestSchema(many=True)):
        assert plan_for(schema) is None
        assert lean_load(schema, {"a": "1"}) is DECLINED


def test_schema_validators_are_run() -> None:
    class Pair(Schema):
        low = fields.Integer(required=True)
        high = fields.Integer(required=True)

        @validates_schema
        def _ordered(self, data: dict[str, Any], **_: Any) -> None:
            if data["low"] > data["high"]:
                raise ValidationError("low above high")

    assert lean_load(Pair(), {"low": 1, "high": 2}) == {"low": 1, "high": 2}
    assert lean_load(Pair(), {"low": 3, "high": 2}) is DECLINED
    with pytest.raises(ValidationError):
        Pair().load({"low": 3, "high": 2})


def test_fields_that_change_their_own_load_are_loaded_by_it() -> None:
    """A field is walked directly only when its load is marshmallow's own; one with its
    own `deserialize`, a load_default or a field-level post_load keeps what it does."""

    class Shouting(fields.String):
        def deserialize(self, value: Any, attr: Any = None, data: Any = None, **kw: Any) -> Any:
            return str(super().deserialize(value, attr, data, **kw)).upper()

    class Form(Schema):
        word = Shouting(required=True)
        count = fields.Integer(load_default=7)
        tag = fields.String(post_load=[str.strip])
        note = fields.String(allow_none=True)

    loaded = lean_load(Form(), {"word": "hey", "tag": "  a  ", "note": None})
    assert loaded == Form().load({"word": "hey", "tag": "  a  ", "note": None})
    assert loaded == {"word": "HEY", "count": 7, "tag": "a", "note": None}
    assert lean_load(Form(), {"tag": "a"}) is DECLINED  # word is required
    assert lean_load(Form(), {"word": "a", "tag": None}) is DECLINED  # tag is not nullable
