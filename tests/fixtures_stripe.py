"""Fixtures for tests that reach Stripe: real HTTP to localstripe, through a recording
proxy that can inject faults; the app also serves on a loopback port so the stand-in's
webhooks (and a browser) reach it."""

from __future__ import annotations

import http.server
import json
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from flask import Flask
from werkzeug.serving import make_server

from billing import create_app
from billing.adapters import db
from billing.adapters.standin import StripeStandIn, free_port
from billing.services.pricing import catalog
from tests.conftest import _empty_tables, in_days
from tests.stripe.contract import checked

SECRET_KEY = "sk_test_billing"
WEBHOOK_SECRET = "whsec_billing_tests"


@dataclass
class Recorded:
    method: str
    path: str
    body: str
    idempotency_key: str | None


@dataclass
class RecordingProxy:
    """Forwards to the stand-in, records every request, and misbehaves on demand."""

    upstream: str
    port: int = field(default_factory=free_port)
    requests: list[Recorded] = field(default_factory=list)
    fault: str | None = None  # "error500", "reject" (a 400), "slow" or "down"
    delay: float = 0.0
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def calls(self, method: str, path: str) -> list[Recorded]:
        with self.lock:
            return [r for r in self.requests if r.method == method and r.path == path]

    def start(self) -> RecordingProxy:
        proxy = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *_args: Any) -> None:
                pass

            def _forward(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                path = self.path.split("?")[0]
                with proxy.lock:
                    proxy.requests.append(
                        Recorded(
                            self.command, path, body.decode(), self.headers.get("Idempotency-Key")
                        )
                    )
                if proxy.fault == "down":
                    self.close_connection = True
                    self.connection.close()
                    return
                if proxy.fault == "error500":
                    self._reply(500, b'{"error": {"type": "api_error", "message": "boom"}}')
                    return
                if proxy.fault == "reject":
                    self._reply(
                        400, b'{"error": {"type": "invalid_request_error", "message": "refused"}}'
                    )
                    return
                if proxy.fault == "slow":
                    time.sleep(proxy.delay)
                headers = {
                    k: v
                    for k, v in self.headers.items()
                    if k.lower() not in ("host", "content-length")
                }
                request = urllib.request.Request(
                    proxy.upstream + self.path,
                    data=body or None,
                    method=self.command,
                    headers=headers,
                )
                try:
                    with urllib.request.urlopen(request, timeout=30) as answer:
                        self._reply(answer.status, answer.read())
                except urllib.error.HTTPError as error:
                    self._reply(error.code, error.read())

            def _reply(self, status: int, body: bytes) -> None:
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                except (BrokenPipeError, ConnectionResetError):
                    pass

            do_GET = do_POST = do_DELETE = _forward

        server = http.server.ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        server.daemon_threads = True
        threading.Thread(target=server.serve_forever, daemon=True).start()
        return self


@pytest.fixture(scope="session")
def standin() -> StripeStandIn:
    return StripeStandIn().start()


@pytest.fixture
def proxy(standin: StripeStandIn) -> RecordingProxy:
    return RecordingProxy(standin.url).start()


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgresql)])
def stripe_app(
    request: pytest.FixtureRequest, standin: StripeStandIn, proxy: RecordingProxy
) -> Iterator[Flask]:
    """The app talking to the stand-in through the proxy, and serving its webhooks."""
    url = request.getfixturevalue(f"{request.param}_url")
    app = create_app(
        {
            "TESTING": True,
            "DATABASE_URL": url,
            "STRIPE_SECRET_KEY": SECRET_KEY,
            "STRIPE_WEBHOOK_SECRET": WEBHOOK_SECRET,
            "STRIPE_API_BASE": proxy.url,
            "STRIPE_PUBLISHABLE_KEY": "pk_test_billing",
            "STRIPE_JS_URL": f"{standin.url}/js.stripe.com/v3/",
            # Short enough for the fault tests, long enough for a busy two-core machine
            # running three workers and a browser (2 s timed out now and then).
            "STRIPE_TIMEOUT_SECONDS": 4.0,
            "STRIPE_MAX_NETWORK_RETRIES": 0,
            "DB_POOL_SIZE": 20,
            # The tests call far faster than any client system; the limits have their own.
            "API_RATE_LIMIT": "1000000 per minute",
            "PAY_RATE_LIMIT_PER_MINUTE": 1_000_000,
            "PAY_PAGE_BANK_DEBIT": True,
        }
    )
    # Every request to Stripe in every Stripe test is checked against the SDK's own types.
    app.extensions["billing.stripe_calls"] = checked(app.extensions["billing.stripe"])
    _empty_tables(app)
    with app.app_context():
        catalog.seed_default(db.session())
    server = make_server("127.0.0.1", free_port(), app, threaded=True)
    server.daemon_threads = False  # so that server_close() waits for them
    threading.Thread(target=server.serve_forever, daemon=True).start()
    app.config["LIVE_URL"] = f"http://127.0.0.1:{server.server_port}"
    standin.register_webhook(f"{app.config['LIVE_URL']}/v1/stripe/webhooks", WEBHOOK_SECRET)
    yield app
    server.shutdown()
    # Wait for requests still being answered (a late webhook from the stand-in): they hold
    # database connections, which must be back in the pool before it is disposed.
    server.server_close()
    _empty_tables(app)
    app.extensions["billing.db"].engine.dispose()


