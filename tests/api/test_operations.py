"""What operators rely on: readiness that tells the truth, and metrics behind a token."""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import redis
from flask import Flask
from flask.testing import FlaskClient

from billing import create_app
from billing.adapters import breakers, db
from billing.adapters.migrate import head_revision, upgrade
from billing.services.access import keys
from billing.services.pricing import catalog
from billing.web import limits
from tests.conftest import _empty_tables

REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
TOKEN = "metrics-secret-token"


def _sample(text: str, name: str, **labels: str) -> float:
    """The value of one sample of the exposition, 0 when it has not been counted yet."""
    wanted = ",".join(f'{key}="{value}"' for key, value in sorted(labels.items()))
    for line in text.splitlines():
        match = re.match(rf"^{name}\{{(.*)\}} (\S+)$", line)
        if match and ",".join(sorted(match.group(1).split(","))) == wanted:
            return float(match.group(2))
    return 0.0


def test_ready_when_migrated_to_the_code_and_not_before(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'behind.sqlite3'}"
    upgrade(url, "0007")
    app = create_app({"TESTING": True, "DATABASE_URL": url})
    behind = app.test_client().get("/readyz")
    assert behind.status_code == 503
    assert behind.mimetype == "application/problem+json"
    assert behind.json["code"] == "not_ready"
    assert behind.json["checks"]["migrations"] == f"at 0007, code needs {head_revision()}"
    upgrade(url)
    ready = app.test_client().get("/readyz")
    assert ready.status_code == 200
    assert ready.json["checks"] == {"database": "ok", "migrations": "ok"}
    app.extensions["billing.db"].engine.dispose()


def test_redis_down_is_degraded_but_ready_and_answers_fast(sqlite_url: str) -> None:
    """Behind a load balancer that checks /readyz, a Redis outage must not take the
    service out: it is reported, with a 200, and in /metrics; the next checks skip Redis
    at once (its breaker is open) instead of waiting on its timeout."""
    gone = create_app(
        {
            "TESTING": True,
            "DATABASE_URL": sqlite_url,
            "REDIS_URL": "redis://127.0.0.1:1/0",
            "METRICS_TOKEN": "t",
        }
    )
    client = gone.test_client()
    answer = client.get("/readyz")
    assert answer.status_code == 200, answer.json
    assert answer.json["status"] == "degraded"
    assert answer.json["details"]["redis"].startswith("unreachable")
    assert answer.json["checks"] == {"database": "ok", "migrations": "ok"}
    asked = gone.extensions["billing.redis_breaker"]
    asked.reset_timeout = 60  # however slow this machine, no probe during the loop
    for _ in range(20):
        assert client.get("/readyz").status_code == 200
    assert breakers.state(asked) == "open"
    assert asked.fail_counter == 1  # Redis asked once, skipped by the other checks
    exposed = client.get("/metrics", headers={"Authorization": "Bearer t"}).get_data(as_text=True)
    assert 'billing_dependency_up{dependency="redis"} 0.0' in exposed
    assert client.get("/healthz").json == {"status": "ok"}


def test_ready_and_not_degraded_while_redis_answers(sqlite_url: str) -> None:
    try:
        redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2).ping()
    except redis.RedisError as error:
        if os.environ.get("CI"):
            pytest.fail(f"Redis is required under CI: {error}")
        pytest.skip(f"Redis at {REDIS_URL} not reachable: {error}")
    there = create_app({"TESTING": True, "DATABASE_URL": sqlite_url, "REDIS_URL": REDIS_URL})
    answer = there.test_client().get("/readyz")
    assert answer.status_code == 200, answer.json
    assert (answer.json["status"], answer.json["details"]["redis"]) == ("ready", "ok")


def test_metrics_are_not_served_without_a_token_configured(client: FlaskClient) -> None:
    answer = client.get("/metrics", headers={"Authorization": "Bearer anything"})
    assert answer.status_code == 404
    assert "billing_http_requests_total" not in answer.get_data(as_text=True)


