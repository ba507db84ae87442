"""Idempotency-Key on POST /v1/quotes: replays return the first quote, never a second."""

from __future__ import annotations

import threading

import pytest
from flask import Flask
from sqlalchemy import func, select

from billing.adapters import db
from billing.adapters.models import Quote


def quote_count(app: Flask) -> int:
    with app.app_context():
        return int(db.session().scalar(select(func.count()).select_from(Quote)) or 0)


@pytest.fixture
def headers(make_key):
    return make_key("quotes:write")


def test_replay_returns_the_same_quote(app, client, headers, booking) -> None:
    keyed = {**headers, "Idempotency-Key": "booking-BK-2026-0412-v1"}
    first = client.post("/v1/quotes", json=booking(), headers=keyed)
    second = client.post("/v1/quotes", json=booking(), headers=keyed)
    assert first.status_code == second.status_code == 201
    assert second.json == first.json
    assert quote_count(app) == 1


def test_key_order_and_spacing_do_not_matter(app, client, headers, booking) -> None:
    import json

    keyed = {**headers, "Idempotency-Key": "k-order", "Content-Type": "application/json"}
    payload = booking()
    first = client.post("/v1/quotes", data=json.dumps(payload), headers=keyed)
    reordered = json.dumps(dict(reversed(list(payload.items()))), indent=2)
    second = client.post("/v1/quotes", data=reordered, headers=keyed)
    assert second.json["id"] == first.json["id"]


def test_same_key_with_another_body_is_422(app, client, headers, booking) -> None:
    keyed = {**headers, "Idempotency-Key": "k-reused"}
    client.post("/v1/quotes", json=booking(), headers=keyed)
    response = client.post("/v1/quotes", json=booking(booking_id="BK-OTHER"), headers=keyed)
    assert response.status_code == 422
    assert response.json["code"] == "idempotency_key_reused"
    assert quote_count(app) == 1


def test_keys_of_different_clients_do_not_collide(app, client, make_key, booking) -> None:
    one = {**make_key("quotes:write"), "Idempotency-Key": "shared"}
    two = {**make_key("quotes:write"), "Idempotency-Key": "shared"}
    first = client.post("/v1/quotes", json=booking(), headers=one)
    second = client.post("/v1/quotes", json=booking(booking_id="BK-2"), headers=two)
    assert second.status_code == 201
    assert second.json["id"] != first.json["id"]


def test_a_refused_request_does_not_use_up_its_key(app, client, headers, booking) -> None:
    keyed = {**headers, "Idempotency-Key": "k-fixed-later"}
    refused = client.post("/v1/quotes", json=booking(patients=[]), headers=keyed)
    assert refused.status_code == 422
    accepted = client.post("/v1/quotes", json=booking(), headers=keyed)
    assert accepted.status_code == 201


@pytest.mark.parametrize("key", ["", "x" * 256, "has space", "ünïcode"])
def test_malformed_key_is_400(client, headers, booking, key) -> None:
    response = client.post(
        "/v1/quotes",
        json=booking(),
        headers={**headers, "Idempotency-Key": key.encode().decode("latin-1")},
    )
    assert response.status_code == 400
    assert response.json["code"] == "invalid_idempotency_key"


@pytest.mark.postgresql
@pytest.mark.parametrize("app", ["postgresql"], indirect=True)
def test_twenty_concurrent_replays_make_one_quote(app, headers, booking) -> None:
    keyed = {**headers, "Idempotency-Key": "concurrent-1"}
    payload = booking()
    barrier = threading.Barrier(20)
    responses: list = [None] * 20

    def send(index: int) -> None:
        client = app.test_client()
        barrier.wait()
        responses[index] = client.post("/v1/quotes", json=payload, headers=keyed)

    threads = [threading.Thread(target=send, args=(i,)) for i in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert [r.status_code for r in responses] == [201] * 20
    assert len({r.get_data() for r in responses}) == 1
    assert quote_count(app) == 1
