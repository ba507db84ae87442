"""Auth matrix: every endpoint without a key, with the wrong scope, revoked, and right."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from billing.adapters import db
from billing.adapters.models import ApiKey
from billing.domain.access import SCOPES, hash_key
from billing.services.access import keys
from billing.services.integrations import webhooks
from billing.services.integrations.settings import secret_box
from billing.web.auth import Caller
from tests.conftest import in_hours
from tests.integrations.feed import wait_until_settled


def _quote_id(client: FlaskClient, make_key: Callable[..., dict[str, str]], booking: Any) -> str:
    response = client.post("/v1/quotes", json=booking(), headers=make_key("quotes:write"))
    return str(response.json["id"])


# (method, path template, accepted scopes, body). Paths that reach Stripe are marked:
# here (no Stripe configured) the right scope gets past auth to a 503; tests/stripe
# shows them succeeding.
STRIPE = "needs Stripe"
PUBLIC_HOOK = "https://93.184.215.14/hook"  # an address on the public internet; never called
ENDPOINTS: list[tuple[str, str, tuple[str, ...], Any]] = [
    ("GET", "/v1/catalog", ("*",), None),
    (
        "POST",
        "/v1/catalog/prices",
        ("catalog:write",),
        {"iv_individual_amount": 51000, "currency": "usd"},
    ),
    (
        "POST",
        "/v1/catalog/promotions",
        ("catalog:write",),
        {
            "code": "MATRIX",
            "percent_off": 10,
            "starts_at": "2026-01-01T00:00:00Z",
            "ends_at": "2027-01-01T00:00:00Z",
        },
    ),
    ("GET", "/v1/catalog/promotions", ("catalog:write", "quotes:write"), None),
    (
        "POST",
        "/v1/catalog/packages",
        ("catalog:write",),
        {
            "code": "SIX",
            "name": "Six",
            "iv_credits": 6,
            "amount": 270000,
            "currency": "usd",
            "valid_days": 180,
        },
    ),
    ("GET", "/v1/catalog/packages", ("*",), None),
    (
        "POST",
        "/v1/catalog/memberships",
        ("catalog:write",),
        {
            "code": "KEEP",
            "name": "Keep",
            "interval": "month",
            "amount": 9900,
            "currency": "usd",
            "percent_off": 10,
        },
    ),
    ("GET", "/v1/catalog/memberships", ("*",), None),
    ("POST", "/v1/patients/{patient_id}/memberships", ("payments:write",), STRIPE),
    ("GET", "/v1/patients/{patient_id}/memberships", ("invoices:read",), None),
    ("GET", "/v1/memberships/{membership_id}", ("invoices:read",), "member"),
    ("POST", "/v1/memberships/{membership_id}/cancel", ("payments:write",), STRIPE),
    ("POST", "/v1/memberships/{membership_id}/pause", ("payments:write",), "member"),
    ("POST", "/v1/patients/{patient_id}/packages", ("invoices:write",), "package"),
    ("GET", "/v1/patients/{patient_id}/credits", ("invoices:read",), None),
    ("POST", "/v1/patients/{patient_id}/packages/{package_id}/refunds", ("refunds:write",), STRIPE),
    ("POST", "/v1/quotes", ("quotes:write",), "booking"),
    ("GET", "/v1/quotes/{quote_id}", ("quotes:write", "invoices:read"), None),
    ("POST", "/v1/quotes/{quote_id}/estimate", ("quotes:write",), {"patient_id": "P-1001"}),
    (
        "GET",
        "/v1/quotes/{quote_id}/estimate?patient_id=P-1001",
        ("quotes:write", "invoices:read"),
        "estimated",
    ),
    ("GET", "/v1/reports/estimate-variance", ("reports:read",), None),
    ("POST", "/v1/invoices/{invoice_id}/bill-disputes", ("invoices:write",), {"status": "open"}),
    ("POST", "/v1/invoices", ("invoices:write",), "quote"),
    ("GET", "/v1/invoices", ("invoices:read",), None),
    ("GET", "/v1/invoices/{invoice_id}", ("invoices:read",), None),
    ("POST", "/v1/invoices/{invoice_id}/void", ("invoices:write",), None),
    ("POST", "/v1/invoices/{invoice_id}/plan", ("payments:write",), STRIPE),
    ("DELETE", "/v1/invoices/{invoice_id}/plan", ("payments:write",), "planned"),
    ("PUT", "/v1/patients/{patient_id}/autopay", ("payments:write",), {"enabled": False}),
    ("GET", "/v1/patients/{patient_id}/autopay", ("invoices:read",), None),
    ("POST", "/v1/patients/{patient_id}/portal-link", ("payments:write",), "portal"),
    (
        "PUT",
        "/v1/patients/{patient_id}/profile",
        ("clinical:write",),
        {"date_of_birth": "1980-02-29", "payer_class": "medicaid"},
    ),
    ("GET", "/v1/patients/{patient_id}/profile", ("clinical:read", "clinical:write"), "profiled"),
    (
        "POST",
        "/v1/catalog/providers",
        ("catalog:write",),
        {"npi": "1234567893", "name": "Dana Ruiz", "credentials": "MD"},
    ),
    ("GET", "/v1/catalog/providers", ("catalog:write", "clinical:write", "clinical:read"), None),
    ("GET", "/v1/invoices/{invoice_id}/superbill", ("clinical:read", "clinical:write"), "visit"),
    ("GET", "/v1/invoices/{invoice_id}/claim", ("clinical:read", "clinical:write"), "visit"),
    ("GET", "/v1/invoices/{invoice_id}/claim.pdf", ("clinical:read", "clinical:write"), "visit"),
    (
        "GET",
        "/v1/invoices/{invoice_id}/superbill.pdf",
        ("clinical:read", "clinical:write"),
        "visit",
    ),
    ("GET", "/v1/credit-refund-requests", ("refunds:write",), None),
    (
        "POST",
        "/v1/credit-refund-requests/{request_id}/decline",
        ("refunds:write",),
        {"note": "the credit pays the next visit"},
    ),
    ("GET", "/v1/invoices/{invoice_id}/receipt.pdf", ("invoices:read",), "paid"),
    ("POST", "/v1/invoices/{invoice_id}/payments", ("payments:write",), STRIPE),
    # Money received at the desk has a scope of its own.
    ("POST", "/v1/invoices/{invoice_id}/payments", ("payments:record",), {"method": "cash"}),
    (
        "POST",
        "/v1/invoices/{invoice_id}/payments/{payment_id}/reversals",
        ("payments:record",),
        {"reason": "check returned"},
    ),
    ("POST", "/v1/invoices/{invoice_id}/refunds", ("refunds:write",), STRIPE),
    (
        "POST",
        "/v1/invoices/{invoice_id}/credit-notes",
        ("invoices:adjust",),
        {"amount": 100, "reason": "shortened", "approved_by": "Dr. Rivera"},
    ),
    (
        "POST",
        "/v1/invoices/{invoice_id}/write-offs",
        ("invoices:adjust",),
        {"category": "bad_debt", "reason": "no reply", "approved_by": "M. Chen"},
    ),
    ("GET", "/v1/patients/{patient_id}/account", ("invoices:read",), None),
    ("POST", "/v1/patients/{patient_id}/account/refunds", ("refunds:write",), STRIPE),
    (
        "POST",
        "/v1/patients/{patient_id}/account/credits",
        ("invoices:adjust",),
        {"amount": 100, "currency": "usd", "reason": "a long wait", "approved_by": "M. Chen"},
    ),
    (
        "POST",
        "/v1/gift-cards",
        ("invoices:write",),
        {"amount": 5000, "currency": "usd", "purchaser_patient_id": "P-1001", "name": "Ana"},
    ),
    ("GET", "/v1/gift-cards/{code}", ("invoices:read",), None),
    ("POST", "/v1/patients/{patient_id}/setup-intents", ("payments:write",), STRIPE),
    ("POST", "/v1/patients/{patient_id}/payment-methods", ("payments:write",), STRIPE),
    ("GET", "/v1/patients/{patient_id}/payment-methods", ("payments:write",), STRIPE),
    ("POST", "/v1/patients/{patient_id}/bank-accounts", ("payments:write",), STRIPE),
    (
        "DELETE",
        "/v1/patients/{patient_id}/payment-methods/{payment_method_id}",
        ("payments:write",),
        STRIPE,
    ),
    ("GET", "/v1/bookings/{booking_id}", ("bookings:write", "invoices:read"), None),
    ("POST", "/v1/bookings/{booking_id}/cancellations", ("bookings:write",), {"by": "clinic"}),
    (
        "POST",
        "/v1/bookings/{booking_id}/attendance",
        ("bookings:write",),
        {"patients": [{"patient_id": "P-1001", "status": "attended"}]},
    ),
    ("GET", "/v1/reports/reconciliation?from=2026-11-01&to=2026-11-30", ("reports:read",), None),
    ("GET", "/v1/reports/aging", ("reports:read",), None),
    ("GET", "/v1/reports/refunds-disputes?from=2026-11-01&to=2026-11-30", ("reports:read",), None),
    ("GET", "/v1/reports/dunning?from=2026-11-01&to=2026-11-30", ("reports:read",), None),
    ("GET", "/v1/reports/month-end?month=2026-11", ("reports:read",), None),
    ("GET", "/v1/reports/journal?month=2026-11", ("reports:read",), None),
    ("POST", "/v1/closed-months", ("books:close",), {"month": "2025-10"}),
    ("GET", "/v1/audit-events", ("audit:read",), None),
    ("GET", "/v1/events", ("events:read",), None),
    ("GET", "/v1/events/{event_id}", ("events:read",), None),
    ("POST", "/v1/events/{event_id}/redeliver", ("webhooks:write",), {}),
    ("GET", "/v1/webhook-endpoints", ("webhooks:write",), None),
    (
        "POST",
        "/v1/webhook-endpoints",
        ("webhooks:write",),
        {"url": PUBLIC_HOOK, "events": ["*"]},
    ),
    ("GET", "/v1/webhook-endpoints/{endpoint_id}", ("webhooks:write",), None),
    ("DELETE", "/v1/webhook-endpoints/{endpoint_id}", ("webhooks:write",), None),
    ("GET", "/v1/webhook-endpoints/{endpoint_id}/deliveries", ("webhooks:write",), None),
]
ALL_SCOPES = set(SCOPES)
# What a call needs besides the scope its route declares: an endpoint hears what the event
# feed shows, so registering one or redelivering to it needs events:read too.
ALONG = {
    ("POST", "/v1/webhook-endpoints"): ("events:read",),
    ("POST", "/v1/events/{event_id}/redeliver"): ("events:read",),
}


STRIPE_BODIES = {  # the first whose key ends the path
    "account/refunds": {"amount": 100, "currency": "usd", "reason": "asked for"},
    "packages/{package_id}/refunds": {"reason": "moving away"},
    "payments": {"method": "card_on_file"},
    "memberships": {"code": "KEEP", "payment_method": "pm_card_visa"},
    "cancel": {"at": "now"},
    "plan": {
        "payment_method": "pm_card_visa",
        "instalments": 2,
        "interval": "month",
        "first_at": "2099-01-01",
    },
    "refunds": {"amount": 100, "reason": "duplicate booking"},
    "payment-methods": {"payment_method": "pm_card_visa"},
    "bank-accounts": {
        "payment_method": "pm_card_visa",
        "mandate": {"text": "I authorize debits.", "accepted": "offline"},
    },
}


def _mark_paid(app: Flask, invoice_id: str) -> None:
    from billing.adapters.models import Invoice

    with app.app_context():
        session = db.session()
        invoice = session.get(Invoice, invoice_id)
        assert invoice is not None
        invoice.status = "paid"
        session.commit()


def _member(app: Flask) -> str:
    """A membership of P-1001's, as one joined with a saved card would be (no Stripe)."""
    from datetime import UTC, date, datetime

    from billing.adapters.membership_models import Membership, MembershipPlan

    with app.app_context():
        session = db.session()
        offered = MembershipPlan(
            code="KEEP",
            version=1,
            name="Keep",
            interval="month",
            amount=9900,
            currency="usd",
            benefit="percent_off",
            benefit_value=10,
        )
        session.add(offered)
        session.flush()
        member = Membership(
            patient_id="P-1001",
            membership_plan_id=offered.id,
            status="active",
            starts_on=date(2026, 1, 1),
            anchor_on=date(2026, 1, 1),
            anchor_number=1,
            prorated=False,
            payment_method_id="pm_card_visa",
            consent_text="I authorize ...",
            consent_accepted="offline",
            agreed_at=datetime.now(UTC),
            patient_name="Ana Ruiz",
        )
        session.add(member)
        session.commit()
        return member.id