def test_metrics_need_the_token_and_count_requests_by_route_and_status(
    app: Flask, make_key: Callable[..., dict[str, str]]
) -> None:
    app.config["METRICS_TOKEN"] = TOKEN
    client = app.test_client()
    for wrong in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": TOKEN}):
        refused = client.get("/metrics", headers=wrong)
        assert refused.status_code == 401
        assert refused.json["code"] == "invalid_metrics_token"
    scrape = {"Authorization": f"Bearer {TOKEN}"}
    before = client.get("/metrics", headers=scrape).get_data(as_text=True)
    key = make_key("quotes:write")
    for _ in range(3):
        assert client.get("/v1/catalog", headers=key).status_code == 200
    client.get("/v1/catalog")  # no key: 401
    client.get("/v1/invoices/in_unknown", headers=key)  # wrong scope: 403
    after = client.get("/metrics", headers=scrape)
    assert after.mimetype == "text/plain"
    text = after.get_data(as_text=True)

    def delta(**labels: str) -> float:
        name = "billing_http_requests_total"
        return _sample(text, name, **labels) - _sample(before, name, **labels)

    assert delta(method="GET", route="/v1/catalog", status="200") == 3
    assert delta(method="GET", route="/v1/catalog", status="401") == 1
    assert delta(method="GET", route="/v1/invoices/<invoice_id>", status="403") == 1
    assert "in_unknown" not in text  # routes, never ids, are labels
    duration = "billing_http_request_duration_seconds_count"
    assert (
        _sample(text, duration, method="GET", route="/v1/catalog")
        - _sample(before, duration, method="GET", route="/v1/catalog")
        == 4
    )


def test_too_many_calls_with_one_key_are_a_429_with_retry_after(
    app: Flask, make_key: Callable[..., dict[str, str]]
) -> None:
    app.config["API_RATE_LIMIT"] = "3 per minute"
    client = app.test_client()
    busy, other = make_key("quotes:write"), make_key("quotes:write")
    statuses = [client.get("/v1/catalog", headers=busy).status_code for _ in range(3)]
    refused = client.get("/v1/catalog", headers=busy)
    assert statuses == [200, 200, 200]
    assert refused.status_code == 429
    assert refused.mimetype == "application/problem+json"
    assert refused.json["code"] == "rate_limited"
    assert 1 <= int(refused.headers["Retry-After"]) <= 60
    assert client.get("/v1/catalog", headers=other).status_code == 200  # per key


def test_a_silent_redis_is_asked_once_then_skipped_while_its_breaker_is_open(
    sqlite_url: str, booking: Any, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Redis accepts connections and never answers (a paused server, a host gone from
    the network): the first request gives up on it after the limiter's socket timeout
    (without one it would wait forever) and counts in memory; the next ones skip Redis
    while its breaker is open. How long each takes is measured by bench/redis_outage.py."""
    import socket

    monkeypatch.setattr(limits, "STORAGE_RETRY_SECONDS", 60.0)  # however slow this machine
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(16)  # accepts (the kernel does), never reads nor answers
    try:
        port = silent.getsockname()[1]
        app = create_app(
            {
                "TESTING": True,
                "DATABASE_URL": sqlite_url,
                "REDIS_URL": f"redis://127.0.0.1:{port}/0",
            }
        )
        _empty_tables(app)
        with app.app_context():
            catalog.seed_default(db.session())
            _, plain = keys.create_key(db.session(), "silent-redis", ["quotes:write"])
        client, headers = app.test_client(), {"Authorization": f"Bearer {plain}"}
        said = logging.getLogger("billing.limits")  # "billing" may not propagate to the root
        monkeypatch.setattr(said, "handlers", [*said.handlers, caplog.handler])
        for n in range(5):
            answer = client.post("/v1/quotes", json=booking(booking_id=f"BK-S{n}"), headers=headers)
            assert answer.status_code == 201, answer.json
        gave_up = {id(r) for r in caplog.records if "counting in memory" in r.getMessage()}
        assert len(gave_up) == 1  # asked once; then skipped, not waited on four times more
        _empty_tables(app)
    finally:
        silent.close()
