"""The event feed: an event for every change other systems care about, written with the
change (never without it), in order, with the resource as its own endpoint shows it, less
names and health details (tests/integrations/test_webhook_privilege.py)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import text

from billing.adapters import db
from billing.services.integrations import events
from tests.integrations.feed import wait_until_settled


def feed(client: FlaskClient, headers: dict[str, str], **query: Any) -> list[dict[str, Any]]:
    wait_until_settled(client.application)
    answer = client.get("/v1/events", query_string=query, headers=headers)
    assert answer.status_code == 200, answer.json
    return list(answer.json["data"])


def less(shown: dict[str, Any], *names: str) -> dict[str, Any]:
    return {key: value for key, value in shown.items() if key not in names}


def test_quotes_invoices_and_voids_are_events_with_the_resource_as_the_api_shows_it(
    client: FlaskClient,
    make_key: Callable[..., dict[str, str]],
    booking: Callable[..., dict[str, Any]],
) -> None:
    desk = make_key("quotes:write", "invoices:read", "invoices:write")
    reader = make_key("events:read")
    quote = client.post("/v1/quotes", json=booking(), headers=desk).json
    made = client.post("/v1/invoices", json={"quote_id": quote["id"]}, headers=desk).json
    first = made["data"][0]["id"]
    voided = client.post(f"/v1/invoices/{first}/void", headers=desk).json

    got = feed(client, reader)
    assert [e["type"] for e in got] == [
        "quote.created",
        "invoice.created",
        "invoice.created",
        "invoice.voided",
    ]
    shown = client.get(f"/v1/quotes/{quote['id']}", headers=desk).json
    shown["lines"] = [less(line, "patient_name", "iv_exemption") for line in shown["lines"]]
    assert got[0]["data"]["object"] == shown
    assert got[1]["data"]["object"] == less(made["data"][0], "patient_name")
    assert got[3]["data"]["object"] == less(voided, "patient_name")
    assert all(e["id"].startswith("evt_") for e in got)
    one = client.get(f"/v1/events/{got[3]['id']}", headers=reader).json
    assert one == got[3]


def test_the_feed_pages_in_order_and_filters_by_type(
    client: FlaskClient,
    make_key: Callable[..., dict[str, str]],
    booking: Callable[..., dict[str, Any]],
) -> None:
    desk = make_key("quotes:write")
    reader = make_key("events:read")
    ids = []
    for n in range(7):
        patients = [{"patient_id": f"P-{n}", "name": "Pat Lee"}]
        answer = client.post(
            "/v1/quotes",
            json=booking(session_type="iv_individual", patients=patients),
            headers=desk,
        )
        ids.append(answer.json["id"])
    seen: list[str] = []
    cursor: dict[str, Any] = {}
    wait_until_settled(client.application)
    while True:
        page = client.get(
            "/v1/events",
            query_string={"limit": 3, "type": "quote.created", **cursor},
            headers=reader,
        ).json
        seen += [e["data"]["object"]["id"] for e in page["data"]]
        if not page["has_more"]:
            break
        cursor = {"starting_after": page["data"][-1]["id"]}
    assert seen == ids
    assert feed(client, reader, type="invoice.paid") == []
    bad = client.get("/v1/events?type=invoice.pied&starting_after=nope", headers=reader)
    assert bad.status_code == 422 and set(bad.json["errors"]) == {"type", "starting_after"}
    unknown = client.get(f"/v1/events?starting_after=evt_{'0' * 24}", headers=reader)
    assert (unknown.status_code, unknown.json["code"]) == (404, "event_not_found")


def test_a_change_rolled_back_announces_nothing(
    client: FlaskClient,
    make_key: Callable[..., dict[str, str]],
    booking: Callable[..., dict[str, Any]],
) -> None:
    desk = make_key("quotes:write", "invoices:write")
    reader = make_key("events:read")
    quote = client.post("/v1/quotes", json=booking(), headers=desk).json
    before = feed(client, reader)
    refused = client.post("/v1/invoices", json={"quote_id": "qt_nope"}, headers=desk)
    assert refused.status_code == 404
    with client.application.app_context():
        session = db.session()
        events.publish(session, "quote.created", "quote", {"id": quote["id"]})
        session.rollback()  # the change it described did not happen
    assert feed(client, reader) == before


@pytest.mark.parametrize("app", ["postgresql"], indirect=True)
def test_the_feed_waits_for_a_slower_transaction_rather_than_skip_its_event(
    app: Flask, client: FlaskClient, make_key: Callable[..., dict[str, str]]
) -> None:
    """A transaction that wrote its event first but commits last: a reader paging through
    the feed meanwhile must still see that event after the ones it already read."""
    reader = make_key("events:read")
    slow_started, fast_done = threading.Event(), threading.Event()

    def slow() -> None:
        with app.app_context():
            session = db.session()
            events.publish(session, "quote.created", "quote", {"id": "qt_slow"})
            session.flush()
            slow_started.set()
            fast_done.wait(10)
            session.commit()

    writer = threading.Thread(target=slow)
    writer.start()
    slow_started.wait(10)
    with app.app_context():
        session = db.session()
        events.publish(session, "quote.created", "quote", {"id": "qt_fast"})
        session.commit()
    # The slow transaction is still open, so the feed shows neither yet (showing the fast
    # one would let the reader's cursor pass the slow one's place).
    assert client.get("/v1/events", headers=reader).json["data"] == []
    fast_done.set()
    writer.join(10)
    ids = [e["data"]["object"]["id"] for e in feed(client, reader)]
    assert ids == ["qt_slow", "qt_fast"]  # in the order the transactions wrote them
    with app.app_context():
        xids = db.session().execute(text("SELECT xid FROM events ORDER BY id")).scalars().all()
    assert all(xid is not None for xid in xids)  # the order comes from the transactions
