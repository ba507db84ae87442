"""The OpenAPI document is complete: valid OpenAPI 3.0, every value typed, every array with
its items, times with their format, ids and closed sets of values described once as
components and referred to, and every error code the API answers listed."""

from __future__ import annotations

import ast
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from openapi_spec_validator import OpenAPIV30SpecValidator, validate

from billing import create_app

BILLING = Path(__file__).resolve().parents[2] / "billing"
Schema = dict[str, Any]

# Names whose values are one of our ids or closed sets, wherever they appear.
TYPED_NAMES = {
    "quote_id": "QuoteId",
    "invoice_id": "InvoiceId",
    "payment_id": "PaymentId",
    "refund_id": "RefundId",
    "patient_id": "PatientId",
    "booking_id": "BookingId",
    # What a booking asks for; an invoice's (and its revenue's) may also be a package.
    "session_type": ("SessionType", "InvoiceSessionType"),
    "invoice_status": "InvoiceStatus",
    "starting_after": "InvoiceId",
    "event_id": "EventId",
    "endpoint_id": "WebhookEndpointId",
}
# A list's cursor is the id of what it lists.
CURSORS = {
    "/v1/events": "EventId",
    "/v1/webhook-endpoints/{endpoint_id}/deliveries": "DeliveryId",
    "/v1/credit-refund-requests": "CreditBackRequestId",
}
# Values that come from Stripe as it has them: not ours to close.
STRIPE_VALUES = {("Day", "currency"), ("Payout", "currency"), ("Payout", "status")}
# Codes raised only outside the documented API: the CLI, the pages for people, Stripe's
# webhook endpoint and the readiness probe.
OUTSIDE_THE_API = {
    "api_key_name_taken",
    "api_key_not_found",
    "unknown_scope",
    "staff_exists",
    "staff_not_found",
    "weak_password",
    "invalid_email",
    "pay_link_invalid",
    "pay_link_expired",
    "pay_link_revoked",
    "invalid_signature",
    "malformed_event",
    "not_ready",
    "invalid_metrics_token",
    # The patient portal's pages (never an API answer).
    "sign_in_link_invalid",
    "sign_in_link_expired",
    "sign_in_link_used",
    "sign_in_other_browser",
    "same_card",  # moving a plan's card to itself, in the portal
    # Paying several bills at once, in the portal.
    "balance_changed",
    "nothing_to_pay",
    "part_not_taken",
}


@pytest.fixture(scope="module")
def document(sqlite_url: str) -> Schema:
    app = create_app({"TESTING": True, "DATABASE_URL": sqlite_url})
    spec: Schema = app.test_client().get("/openapi.json").json
    app.extensions["billing.db"].engine.dispose()
    return spec


def schemas_in(document: Schema) -> Iterator[tuple[str, str, Schema]]:
    """(where, name, schema) of every property, item and parameter in the document."""
    for component, schema in document["components"]["schemas"].items():
        yield from _walk(component, component, schema)
    for path, item in document["paths"].items():
        operations = [op for op in item.values() if isinstance(op, dict)]
        for parameter in item.get("parameters", []) + [
            p for op in operations for p in op.get("parameters", [])
        ]:
            yield from _walk(path, parameter["name"], parameter["schema"])


def _walk(where: str, name: str, schema: Schema) -> Iterator[tuple[str, str, Schema]]:
    yield where, name, schema
    for key, value in schema.get("properties", {}).items():
        yield from _walk(where, key, value)
    for key in ("items", "additionalProperties"):
        if isinstance(schema.get(key), dict):
            yield from _walk(where, f"{name}[]", schema[key])
    for key in ("allOf", "anyOf", "oneOf"):
        for part in schema.get(key, []):
            if part.get("enum") != [None]:  # the "or null" branch is no value of its own
                yield from _walk(where, name, part)


def refers_to(schema: Schema) -> set[str]:
    """The components `schema` refers to, directly or as a part of it."""
    parts = [schema, *schema.get("allOf", []), *schema.get("anyOf", [])]
    return {part["$ref"].rsplit("/", 1)[1] for part in parts if "$ref" in part}


def test_the_document_is_valid_openapi_3_0(document: Schema) -> None:
    assert document["openapi"] == "3.0.3"
    validate(document, cls=OpenAPIV30SpecValidator)


def test_every_array_says_what_it_holds(document: Schema) -> None:
    arrays = [(w, n) for w, n, s in schemas_in(document) if s.get("type") == "array"]
    assert arrays
    assert [
        (w, n)
        for w, n, s in schemas_in(document)
        if s.get("type") == "array" and not s.get("items")
    ] == []


def test_every_value_has_a_type(document: Schema) -> None:
    untyped = [
        (where, name)
        for where, name, schema in schemas_in(document)
        if not {"type", "$ref", "allOf", "anyOf", "oneOf"} & set(schema)
    ]
    assert untyped == []


