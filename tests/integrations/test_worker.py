"""The task queue for real: Celery workers as separate processes on the Redis at
127.0.0.1:6379, PostgreSQL, and a booking system's receiver on loopback. Events reach it
through the workers, failures are retried by the scheduler, a worker killed in the middle
of a delivery loses nothing, and two workers never send one delivery at the same time."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from billing import create_app
from billing.adapters import db
from billing.adapters.outbox import WebhookDelivery
from billing.services.access import keys
from billing.services.pricing import catalog
from tests.conftest import _empty_tables, in_days
from tests.integrations.receiver import Receiver

pytestmark = pytest.mark.postgresql
REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
CELERY = Path(sys.executable).with_name("celery")


@pytest.fixture(scope="module")
def broker() -> str:
    try:
        redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2).ping()
    except redis.RedisError as error:
        if os.environ.get("CI"):
            pytest.fail(f"Redis is required under CI: {error}")
        pytest.skip(f"Redis at {REDIS_URL} not reachable: {error}")
    return REDIS_URL


@pytest.fixture
def settings(postgresql_url: str, broker: str) -> dict[str, str]:
    """What the web app and its workers share: the database, the broker, a queue of this
    test's own (other tests and runs use the same Redis)."""
    return {
        "DATABASE_URL": postgresql_url,
        "CELERY_BROKER_URL": broker,
        "TASK_QUEUE": f"billing-test-{uuid.uuid4().hex[:8]}",
        "WEBHOOK_ALLOWED_NETWORKS": "127.0.0.0/8",
        "WEBHOOK_RETRY_BASE_SECONDS": "0.5",
        "WEBHOOK_TIMEOUT_SECONDS": "1",
        "SWEEP_SECONDS": "0.5",
        "SECRET_KEY": "worker-test-secret",
        "LOG_LEVEL": "WARNING",
    }


@pytest.fixture
def web(settings: dict[str, str]) -> Iterator[Flask]:
    app = create_app({"TESTING": True, **settings, "SWEEP_SECONDS": 0.5})
    _empty_tables(app)
    with app.app_context():
        catalog.seed_default(db.session())
    yield app
    _empty_tables(app)
    app.extensions["billing.db"].engine.dispose()
    store = redis.Redis.from_url(settings["CELERY_BROKER_URL"])
    for key in store.scan_iter(f"*{settings['TASK_QUEUE']}*"):
        store.delete(key)


class Workers:
    def __init__(self, settings: dict[str, str], folder: Path) -> None:
        self.settings, self.folder = settings, folder
        self.running: list[subprocess.Popen[bytes]] = []

    def start(self, name: str, beat: bool = False, concurrency: int = 2) -> subprocess.Popen[bytes]:
        log = self.folder / f"{name}.log"
        command = [str(CELERY), "-A", "billing.worker", "worker", "--pool=prefork"]
        command += [f"--concurrency={concurrency}", "-Q", self.settings["TASK_QUEUE"]]
        # A node name of this run alone: runs sharing the broker never lock each other out.
        command += [f"--hostname={name}.{self.settings['TASK_QUEUE']}@%h"]
        command += ["--loglevel=INFO", f"--logfile={log}"]
        if beat:
            command += ["--beat", f"--schedule={self.folder / (name + '-schedule')}"]
        process = subprocess.Popen(
            command,
            env={**os.environ, **self.settings},
            cwd=Path(__file__).resolve().parents[2],
            start_new_session=True,  # its pool's children go with it when it is killed
        )
        self.running.append(process)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if log.exists() and " ready." in log.read_text():
                return process
            if process.poll() is not None:
                raise RuntimeError(f"worker {name} exited: {log.read_text()}")
            time.sleep(0.2)
        raise RuntimeError(f"worker {name} did not start: {log.read_text()}")

    def kill(self, process: subprocess.Popen[bytes]) -> None:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(10)

    def stop_all(self) -> None:
        for process in self.running:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
                try:
                    process.wait(20)
                except subprocess.TimeoutExpired:
                    os.killpg(process.pid, signal.SIGKILL)


@pytest.fixture
def workers(settings: dict[str, str], tmp_path: Path) -> Iterator[Workers]:
    started = Workers(settings, tmp_path)
    yield started
    started.stop_all()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    started = Receiver().start()
    yield started
    started.stop()


def hooks_key(app: Flask) -> dict[str, str]:
    scopes = ["webhooks:write", "events:read", "quotes:write", "invoices:write"]
    with app.app_context():
        _, plain = keys.create_key(db.session(), f"k-{uuid.uuid4().hex[:6]}", scopes)
    return {"Authorization": f"Bearer {plain}"}