def _plan(app: Flask, invoice_id: str) -> None:
    """A plan on the invoice, as one made with a saved card would be (no Stripe here)."""
    from datetime import UTC, datetime

    from billing.adapters.schedule_models import PaymentPlan

    with app.app_context():
        session = db.session()
        session.add(
            PaymentPlan(
                invoice_id=invoice_id,
                patient_id="P-1001",
                currency="usd",
                amount=1000,
                interval="month",
                status="active",
                payment_method_id="pm_card_visa",
                consent_text="I authorize ...",
                consent_accepted="offline",
                agreed_at=datetime.now(UTC),
            )
        )
        session.commit()


def _call(client, method, template, body, headers, make_key, booking):
    ids = {
        "patient_id": "P-1001",
        "payment_method_id": "pm_card_visa",
        "package_id": "pp_3f2a9c0e7b1d4a5f6e8c9b0a",
    }
    if "{booking_id}" in template:
        # Attendance is marked once the session has begun; cancellations come before.
        when = in_hours(-1) if template.endswith("attendance") else in_hours(30)
        quote = client.post(
            "/v1/quotes", json=booking(scheduled_at=when), headers=make_key("quotes:write")
        ).json
        client.post(
            "/v1/invoices", json={"quote_id": quote["id"]}, headers=make_key("invoices:write")
        )
        ids["booking_id"] = quote["booking_id"]
    if "{quote_id}" in template or body == "quote" or template.endswith("/autopay"):
        ids["quote_id"] = _quote_id(client, make_key, booking)
    if body == "estimated":  # read: the estimate was issued first
        client.post(
            f"/v1/quotes/{ids['quote_id']}/estimate",
            json={"patient_id": "P-1001"},
            headers=make_key("quotes:write"),
        )
    if "{invoice_id}" in template or template.endswith("/account/credits"):  # P-1001's bill
        quote_id = _quote_id(client, make_key, booking)
        invoices = client.post(
            "/v1/invoices", json={"quote_id": quote_id}, headers=make_key("invoices:write")
        )
        ids["invoice_id"] = invoices.json["data"][0]["id"]
        assert invoices.json["data"][0]["patient_id"] == ids["patient_id"]
        if body == "paid":
            _mark_paid(client.application, ids["invoice_id"])
        if body == "planned":
            _plan(client.application, ids["invoice_id"])
    if "{payment_id}" in template:
        recorded = client.post(
            f"/v1/invoices/{ids['invoice_id']}/payments",
            json={"method": "check", "reference": "1001"},
            headers={**make_key("payments:record"), "Idempotency-Key": "matrix-check"},
        )
        ids["payment_id"] = recorded.json["id"]
    if "{event_id}" in template:
        _quote_id(client, make_key, booking)
        wait_until_settled(client.application)
        ids["event_id"] = client.get("/v1/events", headers=make_key("events:read")).json["data"][0][
            "id"
        ]
    if "{code}" in template:
        sold = client.post(
            "/v1/gift-cards",
            json={
                "amount": 5000,
                "currency": "usd",
                "purchaser_patient_id": "P-1001",
                "name": "Ana",
            },
            headers={**make_key("invoices:write"), "Idempotency-Key": "matrix-gift"},
        )
        ids["code"] = sold.json["code"]
    if "{endpoint_id}" in template:
        ids["endpoint_id"] = _endpoint_of(client.application, headers)
    if "{request_id}" in template:
        ids["request_id"] = _credit_request(client.application)
    if "{membership_id}" in template:
        ids["membership_id"] = _member(client.application)
    if body == "portal":  # P-1001's bill carries the address the link goes to
        client.post(
            "/v1/invoices",
            json={"quote_id": _quote_id(client, make_key, booking)},
            headers=make_key("invoices:write"),
        )
        client.application.config["PUBLIC_BASE_URL"] = "https://pay.example-clinic.com"
    if body == "visit":  # a superbill: everything an insurer needs was recorded first
        ids["invoice_id"] = _visit(client, make_key, booking)
    if body == "profiled":  # read: clinical staff set it first
        client.put(
            "/v1/patients/P-1001/profile",
            json={"payer_class": "self_pay"},
            headers=make_key("clinical:write"),
        )
    payload = (
        None
        if body in ("paid", "estimated", "planned", "member", "portal", "profiled", "visit")
        else body
    )
    if template.endswith("/pause"):
        payload = {"resumes_at": "2099-01-01"}
    if body == "package":
        client.post(
            "/v1/catalog/packages",
            json={
                "code": "SIX",
                "name": "Six",
                "iv_credits": 6,
                "amount": 270000,
                "currency": "usd",
                "valid_days": 180,
            },
            headers=make_key("catalog:write"),
        )
        payload = {"code": "SIX", "name": "Ana Ruiz"}
    if body == "booking":
        payload = booking()
    elif body == "quote":
        payload = {"quote_id": ids["quote_id"]}
    elif body == STRIPE:
        payload = next((v for k, v in STRIPE_BODIES.items() if template.endswith(k)), None)
    headers = {**headers, "Idempotency-Key": "auth-matrix"}
    return client.open(template.format(**ids), method=method, json=payload, headers=headers)


