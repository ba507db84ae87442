"""The service's security, read top to bottom: who may call what (every route, every
method, every kind of key), what production refuses to start with, secrets that rotate,
odd input that must be a 4xx and never a 500, and the limits on guessing.

Beside this module: test_stripe_webhooks.py (what a signed Stripe event may change),
test_webhook_destinations.py (where outgoing webhooks may go), test_csv_cells.py
(spreadsheets that open our exports).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from flask import Flask

from billing import create_app
from billing.adapters import db
from billing.domain.access import SCOPES
from billing.services.access.staff import create_staff_user
from tests.api.test_finance_sessions import EMAIL, HTTPS, PASSWORD, sign_in
from tests.conftest import in_days

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def app_settings() -> dict[str, object]:
    """The walks below send hundreds of made-up keys from one address: the limit on
    failed authentications has its own tests at the end."""
    return {"AUTH_FAILURE_LIMIT": "1000000 per minute"}


ROW = re.compile(r"^\| `(?P<method>[A-Z]+)` \| `(?P<path>/v1/[^`]*)` \| (?P<scopes>.+) \|$")


# 1. Who may call what ---------------------------------------------------------------


def documented_matrix() -> dict[tuple[str, str], tuple[str, ...] | None]:
    """docs/design.md's table: (method, path) -> the scopes, or None when public."""
    matrix: dict[tuple[str, str], tuple[str, ...] | None] = {}
    for line in (ROOT / "docs" / "design.md").read_text().splitlines():
        found = ROW.match(line)
        if found is None:
            continue
        cell = found["scopes"]
        key = (found["method"], found["path"])
        if cell.startswith("public"):
            matrix[key] = None
        elif cell == "any key":
            matrix[key] = ("*",)
        else:
            matrix[key] = tuple(re.findall(r"`([^`]+)`", cell))
    return matrix


def served_routes(app: Flask) -> dict[tuple[str, str], set[str]]:
    """Every /v1 route the app serves, with every method it allows (HEAD, OPTIONS too)."""
    routes: dict[tuple[str, str], set[str]] = {}
    for rule in app.url_map.iter_rules():
        if rule.rule.startswith("/v1/"):
            path = rule.rule.replace("<", "{").replace(">", "}")
            for method in rule.methods or ():
                if method not in ("HEAD", "OPTIONS"):
                    routes[(method, path)] = set(rule.methods or ())
    return routes


def concrete(path: str) -> str:
    """The path with made-up ids: authorisation comes before any lookup."""
    return re.sub(r"\{[^}]+\}", "x_made_up_1", path)


def test_the_documented_matrix_is_every_route_the_service_serves(app: Flask) -> None:
    assert set(documented_matrix()) == set(served_routes(app))


def test_every_method_of_every_route_is_closed_without_a_key(app: Flask, client: Any) -> None:
    """No key, a made-up key: 401 for every route and method, HEAD and OPTIONS included,
    but for the one public route (Stripe's webhook checks Stripe's signature instead)."""
    matrix = documented_matrix()
    for (method, path), allowed in served_routes(app).items():
        for sent in sorted({method, "OPTIONS"} | ({"HEAD"} if "HEAD" in allowed else set())):
            for headers in ({}, {"Authorization": "Bearer ck_made_up"}):
                answer = client.open(concrete(path), method=sent, headers=headers)
                if matrix[(method, path)] is None and sent == method:
                    # Refused by its own check (no signature; here, no Stripe configured).
                    assert answer.status_code in (400, 503), (sent, path)
                    continue
                assert answer.status_code == 401, (sent, path, headers, answer.status_code)


def test_a_key_without_the_scope_is_refused_whatever_the_method(
    app: Flask, client: Any, make_key: Any
) -> None:
    for (method, path), scopes in documented_matrix().items():
        if scopes is None or scopes == ("*",):
            continue
        others = make_key(*sorted(SCOPES - set(scopes)))
        methods = {method} | ({"HEAD"} if method == "GET" else set())
        for sent in methods:
            answer = client.open(concrete(path), method=sent, headers=others)
            assert answer.status_code == 403, (sent, path, answer.status_code)
        right = make_key(scopes[0], "events:read")  # webhooks also read the feed
        for sent in methods:
            answer = client.open(concrete(path), method=sent, headers=right)
            assert answer.status_code not in (401, 403), (sent, path, answer.status_code)


def test_head_is_answered_as_get_for_the_keyholder_only(client: Any, make_key: Any) -> None:
    """HEAD once answered 200 (with the length of the body) to anyone; now exactly as GET."""
    reader = make_key("invoices:read")
    for headers, status in (({}, 401), (make_key("quotes:write"), 403), (reader, 200)):
        head = client.head("/v1/invoices", headers=headers)
        assert head.status_code == status and head.data == b""
        assert client.get("/v1/invoices", headers=headers).status_code == status


