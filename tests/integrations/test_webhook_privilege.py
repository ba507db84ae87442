"""Webhooks and the event feed under least privilege: hearing events needs events:read, an
endpoint is its client system's own and hears only the types it asked for, events carry
no names, exemptions or approvers, and signing secrets are sealed at rest and survive a
SECRET_KEY rotation. On SQLite and PostgreSQL, over real HTTP on loopback."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import create_engine, select, text

from billing.adapters import db
from billing.adapters.migrate import upgrade
from billing.adapters.outbox import WebhookEndpoint
from billing.config import normalise_database_url
from billing.services.access import keys
from tests.api.test_migrations import _fresh_database
from tests.integrations.feed import wait_until_settled
from tests.integrations.receiver import Receiver
from tests.integrations.test_webhooks import LOOPBACK, quote, register, work

HEARING = ("webhooks:write", "events:read", "quotes:write", "invoices:write", "invoices:read")
# What no event may carry: the IV exemption's reason and approving clinician, the sliding
# scale's reason and approver, and the patients' names.
PRIVATE = ("difficult_venous_access", "Dr. Lee", "income below threshold", "Jo Park")
NAMES = ("Ana Ruiz", "Ben Okafor")


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    started = Receiver().start()
    yield started
    started.stop()


@pytest.fixture
def key_of(app: Flask) -> Callable[..., dict[str, str]]:
    """A key of the client system `client` (several keys may share one: a rotation)."""
    app.config.update(WEBHOOK_ALLOWED_NETWORKS=LOOPBACK, WEBHOOK_RETRY_BASE_SECONDS=0.2)

    def make(client: str, *scopes: str) -> dict[str, str]:
        with app.app_context():
            name = f"{client}-{uuid.uuid4().hex[:6]}"
            _, plain = keys.create_key(db.session(), name, list(scopes or HEARING), client)
        return {"Authorization": f"Bearer {plain}"}

    return make


def feed(client: FlaskClient, headers: dict[str, str]) -> list[dict[str, Any]]:
    wait_until_settled(client.application)
    return list(client.get("/v1/events", headers=headers).json["data"])


# Least privilege: an endpoint hears what the feed shows, so it needs events:read.


def test_a_key_that_cannot_read_the_feed_cannot_have_events_sent_to_it(
    client: FlaskClient, key_of: Callable[..., dict[str, str]], receiver: Receiver, booking: Any
) -> None:
    writer = key_of("booking", "webhooks:write", "quotes:write")
    answer = client.post(
        "/v1/webhook-endpoints", json={"url": receiver.url, "events": ["*"]}, headers=writer
    )
    assert (answer.status_code, answer.json["code"]) == (403, "insufficient_scope")
    assert "events:read" in answer.json["detail"]
    assert client.get("/v1/webhook-endpoints", headers=writer).json["data"] == []

    register(client, key_of("booking"), receiver, events=["quote.created"])
    quote(client, writer, booking)
    [event] = feed(client, key_of("booking"))
    again = client.post(f"/v1/events/{event['id']}/redeliver", json={}, headers=writer)
    assert (again.status_code, again.json["code"]) == (403, "insufficient_scope")


# Redelivery sends an endpoint only the types it asked for.


def test_an_event_is_not_redelivered_to_an_endpoint_that_did_not_ask_for_its_type(
    app: Flask,
    client: FlaskClient,
    key_of: Callable[..., dict[str, str]],
    receiver: Receiver,
    booking: Any,
) -> None:
    desk = key_of("booking")
    endpoint = register(client, desk, receiver, events=["invoice.paid"])
    quote(client, desk, booking)
    [event] = feed(client, desk)
    named = client.post(
        f"/v1/events/{event['id']}/redeliver", json={"endpoint_id": endpoint["id"]}, headers=desk
    )
    assert (named.status_code, named.json["code"]) == (409, "event_not_subscribed")
    assert "quote.created" in named.json["detail"]
    every = client.post(f"/v1/events/{event['id']}/redeliver", json={}, headers=desk)
    assert (every.status_code, every.json["data"]) == (202, [])
    assert work(app) == []
    assert receiver.received == []


# Ownership: an endpoint is its client system's; another's is not found.


def test_another_client_system_cannot_see_change_or_use_an_endpoint(
    app: Flask,
    client: FlaskClient,
    key_of: Callable[..., dict[str, str]],
    receiver: Receiver,
    booking: Any,
) -> None:
    booking_system, crm = key_of("booking"), key_of("crm")
    endpoint = register(client, booking_system, receiver, events=["quote.created"])
    quote(client, booking_system, booking)
    assert work(app) == ["succeeded"]
    here = f"/v1/webhook-endpoints/{endpoint['id']}"

    assert client.get("/v1/webhook-endpoints", headers=crm).json["data"] == []
    for answer in (
        client.get(here, headers=crm),
        client.get(f"{here}/deliveries", headers=crm),
        client.delete(here, headers=crm),
    ):
        assert (answer.status_code, answer.json["code"]) == (404, "webhook_endpoint_not_found")
    [event] = feed(client, crm)  # the feed is the clinic's: every events:read key reads it
    named = client.post(
        f"/v1/events/{event['id']}/redeliver", json={"endpoint_id": endpoint["id"]}, headers=crm
    )
    assert (named.status_code, named.json["code"]) == (404, "webhook_endpoint_not_found")
    every = client.post(f"/v1/events/{event['id']}/redeliver", json={}, headers=crm)
    assert (every.status_code, every.json["data"]) == (202, [])
    assert work(app) == []
    assert len(receiver.received) == 1  # the first delivery only

    rotated = key_of("booking")  # the booking system's next key: still its endpoint
    assert [e["id"] for e in client.get("/v1/webhook-endpoints", headers=rotated).json["data"]] == [
        endpoint["id"]
    ]
    assert client.get(f"{here}/deliveries", headers=rotated).json["data"][0]["status"] == (
        "succeeded"
    )
    assert client.delete(here, headers=rotated).json["status"] == "disabled"


# Events carry what a booking system acts on, not names, exemptions or approvers.


def test_events_and_deliveries_carry_no_names_exemptions_or_approvers(
    app: Flask,
    client: FlaskClient,
    key_of: Callable[..., dict[str, str]],
    receiver: Receiver,
    booking: Any,
) -> None:
    desk = key_of("booking")
    register(client, desk, receiver, events=["quote.created", "invoice.created"])
    payload = booking()
    payload["patients"][0]["discount"] = {
        "percent": 20,
        "reason": "income below threshold",
        "approved_by": "Jo Park",
    }
    made = client.post("/v1/quotes", json=payload, headers=desk)
    assert made.status_code == 201, made.json
    invoices = client.post("/v1/invoices", json={"quote_id": made.json["id"]}, headers=desk)
    assert invoices.status_code == 201, invoices.json

    shown = client.get(f"/v1/quotes/{made.json['id']}", headers=desk).get_data(as_text=True)
    assert all(word in shown for word in PRIVATE + NAMES)  # the API itself is unchanged
    wait_until_settled(app)
    events = client.get("/v1/events", headers=desk)
    assert [e["type"] for e in events.json["data"]] == ["quote.created", *["invoice.created"] * 2]
    assert not [word for word in PRIVATE + NAMES if word in events.get_data(as_text=True)]
    quoted = events.json["data"][0]["data"]["object"]
    assert quoted["id"] == made.json["id"] and quoted["total"] == made.json["total"]
    assert [line["patient_id"] for line in quoted["lines"]] == ["P-1001", "P-1002"]
    assert quoted["lines"][0]["discounts"][0]["amount"] == 5000  # what, not who or why

    assert work(app) == ["succeeded"] * 3
    delivered = json.dumps([r.event for r in receiver.received])
    assert not [word for word in PRIVATE + NAMES if word in delivered]


# Signing secrets are sealed at rest; deliveries still verify, across a rotation.


def _stored_secret(app: Flask, endpoint_id: str) -> str:
    with app.app_context():
        stored = db.session().scalar(
            select(WebhookEndpoint.secret).where(WebhookEndpoint.id == endpoint_id)
        )
    assert stored is not None
    return stored


def test_signing_secrets_are_sealed_at_rest_and_survive_a_secret_key_rotation(
    app: Flask,
    client: FlaskClient,
    key_of: Callable[..., dict[str, str]],
    receiver: Receiver,
    booking: Any,
) -> None:
    from billing.adapters.secrets_box import SecretBox

    desk = key_of("booking")
    endpoint = register(client, desk, receiver, events=["quote.created"])
    secret = endpoint["secret"]
    sealed = _stored_secret(app, endpoint["id"])
    assert secret not in sealed and sealed.startswith("fernet:")
    quote(client, desk, booking)
    assert work(app) == ["succeeded"]

    old = app.config["SECRET_KEY"]
    app.config.update(SECRET_KEY="rotated-secret-key", SECRET_KEY_FALLBACKS=[old])
    quote(client, desk, booking)
    assert work(app) == ["succeeded"]
    resealed = _stored_secret(app, endpoint["id"])
    assert resealed != sealed  # sealed again under the new key when it was read
    assert SecretBox("rotated-secret-key").open(resealed).plain == secret

    app.config.update(SECRET_KEY_FALLBACKS=[])  # the old key can go now
    quote(client, desk, booking)
    assert work(app) == ["succeeded"]
    assert len(receiver.accepted()) == 3 and all(r.signed for r in receiver.received)


def test_a_secret_stored_before_sealing_is_sealed_when_first_read(
    app: Flask,
    client: FlaskClient,
    key_of: Callable[..., dict[str, str]],
    receiver: Receiver,
    booking: Any,
) -> None:
    desk = key_of("booking")
    endpoint = register(client, desk, receiver, events=["quote.created"])
    with app.app_context():  # as migration 0019 leaves a secret stored before it
        session = db.session()
        session.get_one(WebhookEndpoint, endpoint["id"]).secret = endpoint["secret"]
        session.commit()
    quote(client, desk, booking)
    assert work(app) == ["succeeded"]
    assert receiver.received[0].signed
    stored = _stored_secret(app, endpoint["id"])
    assert stored.startswith("fernet:") and endpoint["secret"] not in stored


def test_a_secret_sealed_under_a_key_no_longer_configured_is_never_sent_unsigned(
    app: Flask,
    client: FlaskClient,
    key_of: Callable[..., dict[str, str]],
    receiver: Receiver,
    booking: Any,
) -> None:
    desk = key_of("booking")
    endpoint = register(client, desk, receiver, events=["quote.created"])
    app.config.update(SECRET_KEY="someone-else's-key", SECRET_KEY_FALLBACKS=[])
    quote(client, desk, booking)
    assert work(app) == ["pending"]  # retried later: the old key may come back
    assert receiver.received == []
    [delivery] = client.get(
        f"/v1/webhook-endpoints/{endpoint['id']}/deliveries", headers=desk
    ).json["data"]
    assert "SECRET_KEY_FALLBACKS" in delivery["last_error"]


# The migration: existing endpoints keep their owner, from the audit trail.

LEGACY_ROWS = (
    "INSERT INTO api_keys (name, client, key_prefix, key_hash, scopes, created_at) "
    "VALUES ('desk-2026', 'booking', 'ck_1', 'hash-1', 'webhooks:write', :now)",
    *(
        "INSERT INTO webhook_endpoints (id, url, event_types, secret, status, created_at) "
        f"VALUES ('{we}', 'https://booking.example.org/hook', '*', 'whsec_legacy', 'enabled', "
        ":now)"
        for we in ("we_attributed", "we_unknown")
    ),
    "INSERT INTO audit_events (occurred_at, actor_type, actor, action, object_type, "
    "object_id, details) VALUES (:now, 'api_key', 'desk-2026', 'webhook_endpoint.created', "
    "'webhook_endpoint', 'we_attributed', '{}')",
)


@pytest.mark.parametrize(
    "kind", ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgresql)]
)
def test_migration_0019_gives_existing_endpoints_the_client_that_registered_them(
    kind: str, tmp_path: Any
) -> None:
    for url in _fresh_database(kind, tmp_path):
        upgrade(url, "0018")
        engine = create_engine(normalise_database_url(url))
        with engine.begin() as connection:
            for statement in LEGACY_ROWS:
                connection.execute(text(statement), {"now": "2026-12-01 10:00:00+00:00"})
        upgrade(url)
        with engine.begin() as connection:
            rows = connection.execute(
                text("SELECT id, owner_client, secret FROM webhook_endpoints ORDER BY id")
            ).all()
            assert [tuple(row) for row in rows] == [
                ("we_attributed", "booking", "whsec_legacy"),
                ("we_unknown", "", "whsec_legacy"),
            ]
            sealed = "fernet:" + "g" * 200  # a sealed secret fits the widened column
            connection.execute(text("UPDATE webhook_endpoints SET secret = :s"), {"s": sealed})
        engine.dispose()