def _visit(client: Any, make_key: Any, booking: Any) -> str:
    """A visit of P-1001's that was attended (a booking of its own), with the patient's
    profile, a clinician, and the visit's diagnoses and clinician: its invoice."""
    from uuid import uuid4

    from sqlalchemy import update

    from billing.adapters.booking_models import Seat
    from billing.adapters.clinical_models import Provider, VisitRecord

    client.application.config.update(CLINIC_NPI="1245319599", CLINIC_TIN="12-3456789")
    quote = client.post(
        "/v1/quotes",
        json=booking(booking_id=f"BK-V-{uuid4().hex[:8]}"),
        headers=make_key("quotes:write"),
    ).json
    made = client.post(
        "/v1/invoices", json={"quote_id": quote["id"]}, headers=make_key("invoices:write")
    ).json
    invoice_id = next(i["id"] for i in made["data"] if i["patient_id"] == "P-1001")
    client.put(
        "/v1/patients/P-1001/profile",
        json={
            "date_of_birth": "1980-01-01",
            "sex": "F",
            "address": {"line1": "1 A St", "city": "Town", "postal_code": "90001"},
            "insurance": {"payer_name": "Aetna", "member_id": "W123456789"},
        },
        headers=make_key("clinical:write"),
    )
    with client.application.app_context():
        session = db.session()
        session.execute(  # attended: a superbill is for a visit that happened
            update(Seat).where(Seat.invoice_id == invoice_id).values(attendance="attended")
        )
        if session.get(Provider, "1234567893") is None:
            session.add(Provider(npi="1234567893", name="Dana Ruiz", credentials="MD"))
        session.add(
            VisitRecord(
                invoice_id=invoice_id,
                patient_id="P-1001",
                diagnosis_codes="F32.2",
                rendering_npi="1234567893",
            )
        )
        session.commit()
    return str(invoice_id)


