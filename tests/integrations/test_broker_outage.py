"""A broker outage costs only delay: RabbitMQ (the production broker) goes away under
load, behind a proxy of this test's own, and every event is delivered within 10 s of its
return, with no one restarting anything. The long outages (60 s, three times) are in
bench/broker_outage.py."""

from __future__ import annotations

import os
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from flask import Flask
from kombu import Connection

from billing import create_app
from billing.adapters import db
from billing.services.pricing import catalog
from tests.conftest import _empty_tables
from tests.integrations.receiver import Receiver
from tests.integrations.tcp_proxy import TcpProxy
from tests.integrations.test_worker import Workers, hooks_key, quote, register, wait_for

pytestmark = pytest.mark.postgresql
RABBITMQ = os.environ.get("TEST_RABBITMQ_URL", "amqp://guest:guest@127.0.0.1:5672//")


@pytest.fixture(scope="module")
def rabbitmq() -> str:
    try:
        with Connection(RABBITMQ, connect_timeout=3) as connection:
            connection.ensure_connection(max_retries=1)
    except Exception as error:
        if os.environ.get("CI"):
            pytest.fail(f"RabbitMQ is required under CI: {error}")
        pytest.skip(f"RabbitMQ at {RABBITMQ} not reachable: {error}")
    return RABBITMQ


@pytest.fixture
def proxy(rabbitmq: str) -> Iterator[TcpProxy]:
    host, port = Connection(rabbitmq).hostname, Connection(rabbitmq).port or 5672
    started = TcpProxy((host, port)).start()
    yield started
    started.cut()


@pytest.fixture
def outage_settings(postgresql_url: str, proxy: TcpProxy) -> Iterator[dict[str, str]]:
    queue = f"billing-outage-{uuid.uuid4().hex[:8]}"
    yield {
        "DATABASE_URL": postgresql_url,
        "CELERY_BROKER_URL": f"amqp://guest:guest@127.0.0.1:{proxy.port}//",
        "TASK_QUEUE": queue,
        "WEBHOOK_ALLOWED_NETWORKS": "127.0.0.0/8",
        "WEBHOOK_RETRY_BASE_SECONDS": "0.5",
        "WEBHOOK_TIMEOUT_SECONDS": "1",
        "SWEEP_SECONDS": "0.5",
        "SECRET_KEY": "outage-test-secret",
        "LOG_LEVEL": "WARNING",
    }
    with Connection(RABBITMQ) as connection:  # the queue of this test goes with it
        channel = connection.channel()
        try:
            channel.queue_delete(queue)
        except Exception:
            pass


@pytest.fixture
def outage_web(outage_settings: dict[str, str]) -> Iterator[Flask]:
    app = create_app({"TESTING": True, **outage_settings, "SWEEP_SECONDS": 0.5})
    _empty_tables(app)
    with app.app_context():
        catalog.seed_default(db.session())
    yield app
    _empty_tables(app)
    app.extensions["billing.db"].engine.dispose()


def test_every_event_arrives_within_ten_seconds_of_the_brokers_return(
    outage_web: Flask, outage_settings: dict[str, str], proxy: TcpProxy, tmp_path: Path
) -> None:
    workers = Workers(outage_settings, tmp_path)
    receiver = Receiver().start()
    try:
        workers.start("w1", beat=True)
        client, key = outage_web.test_client(), hooks_key(outage_web)
        register(client, key, receiver)
        stop = threading.Event()
        made: list[str] = []

        def load() -> None:  # a booking system quoting all along, outage or not
            n = 0
            while not stop.is_set():
                n += 1
                made.append(quote(client, key, f"P-{n}")["id"])
                time.sleep(0.05)

        loader = threading.Thread(target=load, daemon=True)
        loader.start()
        time.sleep(2)
        proxy.cut()
        time.sleep(5)
        proxy.restore()
        back = time.monotonic()
        time.sleep(1)
        stop.set()
        loader.join(10)

        def all_delivered() -> bool:
            got = {event["data"]["object"]["id"] for event in receiver.accepted()}
            return set(made) <= got

        wait_for(all_delivered, seconds=30)
        assert time.monotonic() - back <= 10, "events still missing 10 s after the return"
        assert len(made) > 60  # quoting never stopped: the API did not need the broker
    finally:
        workers.stop_all()
        receiver.stop()