def test_a_head_of_an_export_writes_nothing_and_a_get_is_in_the_audit_trail(
    client: Any, make_key: Any
) -> None:
    reports, auditor = make_key("reports:read"), make_key("audit:read")

    def exports() -> int:
        found = client.get(
            "/v1/audit-events", query_string={"action": "report.exported"}, headers=auditor
        )
        assert found.status_code == 200, found.json
        return len(found.json["data"])

    path = "/v1/reports/aging?format=csv"
    head = client.head(path, headers=reports)
    assert head.status_code == 200 and head.mimetype == "text/csv"
    assert exports() == 0
    assert client.get(path, headers=reports).status_code == 200
    assert exports() == 1


def test_options_needs_a_key_and_says_nothing_more(client: Any, make_key: Any) -> None:
    assert client.options("/v1/invoices").status_code == 401
    allowed = client.options("/v1/invoices", headers=make_key("catalog:write"))
    assert allowed.status_code == 200 and {"GET", "POST"} <= set(allowed.allow)


def test_a_route_that_declares_no_scope_is_refused_to_every_key(app: Flask) -> None:
    """Fail closed: were a /v1 view to lose its @requires, it would answer no one, and
    the service would not even start with it."""
    from billing.web.auth import check_every_route_declares

    view = app.view_functions["invoices.InvoiceView"]
    handler = view.view_class.get
    scopes = handler._required_scopes
    try:
        del handler._required_scopes
        with pytest.raises(RuntimeError, match="GET /v1/invoices/<invoice_id>"):
            check_every_route_declares(app)
    finally:
        handler._required_scopes = scopes


# 2. Production refuses to start with unsafe settings ---------------------------------

SAFE = {
    "BILLING_ENV": "production",
    "SECRET_KEY": "k" * 48,
    "STRIPE_SECRET_KEY": "sk_test_production_like",
    "STRIPE_WEBHOOK_SECRET": "whsec_production_like",
    "PUBLIC_BASE_URL": "https://pay.example-clinic.com",
}


@pytest.mark.parametrize(
    "change, says",
    [
        ({"SECRET_KEY": "a"}, "SECRET_KEY must be at least 32"),
        ({"SECRET_KEY": "change-me"}, "SECRET_KEY must be at least 32"),
        ({"SECRET_KEY_FALLBACKS": ["k" * 48, "a"]}, "SECRET_KEY_FALLBACKS holds a key under 32"),
        ({"STRIPE_WEBHOOK_SECRET": ""}, "STRIPE_WEBHOOK_SECRET is not set"),
        ({"PUBLIC_BASE_URL": ""}, "PUBLIC_BASE_URL must be"),
        ({"PUBLIC_BASE_URL": "http://pay.example-clinic.com"}, "PUBLIC_BASE_URL must be"),
        (
            {"BILLING_ENV": "development", "STRIPE_SECRET_KEY": "sk_live_x", "SECRET_KEY": "a"},
            "SECRET_KEY",
        ),
    ],
)
def test_production_refuses_each_unsafe_setting(
    postgresql_url: str, change: dict[str, str], says: str
) -> None:
    with pytest.raises(RuntimeError, match="refusing to start in production") as refused:
        create_app({**SAFE, "DATABASE_URL": postgresql_url, **change})
    assert says in str(refused.value)


def test_production_refuses_sqlite_and_says_every_problem_on_its_own_line(
    sqlite_url: str,
) -> None:
    with pytest.raises(RuntimeError) as refused:
        create_app({"BILLING_ENV": "production", "DATABASE_URL": sqlite_url, "SECRET_KEY": "a"})
    lines = str(refused.value).splitlines()[1:]
    assert len(lines) == 5 and all(line.startswith("- ") for line in lines)
    assert any("PostgreSQL" in line for line in lines)