def _credit_request(app: Flask) -> str:
    """An open request of P-1001's for their credit back, as the portal makes one."""
    from billing.adapters.portal_models import CreditRefundRequest

    with app.app_context():
        made = CreditRefundRequest(
            patient_id="P-1001",
            currency="usd",
            amount=2500,
            asked_by="ana@example.org",
            status="open",
        )
        db.session().add(made)
        db.session().commit()
        return made.id


def _endpoint_of(app: Flask, headers: dict[str, str]) -> str:
    """An endpoint of the caller's client system (another client's is not found)."""
    key_hash = hash_key(headers.get("Authorization", "").partition(" ")[2])
    with app.app_context():
        session = db.session()
        owner = session.scalar(select(ApiKey.client).where(ApiKey.key_hash == key_hash))
        caller = Caller(0, "matrix", frozenset({"events:read"}), owner or "nobody")
        made = webhooks.create_endpoint(
            session, caller, PUBLIC_HOOK, ["*"], [], secret_box(app.config)
        )
        return made.endpoint.id


@pytest.mark.parametrize(("method", "template", "scopes", "body"), ENDPOINTS)
def test_missing_key_is_401(client, make_key, booking, method, template, scopes, body) -> None:
    response = _call(client, method, template, body, {}, make_key, booking)
    assert response.status_code == 401
    assert response.json["code"] == "missing_api_key"
    assert response.headers["WWW-Authenticate"].startswith("Bearer")