@pytest.fixture
def stripe_client(stripe_app: Flask) -> Any:
    return stripe_app.test_client()


@pytest.fixture
def staff(stripe_app: Flask) -> dict[str, str]:
    """A key with the scopes of the desk and finance, for setting scenes up."""
    from billing.services.access import keys

    with stripe_app.app_context():
        _, plain = keys.create_key(
            db.session(),
            "staff",
            [
                "quotes:write",
                "invoices:read",
                "invoices:write",
                "invoices:adjust",
                "payments:write",
                "payments:record",
                "refunds:write",
                "reports:read",
            ],
        )
    return {"Authorization": f"Bearer {plain}"}


def card_payment_method(standin_url: str, number: str) -> str:
    """A PaymentMethod made at the stand-in from a test card number, as Stripe.js would."""
    card = {"number": number, "exp_month": "12", "exp_year": "2034", "cvc": "123"}
    return payment_method(standin_url, "card", card)


def payment_method(standin_url: str, kind: str, details: dict[str, str], **more: str) -> str:
    """A PaymentMethod of `kind` made at the stand-in, as Stripe.js would make it."""
    form = {"type": kind, **{f"{kind}[{k}]": v for k, v in details.items()}, **more}
    request = urllib.request.Request(
        f"{standin_url}/v1/payment_methods",
        data=urllib.parse.urlencode(form).encode(),
        headers={"Authorization": f"Bearer {SECRET_KEY}"},
    )
    with urllib.request.urlopen(request, timeout=5) as answer:
        return str(json.loads(answer.read())["id"])


def authenticate_setup(standin_url: str, setup_intent: str, client_secret: str) -> None:
    """The patient answers the bank's 3-D Secure step for a SetupIntent (as Stripe.js would
    show it in their browser)."""
    data = urllib.parse.urlencode({"client_secret": client_secret, "success": "true"}).encode()
    request = urllib.request.Request(
        f"{standin_url}/v1/setup_intents/{setup_intent}/_authenticate",
        data=data,
        headers={"Authorization": f"Bearer {SECRET_KEY}"},
    )
    urllib.request.urlopen(request, timeout=5).close()


def save_card(
    client: Any, headers: dict[str, str], standin_url: str, patient_id: str, card: str
) -> dict[str, Any]:
    """Save a card on file as a booking system does: a PaymentMethod from Stripe.js (a pm_
    id or a test card number), set up through a SetupIntent; when the bank asks the patient
    to confirm it, the patient does and the SetupIntent is sent instead."""
    method = card if card.startswith("pm_") else card_payment_method(standin_url, card)
    path = f"/v1/patients/{patient_id}/payment-methods"
    saved = client.post(path, headers=headers, json={"payment_method": method})
    if saved.status_code == 402 and saved.json["code"] == "authentication_required":
        authenticate_setup(standin_url, saved.json["setup_intent"], saved.json["client_secret"])
        saved = client.post(
            path, headers=headers, json={"setup_intent": saved.json["setup_intent"]}
        )
    assert saved.status_code == 201, saved.json
    return dict(saved.json)


@pytest.fixture
def open_invoice(
    stripe_client: Any, staff: dict[str, str], standin: StripeStandIn
) -> Callable[..., str]:
    """An open IV invoice for a patient whose card on file is `card` (a pm_ id or a number)."""
    counter = iter(range(1, 1000))

    def make(
        card: str | None = "pm_card_visa",
        patient_id: str | None = None,
        booking_id: str | None = None,
        email: str | None = None,
    ) -> str:
        patient_id = patient_id or f"P-{next(counter):04d}"
        patient = {"patient_id": patient_id, "name": "Test Patient"}
        if email is not None:
            patient["email"] = email
        quote = stripe_client.post(
            "/v1/quotes",
            headers=staff,
            json={
                "booking_id": booking_id or f"BK-{patient_id}",
                "session_type": "iv_individual",
                "scheduled_at": in_days(5),
                "currency": "usd",
                "patients": [patient],
            },
        ).json
        invoices = stripe_client.post("/v1/invoices", headers=staff, json={"quote_id": quote["id"]})
        assert invoices.status_code == 201, invoices.json
        if card is not None:
            save_card(stripe_client, staff, standin.url, patient_id, card)
        return str(invoices.json["data"][0]["id"])

    return make


def eventually(check: Callable[[], Any], timeout: float = 10.0) -> Any:
    """Poll until `check` returns something truthy (webhooks arrive about 1 s late)."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError("the expected state did not arrive in time")
        time.sleep(0.1)


def intents_at_stripe(standin: StripeStandIn, invoice_id: str) -> int:
    """PaymentIntents the stand-in holds for one invoice (whatever our side believes)."""
    query = urllib.parse.quote(f"metadata['invoice_ref']:'{invoice_id}'")
    request = urllib.request.Request(
        f"{standin.url}/v1/payment_intents/search?query={query}",
        headers={"Authorization": f"Bearer {SECRET_KEY}"},
    )
    with urllib.request.urlopen(request) as answer:
        return len(json.loads(answer.read())["data"])