def test_gunicorn_exits_non_zero_on_unsafe_production_settings(postgresql_url: str) -> None:
    env = {**os.environ, **SAFE, "SECRET_KEY": "a", "DATABASE_URL": postgresql_url}
    ran = subprocess.run(
        [sys.executable, "-m", "gunicorn", "-b", "127.0.0.1:0", "billing:create_app()"],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert ran.returncode != 0
    assert "SECRET_KEY must be at least 32" in ran.stderr


def test_production_links_come_from_public_base_url_never_from_host(
    postgresql_url: str, make_key: Any
) -> None:
    app = create_app({**SAFE, "DATABASE_URL": postgresql_url, "TESTING": True})
    from billing.services.access import keys
    from tests.conftest import _empty_tables

    _empty_tables(app)
    try:
        with app.app_context():
            from billing.services.pricing import catalog

            catalog.seed_default(db.session())
            _, plain = keys.create_key(db.session(), "desk", ["quotes:write", "invoices:write"])
            _, payer = keys.create_key(db.session(), "payer", ["payments:write"])
        client = app.test_client()
        desk, pays = {"Authorization": f"Bearer {plain}"}, {"Authorization": f"Bearer {payer}"}
        quote = client.post(
            "/v1/quotes",
            headers=desk,
            json={
                "booking_id": "BK-HOST",
                "session_type": "iv_individual",
                "scheduled_at": in_days(5),
                "currency": "usd",
                "patients": [{"patient_id": "P-HOST", "name": "Host Test"}],
            },
        ).json
        assert "id" in quote, quote
        invoice = client.post("/v1/invoices", headers=desk, json={"quote_id": quote["id"]}).json
        link = client.post(
            f"/v1/invoices/{invoice['data'][0]['id']}/payments",
            headers={**pays, "Idempotency-Key": "host", "Host": "evil.example"},
            json={"method": "online", "send_email": True},
        )
        assert link.status_code == 201, link.json
        assert link.json["pay_url"].startswith("https://pay.example-clinic.com/pay/")
        # No SMTP_URL in production: the email cannot reach the patient, so none is queued.
        assert link.json["email_queued"] is False
    finally:
        _empty_tables(app)
        app.extensions["billing.db"].engine.dispose()


def test_a_rotated_secret_key_keeps_sessions_and_pay_links_working(app: Flask, client: Any) -> None:
    from billing.domain import paylinks

    with app.app_context():
        create_staff_user(db.session(), EMAIL, PASSWORD)
    assert sign_in(client) == 303
    signed_before = client.get_cookie("session", path="/finance")
    assert signed_before is not None
    old = app.config["SECRET_KEY"]
    token = paylinks.sign(old, "pl_rotation", paylinks_expiry())
    app.config.update(SECRET_KEY="n" * 48, SECRET_KEY_FALLBACKS=[old])
    assert client.get("/finance", **HTTPS).status_code == 200  # the old cookie still opens
    now = paylinks_expiry() - timedelta(hours=12)
    assert paylinks.verify([app.config["SECRET_KEY"], old], token, now) is not None
    # Once the old key is retired for good, a cookie it signed opens nothing.
    app.config["SECRET_KEY_FALLBACKS"] = []
    stale = app.test_client()
    stale.set_cookie("session", signed_before.value, domain="localhost", path="/finance")
    assert stale.get("/finance", **HTTPS).status_code == 303


def paylinks_expiry() -> datetime:
    return datetime.now(UTC) + timedelta(days=1)


# 3. Odd input is a 4xx, never a 500 ---------------------------------------------------


def test_a_body_nested_thousands_deep_is_a_400(client: Any, make_key: Any) -> None:
    answer = client.post(
        "/v1/quotes",
        data="[" * 60_000,
        headers={**make_key("quotes:write"), "Content-Type": "application/json"},
    )
    assert answer.status_code == 400 and answer.json["code"] == "malformed_json"


@pytest.mark.parametrize(
    "query",
    [
        "created_gte=9999-12-31T23:59:59-23:00",
        "created_lt=0001-01-01T00:00:00%2B01:00",
        "created_gte=9000-01-01T00:00:00Z",
    ],
)
def test_times_at_the_ends_of_the_calendar_are_a_422(
    client: Any, make_key: Any, query: str
) -> None:
    answer = client.get(f"/v1/invoices?{query}", headers=make_key("invoices:read"))
    assert answer.status_code == 422 and answer.json["code"] == "validation_error", answer.json
    assert list(answer.json["errors"]) == [query.split("=")[0]]


def test_a_far_time_inside_the_calendar_is_answered_with_nothing(
    client: Any, make_key: Any
) -> None:
    answer = client.get(
        "/v1/invoices?created_gte=8999-12-31T23:59:59Z", headers=make_key("invoices:read")
    )
    assert answer.status_code == 200 and answer.json["data"] == []


def test_audit_times_at_the_ends_of_the_calendar_are_a_422(client: Any, make_key: Any) -> None:
    answer = client.get(
        "/v1/audit-events?occurred_lt=0001-01-01T00:00:00%2B01:00", headers=make_key("audit:read")
    )
    assert answer.status_code == 422 and list(answer.json["errors"]) == ["occurred_lt"]


def test_finance_pages_take_no_far_future_period(app: Flask, client: Any) -> None:
    with app.app_context():
        create_staff_user(db.session(), EMAIL, PASSWORD)
    assert sign_in(client) == 303
    for query in ("from=9999-12-01&to=9999-12-31", "from=0001-01-01&to=0001-01-02"):
        assert client.get(f"/finance?{query}", **HTTPS).status_code == 400
    assert (
        client.get("/finance/audit?starting_after=99999999999999999999", **HTTPS).status_code == 200
    )


def test_secrets_compared_are_bytes_so_any_character_is_a_4xx(app: Flask, client: Any) -> None:
    app.config["METRICS_TOKEN"] = "metrics-token"
    metrics = client.get("/metrics", headers={"Authorization": "Bearer tökén"})
    assert metrics.status_code == 401
    login = client.post("/finance/login", data={"csrf_token": "jeton-à-usage-unique"}, **HTTPS)
    assert login.status_code == 400
    logout = client.post("/finance/logout", data={"csrf_token": "ünïcode"}, **HTTPS)
    assert logout.status_code == 400
    assert client.get("/pay/pl_x.1.sïgnature").status_code == 404


def test_a_callers_request_id_is_kept_only_when_plain(client: Any) -> None:
    assert (
        client.get("/healthz", headers={"X-Request-ID": "abc-123"}).headers["X-Request-ID"]
        == "abc-123"
    )
    for sent in ("a b", "x" * 129, "<script>", "é"):
        kept = client.get("/healthz", headers={"X-Request-ID": sent}).headers["X-Request-ID"]
        assert kept != sent and re.fullmatch(r"[0-9a-f]{32}", kept)


@pytest.mark.parametrize("name", ["Line1\nLine2", "Line1\r\nJ3490", "Tab\there", "Bell\x07"])
def test_names_with_control_characters_are_refused(
    client: Any, make_key: Any, booking: Any, name: str
) -> None:
    body = booking()
    body["patients"][0]["name"] = name
    answer = client.post("/v1/quotes", json=body, headers=make_key("quotes:write"))
    assert answer.status_code == 422 and "patients.0.name" in answer.json["errors"]


def test_requests_that_take_no_body_refuse_fields_like_every_other(
    client: Any, make_key: Any
) -> None:
    answer = client.post(
        "/v1/invoices/in_x/void", json={"reason": "typo"}, headers=make_key("invoices:write")
    )
    assert answer.status_code == 422 and list(answer.json["errors"]) == ["reason"]


# 4. Limits on guessing ----------------------------------------------------------------


def test_made_up_keys_are_limited_per_address_before_any_lookup(
    app: Flask, client: Any, make_key: Any
) -> None:
    app.config["AUTH_FAILURE_LIMIT"] = "5 per minute"
    answers = [
        client.get("/v1/invoices", headers={"Authorization": f"Bearer ck_guess_{n}"}).status_code
        for n in range(7)
    ]
    assert answers == [401] * 5 + [429, 429]
    # Another address is not affected.
    other = client.get(
        "/v1/invoices", headers=make_key("invoices:read"), environ_base={"REMOTE_ADDR": "10.9.9.9"}
    )
    assert other.status_code == 200


def test_wrong_metrics_tokens_are_limited(app: Flask, client: Any) -> None:
    app.config.update(METRICS_TOKEN="metrics-token", AUTH_FAILURE_LIMIT="3 per minute")
    answers = [
        client.get("/metrics", headers={"Authorization": f"Bearer wrong-{n}"}).status_code
        for n in range(5)
    ]
    assert answers == [401, 401, 401, 429, 429]


def test_the_docs_page_carries_the_security_headers(client: Any) -> None:
    docs = client.get("/docs")
    assert docs.status_code == 200
    policy = docs.headers["Content-Security-Policy"]
    assert "script-src 'self'" in policy and "frame-ancestors 'none'" in policy
    assert docs.headers["X-Frame-Options"] == "DENY"
    assert '<html lang="en">' in docs.get_data(as_text=True)
    assert "<script>" not in docs.get_data(as_text=True)  # no inline script


def test_after_a_rotation_signing_secrets_are_sealed_again_for_the_new_key_alone(
    app: Flask, client: Any, make_key: Any
) -> None:
    from sqlalchemy import select

    from billing.adapters.outbox import WebhookEndpoint
    from billing.services.integrations.settings import secret_box

    app.config["WEBHOOK_ALLOWED_NETWORKS"] = "127.0.0.0/8"
    made = client.post(
        "/v1/webhook-endpoints",
        json={"url": "http://127.0.0.1:9/hook", "events": ["*"]},
        headers=make_key("webhooks:write", "events:read"),
    )
    assert made.status_code == 201, made.json
    old = app.config["SECRET_KEY"]
    app.config.update(SECRET_KEY="r" * 48, SECRET_KEY_FALLBACKS=[old])
    ran = app.test_cli_runner().invoke(args=["webhooks", "reseal"])
    assert ran.exit_code == 0 and "sealed 1" in ran.output
    app.config["SECRET_KEY_FALLBACKS"] = []  # the old key retired
    with app.app_context():
        stored = db.session().scalars(select(WebhookEndpoint.secret)).one()
    assert made.json["secret"] not in stored  # sealed at rest
    assert secret_box(app.config).open(stored).plain == made.json["secret"]