@pytest.mark.parametrize(("method", "template", "scopes", "body"), ENDPOINTS)
def test_unknown_key_is_401(client, make_key, booking, method, template, scopes, body) -> None:
    headers = {"Authorization": "Bearer ck_not-a-real-key"}
    response = _call(client, method, template, body, headers, make_key, booking)
    assert response.status_code == 401
    assert response.json["code"] == "invalid_api_key"


@pytest.mark.parametrize(
    ("method", "template", "scopes", "body"), [e for e in ENDPOINTS if e[2] != ("*",)]
)
def test_key_without_the_scope_is_403(
    client, make_key, booking, method, template, scopes, body
) -> None:
    other_scopes = sorted(ALL_SCOPES - set(scopes))
    response = _call(client, method, template, body, make_key(*other_scopes), make_key, booking)
    assert response.status_code == 403
    assert response.json["code"] == "insufficient_scope"


@pytest.mark.parametrize(("method", "template", "scopes", "body"), ENDPOINTS)
def test_revoked_key_is_401(
    app: Flask, client, make_key, booking, method, template, scopes, body
) -> None:
    headers = make_key(*sorted(ALL_SCOPES), name="soon-revoked")
    with app.app_context():
        keys.revoke_key(db.session(), "soon-revoked")
    response = _call(client, method, template, body, headers, make_key, booking)
    assert response.status_code == 401
    assert response.json["code"] == "invalid_api_key"