def register(client: FlaskClient, key: dict[str, str], receiver: Receiver) -> None:
    answer = client.post(
        "/v1/webhook-endpoints", json={"url": receiver.url, "events": ["*"]}, headers=key
    )
    assert answer.status_code == 201, answer.json
    receiver.secret = answer.json["secret"]


def quote(client: FlaskClient, key: dict[str, str], patient: str = "P-1") -> dict[str, Any]:
    answer = client.post(
        "/v1/quotes",
        headers=key,
        json={
            "booking_id": f"BK-{patient}",
            "session_type": "iv_individual",
            "scheduled_at": in_days(3),
            "currency": "usd",
            "patients": [{"patient_id": patient, "name": "Pat Lee"}],
        },
    )
    assert answer.status_code == 201, answer.json
    return dict(answer.json)


def wait_for(check: Callable[[], Any], seconds: float = 60) -> Any:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        time.sleep(0.1)
    raise AssertionError("not in time")


def test_events_reach_the_booking_system_through_the_workers(
    web: Flask, workers: Workers, receiver: Receiver
) -> None:
    # With its scheduler, as it runs: an event whose transaction an older one elsewhere on
    # the server still hides from the relay is relayed by the next sweep, not never.
    workers.start("w1", beat=True)
    client, key = web.test_client(), hooks_key(web)
    register(client, key, receiver)
    made = quote(client, key)
    client.post("/v1/invoices", json={"quote_id": made["id"]}, headers=key)
    got = wait_for(lambda: len(receiver.accepted()) == 2 and receiver.accepted())
    feed = client.get("/v1/events", headers=key).json["data"]
    assert sorted(e["id"] for e in got) == sorted(e["id"] for e in feed)
    assert all(r.signed for r in receiver.received)


def test_the_scheduler_retries_a_failed_delivery_until_it_lands(
    web: Flask, workers: Workers, receiver: Receiver
) -> None:
    workers.start("w1", beat=True)
    client, key = web.test_client(), hooks_key(web)
    register(client, key, receiver)
    receiver.answers = [500, 500]
    quote(client, key)
    wait_for(receiver.accepted)
    assert [r.status for r in receiver.received] == [500, 500, 200]


def test_a_worker_killed_mid_delivery_loses_nothing(
    web: Flask, workers: Workers, receiver: Receiver
) -> None:
    first = workers.start("doomed")
    client, key = web.test_client(), hooks_key(web)
    register(client, key, receiver)
    receiver.stalls = [30.0]  # the first POST hangs: the worker is busy sending it
    made = quote(client, key)
    wait_for(lambda: receiver.in_flight.get(_event_id(client, key)))
    workers.kill(first)  # SIGKILL, in the middle of the delivery
    with web.app_context():
        [delivery] = db.session().scalars(select(WebhookDelivery)).all()
        assert delivery.status == "delivering"
    workers.start("survivor", beat=True)  # its sweep finds the lease run out
    got = wait_for(receiver.accepted, seconds=60)
    assert got[0]["data"]["object"]["id"] == made["id"]

    def status() -> str:  # the receiver answers before the worker commits what it heard
        with web.app_context():
            [delivery] = db.session().scalars(select(WebhookDelivery)).all()
            return delivery.status

    wait_for(lambda: status() == "succeeded", seconds=10)


def _event_id(client: FlaskClient, key: dict[str, str]) -> str:
    data = client.get("/v1/events", headers=key).json["data"]
    return str(data[0]["id"]) if data else ""


def test_two_workers_never_send_one_delivery_at_the_same_time(
    web: Flask, workers: Workers, receiver: Receiver
) -> None:
    workers.start("a", concurrency=3)
    workers.start("b", concurrency=3)
    client, key = web.test_client(), hooks_key(web)
    register(client, key, receiver)
    quote(client, key)
    [event] = wait_for(receiver.accepted)
    receiver.stall_seconds = 1.0  # each POST takes a second: time for the others to race
    again = client.post(f"/v1/events/{event['id']}/redeliver", json={}, headers=key).json
    [delivery] = again["data"]
    celery = web.extensions["celery"]
    for _ in range(12):  # the same delivery, asked of six worker processes at once
        celery.send_task("billing.deliver_webhook", args=[delivery["id"]])
    wait_for(lambda: len(receiver.accepted()) == 2)
    time.sleep(2)  # any second copy would have arrived by now
    assert receiver.most_at_once[event["id"]] == 1
    assert len(receiver.received) == 2  # the first delivery and the one redelivery