def test_times_and_days_carry_their_format(document: Schema) -> None:
    formats = {
        (where, name): schema.get("format")
        for where, name, schema in schemas_in(document)
        if name.endswith(("_at", "_gte", "_lt", "_created", "_date"))
        or name in ("as_of", "day", "from", "to")
    }
    assert len(formats) > 20
    wrong = {key: found for key, found in formats.items() if found not in ("date-time", "date")}
    assert wrong == {}
    assert formats[("/v1/reports/reconciliation", "from")] == "date"
    assert formats[("Quote", "expires_at")] == "date-time"


def _names(expected: str | tuple[str, ...]) -> tuple[str, ...]:
    return (expected,) if isinstance(expected, str) else expected


def test_ids_and_closed_sets_are_described_once_and_referred_to(document: Schema) -> None:
    components = document["components"]["schemas"]
    for name, expected in TYPED_NAMES.items():
        # The audit trail pages by its events' numbers, not by an id.
        uses = [
            (w, s)
            for w, n, s in schemas_in(document)
            if n == name and (w, s.get("type")) != ("/v1/audit-events", "integer")
        ]
        assert uses, name
        cursors = CURSORS if name == "starting_after" else {}
        wrong = [
            w for w, s in uses if not set(_names(cursors.get(w, expected))) & set(refers_to(s))
        ]
        assert wrong == [], name
    for name in ("currency", "status", "kind", "method", "id", "number"):
        for where, schema in [(w, s) for w, n, s in schemas_in(document) if n == name]:
            if schema.get("type", "string") != "string" or (where, name) in STRIPE_VALUES:
                continue  # a number (a problem's status), or Stripe's values
            if "enum" in schema and where in components:
                continue  # a closed set only this schema has (a reconciliation pair's status)
            assert refers_to(schema), (where, name, schema)
    assert "x-type" not in json.dumps(document)  # every marked field became a reference
    closed = {tuple(s["enum"]) for s in components.values() if "enum" in s}
    patterns = {s["pattern"] for s in components.values() if "pattern" in s}
    for where, name, schema in schemas_in(document):
        if schema is components.get(where):
            continue
        assert tuple(schema.get("enum", ())) not in closed, (where, name)
        assert schema.get("pattern") not in patterns, (where, name)


def test_a_problem_code_is_a_known_code_or_another_string(document: Schema) -> None:
    code = document["components"]["schemas"]["Problem"]["properties"]["code"]
    assert code["anyOf"] == [{"$ref": "#/components/schemas/ErrorCode"}, {"type": "string"}]


def test_every_code_the_api_raises_is_listed_and_every_listed_code_is_raised(
    document: Schema,
) -> None:
    listed = set(document["components"]["schemas"]["ErrorCode"]["enum"])
    raised = codes_raised_in(BILLING)
    assert "first_session_must_be_iv" in raised and "payload_too_large" in raised
    assert raised - OUTSIDE_THE_API - listed == set()
    assert listed - raised == set()


def codes_raised_in(folder: Path) -> set[str]:
    """Every string literal given as the code of a typed error (a ServiceError), of
    field_error or of problem in `folder`; the codes of failures Flask raises
    (HTTP_CODES and its fallback); and the defaults of declines and failed refunds
    (`failure_code=... or "card_declined"`)."""
    trees = [ast.parse(path.read_text()) for path in folder.rglob("*.py")]
    nodes = [node for tree in trees for node in ast.walk(tree)]
    errors = {"ServiceError"}
    for _ in range(3):  # subclasses of subclasses
        errors |= {
            node.name
            for node in nodes
            if isinstance(node, ast.ClassDef)
            and {getattr(b, "id", "") for b in node.bases} & errors
        }
    codes: set[str] = set()
    for node in nodes:
        if isinstance(node, ast.Call) and node.args:
            callee = getattr(node.func, "id", getattr(node.func, "attr", ""))
            if callee in errors or callee == "field_error":
                codes |= _literals(node.args[0])
            if callee == "problem" and len(node.args) > 1:
                codes |= _literals(node.args[1])
            if callee == "get" and getattr(node.func.value, "id", "") == "HTTP_CODES":  # type: ignore[attr-defined]
                codes |= _literals(node.args[-1])
        if isinstance(node, ast.Assign) and getattr(node.targets[0], "id", "") == "HTTP_CODES":
            codes |= set(ast.literal_eval(node.value).values())
        if isinstance(node, ast.keyword) and node.arg == "failure_code":
            codes |= _literals(node.value)
    return codes


def _literals(node: ast.expr) -> set[str]:
    """The string literal `node` is, or the fallback of `x or "literal"`."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return {node.value}
    if isinstance(node, ast.BoolOp) and isinstance(node.op, ast.Or):
        return _literals(node.values[-1])
    return set()