@pytest.mark.parametrize(("method", "template", "scopes", "body"), ENDPOINTS)
def test_each_accepted_scope_alone_succeeds(
    client, make_key, booking, method, template, scopes, body
) -> None:
    for scope in scopes:
        along = ALONG.get((method, template), ())
        headers = make_key("reports:read") if scope == "*" else make_key(scope, *along)
        response = _call(client, method, template, body, headers, make_key, booking)
        if body == STRIPE:
            assert response.status_code == 503, (scope, response.json)
            assert response.json["code"] == "stripe_not_configured"
        else:
            assert 200 <= response.status_code < 300, (scope, response.json)


def test_matrix_covers_every_api_route(app: Flask) -> None:
    routes = {
        (method, rule.rule.replace("<", "{").replace(">", "}"))
        for rule in app.url_map.iter_rules()
        if rule.rule.startswith("/v1/") and rule.endpoint != "stripe_webhooks.receive"
        for method in rule.methods - {"HEAD", "OPTIONS"}
    }
    assert routes == {(method, template.split("?")[0]) for method, template, _, _ in ENDPOINTS}


def test_keys_are_stored_hashed(app: Flask, make_key) -> None:
    from sqlalchemy import select

    from billing.adapters.models import ApiKey

    plain = make_key("quotes:write", name="hashed")["Authorization"].split()[1]
    with app.app_context():
        stored = db.session().scalars(select(ApiKey).where(ApiKey.name == "hashed")).one()
    assert plain not in (stored.key_hash, stored.key_prefix + stored.key_hash)
    assert len(stored.key_hash) == 64


def test_public_probes_need_no_key(client) -> None:
    assert client.get("/healthz").status_code == 200
    assert client.get("/readyz").json["status"] == "ready"
    assert client.get("/openapi.json").status_code == 200
