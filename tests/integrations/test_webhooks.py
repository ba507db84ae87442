"""Webhooks to a booking system, over real HTTP on loopback: registered by API, signed,
retried with backoff, logged, redelivered on demand, disabled after failing too long,
and never sent where the service must not reach (the clinic's own network)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from billing.adapters import db
from billing.services.integrations import events, webhooks
from billing.services.integrations.settings import delivering
from tests.integrations.feed import wait_until_settled
from tests.integrations.receiver import Receiver

LOOPBACK = "127.0.0.0/8,::1/128"


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    started = Receiver().start()
    yield started
    started.stop()


@pytest.fixture
def hooks(app: Flask, make_key: Callable[..., dict[str, str]]) -> dict[str, str]:
    app.config.update(WEBHOOK_ALLOWED_NETWORKS=LOOPBACK, WEBHOOK_RETRY_BASE_SECONDS=0.2)
    return make_key("webhooks:write", "events:read", "quotes:write", "invoices:write")


def register(client: FlaskClient, hooks: dict[str, str], receiver: Receiver, **body: Any) -> Any:
    answer = client.post(
        "/v1/webhook-endpoints",
        json={"url": receiver.url, "events": ["*"], **body},
        headers=hooks,
    )
    assert answer.status_code == 201, answer.json
    receiver.secret = answer.json["secret"]
    return answer.json


def work(app: Flask, rounds: int = 1) -> list[str]:
    """What the workers do: relay new events, then send every delivery that is due."""
    statuses: list[str] = []
    wait_until_settled(app)
    with app.app_context():
        session = db.session()
        for _ in range(rounds):
            events.relay(session)
            # What the relay and the API hand to workers at once, and the sweep later.
            for delivery_id in webhooks.due(session, fresh_grace=timedelta(0)):
                statuses.append(webhooks.deliver(session, delivering(app.config), delivery_id))
    return statuses


def quote(client: FlaskClient, hooks: dict[str, str], booking: Callable[..., Any]) -> Any:
    answer = client.post("/v1/quotes", json=booking(), headers=hooks)
    assert answer.status_code == 201
    return answer.json


def test_a_registered_endpoint_receives_each_event_signed_as_the_feed_shows_it(
    app: Flask, client: FlaskClient, hooks: dict[str, str], receiver: Receiver, booking: Any
) -> None:
    endpoint = register(client, hooks, receiver, events=["quote.created", "invoice.created"])
    assert endpoint["secret"].startswith("whsec_")
    assert "secret" not in client.get(f"/v1/webhook-endpoints/{endpoint['id']}", headers=hooks).json
    made = quote(client, hooks, booking)
    client.post("/v1/invoices", json={"quote_id": made["id"]}, headers=hooks)
    assert work(app) == ["succeeded"] * 3  # the quote and its two invoices
    feed = client.get("/v1/events", headers=hooks).json["data"]
    assert receiver.accepted() == feed
    assert all(r.signed for r in receiver.received)
    first = receiver.received[0].headers
    assert first["Billing-Event-Id"] == feed[0]["id"]
    assert first["Billing-Signature"].startswith("t=")
    assert work(app) == []  # delivered once


def test_an_endpoint_hears_only_the_types_it_asked_for_and_only_new_events(
    app: Flask, client: FlaskClient, hooks: dict[str, str], receiver: Receiver, booking: Any
) -> None:
    quote(client, hooks, booking)  # before the endpoint existed: not sent to it
    register(client, hooks, receiver, events=["invoice.created"])
    made = quote(client, hooks, booking)
    client.post("/v1/invoices", json={"quote_id": made["id"]}, headers=hooks)
    work(app)
    assert [e["type"] for e in receiver.accepted()] == ["invoice.created", "invoice.created"]


def test_failures_are_retried_with_doubling_waits_and_logged(
    app: Flask, client: FlaskClient, hooks: dict[str, str], receiver: Receiver, booking: Any
) -> None:
    endpoint = register(client, hooks, receiver, events=["quote.created"])
    app.config["WEBHOOK_RETRY_BASE_SECONDS"] = 1.0  # waits of 1 s, then 2 s
    receiver.answers = [500, 503]
    quote(client, hooks, booking)
    assert work(app) == ["pending"]  # failed once: waits 1 s
    assert work(app) == []  # not yet due
    time.sleep(1.1)
    assert work(app) == ["pending"]  # failed twice: waits 2 s
    time.sleep(1.0)
    assert work(app) == []
    time.sleep(1.1)
    assert work(app) == ["succeeded"]
    log = client.get(f"/v1/webhook-endpoints/{endpoint['id']}/deliveries", headers=hooks).json
    [delivery] = log["data"]
    assert delivery["status"] == "succeeded" and delivery["attempts"] == 3
    assert [a["status_code"] for a in delivery["log"]] == [500, 503, 200]
    waits = [
        (b - a).total_seconds()
        for a, b in zip(
            (_at(x["attempted_at"]) for x in delivery["log"][:-1]),
            (_at(x["attempted_at"]) for x in delivery["log"][1:]),
            strict=True,
        )
    ]
    assert waits[0] >= 1.0 and waits[1] >= 2.0  # doubling
    assert (
        client.get(f"/v1/webhook-endpoints/{endpoint['id']}", headers=hooks).json["failing_since"]
        is None
    )


def _at(value: str) -> Any:
    from datetime import datetime

    return datetime.fromisoformat(value)


def test_an_endpoint_failing_for_too_long_is_disabled_and_an_event_says_so(
    app: Flask, client: FlaskClient, hooks: dict[str, str], receiver: Receiver, booking: Any
) -> None:
    app.config["WEBHOOK_DISABLE_AFTER_HOURS"] = 0.5 / 3600  # half a second, for the test
    broken = register(client, hooks, receiver, events=["quote.created"])
    watcher = Receiver().start()
    try:
        register(client, hooks, watcher, events=["webhook_endpoint.disabled"])
        receiver.answers = [500] * 20
        quote(client, hooks, booking)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            work(app)
            endpoint = client.get(f"/v1/webhook-endpoints/{broken['id']}", headers=hooks).json
            if endpoint["status"] == "disabled":
                break
            time.sleep(0.1)
        assert endpoint["status"] == "disabled"
        assert endpoint["disabled_reason"] == "failing for 3 days"
        work(app)
        [notice] = watcher.accepted()
        assert notice["type"] == "webhook_endpoint.disabled"
        assert notice["data"]["object"]["id"] == broken["id"]
        tried = len(receiver.received)
        quote(client, hooks, booking)
        work(app, rounds=2)
        assert len(receiver.received) == tried  # nothing more is sent to it
    finally:
        watcher.stop()


def test_redirects_are_not_followed(
    app: Flask, client: FlaskClient, hooks: dict[str, str], receiver: Receiver, booking: Any
) -> None:
    endpoint = register(client, hooks, receiver, events=["quote.created"])
    receiver.answers = [302]
    quote(client, hooks, booking)
    assert work(app) == ["pending"]
    [delivery] = client.get(
        f"/v1/webhook-endpoints/{endpoint['id']}/deliveries", headers=hooks
    ).json["data"]
    assert delivery["log"][0]["status_code"] == 302
    assert delivery["last_error"] == "redirects are not followed"


def test_an_event_can_be_sent_again_on_demand(
    app: Flask, client: FlaskClient, hooks: dict[str, str], receiver: Receiver, booking: Any
) -> None:
    endpoint = register(client, hooks, receiver, events=["quote.created"])
    quote(client, hooks, booking)
    work(app)
    [event] = client.get("/v1/events", headers=hooks).json["data"]
    again = client.post(
        f"/v1/events/{event['id']}/redeliver", json={"endpoint_id": endpoint["id"]}, headers=hooks
    )
    assert again.status_code == 202
    assert [d["status"] for d in again.json["data"]] == ["pending"]
    assert work(app) == ["succeeded"]
    assert [e["id"] for e in receiver.accepted()] == [event["id"], event["id"]]
    unknown = client.post(f"/v1/events/evt_{'0' * 24}/redeliver", json={}, headers=hooks)
    assert (unknown.status_code, unknown.json["code"]) == (404, "event_not_found")


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:9/hook",
        "http://localhost/hook",
        "http://10.1.2.3/hook",
        "http://192.168.0.10/hook",
        "http://169.254.169.254/latest/meta-data",
        "http://[::1]/hook",
        "ftp://example.org/hook",
        "https://user:secret@example.org/hook",
        "http://no-such-host.invalid/hook",
    ],
)
def test_urls_into_private_networks_or_not_http_are_refused(
    client: FlaskClient, make_key: Callable[..., dict[str, str]], url: str
) -> None:
    answer = client.post(
        "/v1/webhook-endpoints",
        json={"url": url, "events": ["*"]},
        headers=make_key("webhooks:write", "events:read"),
    )
    assert answer.status_code == 422, answer.json
    assert answer.json["code"] == "unsafe_webhook_url"
    assert "url" in answer.json["errors"]


def test_a_destination_is_checked_again_when_it_is_sent_to(
    app: Flask, client: FlaskClient, hooks: dict[str, str], receiver: Receiver, booking: Any
) -> None:
    endpoint = register(client, hooks, receiver, events=["quote.created"])
    app.config["WEBHOOK_ALLOWED_NETWORKS"] = ""  # loopback no longer allowed
    quote(client, hooks, booking)
    assert work(app) == ["pending"]
    assert receiver.received == []  # nothing reached it
    [delivery] = client.get(
        f"/v1/webhook-endpoints/{endpoint['id']}/deliveries", headers=hooks
    ).json["data"]
    assert "not a public address" in delivery["last_error"]


def test_a_deleted_endpoint_hears_no_more(
    app: Flask, client: FlaskClient, hooks: dict[str, str], receiver: Receiver, booking: Any
) -> None:
    endpoint = register(client, hooks, receiver, events=["quote.created"])
    quote(client, hooks, booking)
    gone = client.delete(f"/v1/webhook-endpoints/{endpoint['id']}", headers=hooks)
    assert gone.status_code == 200 and gone.json["status"] == "disabled"
    assert work(app) == []
    assert receiver.received == []
    assert client.get(f"/v1/webhook-endpoints/{endpoint['id']}", headers=hooks).status_code == 404
    assert client.get("/v1/webhook-endpoints", headers=hooks).json["data"] == []


def test_a_delivery_whose_message_was_lost_is_queued_again_in_seconds_but_not_over_and_over(
    app: Flask, client: FlaskClient, hooks: dict[str, str], receiver: Receiver, booking: Any
) -> None:
    """The broker went away as the relay handed a delivery to it: the sweep finds it
    `FRESH_GRACE` (5 s) after it was made, not half a minute; queued again, it waits
    another 5 s before the sweep would queue it once more (a backlog is not multiplied)."""
    from datetime import UTC, datetime

    register(client, hooks, receiver, events=["quote.created"])
    quote(client, hooks, booking)
    wait_until_settled(app)
    with app.app_context():
        session = db.session()
        events.relay(session)  # made, and its message lost: nobody sends it
        now = datetime.now(UTC)
        assert webhooks.due(session, now=now) == []  # it may still be on its way
        [lost] = webhooks.due(session, now=now + webhooks.FRESH_GRACE)
        webhooks.resending(session, [lost])
        assert webhooks.due(session, now=datetime.now(UTC) + timedelta(seconds=1)) == []
        later = datetime.now(UTC) + webhooks.FRESH_GRACE + timedelta(seconds=1)
        assert webhooks.due(session, now=later) == [lost]
        assert webhooks.deliver(session, delivering(app.config), lost) == "succeeded"
    assert len(receiver.accepted()) == 1
