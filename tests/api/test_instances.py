"""Several instances, one database: two gunicorn instances on one PostgreSQL database and
the real Redis, each request of a test spread over both, as a load balancer would."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import redis

from billing.adapters.standin import StripeStandIn, free_port
from tests.conftest import in_days
from tests.fixtures_stripe import SECRET_KEY, intents_at_stripe

pytestmark = pytest.mark.postgresql

REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
API_LIMIT = 30  # per key and minute, across both instances
METRICS_TOKEN = "instances-metrics"
BIN = Path(sys.executable).parent


def _redis_unavailable(reason: str) -> None:
    if os.environ.get("CI"):
        pytest.fail(f"Redis is required under CI: {reason}")
    pytest.skip(f"Redis tests skipped: {reason}")


class Instances:
    def __init__(self, urls: list[str], env: dict[str, str]) -> None:
        self.urls = urls
        self.env = env
        self.turn = 0

    def call(
        self,
        method: str,
        path: str,
        key: str,
        body: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
        instance: int | None = None,
    ) -> tuple[int, dict[str, Any], dict[str, str]]:
        if instance is None:
            self.turn += 1
            instance = self.turn % len(self.urls)
        request = urllib.request.Request(
            self.urls[instance] + path,
            method=method,
            data=json.dumps(body).encode() if body is not None else None,
            headers={
                "Authorization": f"Bearer {key}",
                "Content-Type": "application/json",
                **(headers or {}),
            },
        )
        try:
            with urllib.request.urlopen(request, timeout=30) as answer:
                return answer.status, json.loads(answer.read()), dict(answer.headers)
        except urllib.error.HTTPError as error:
            return error.code, json.loads(error.read() or b"{}"), dict(error.headers)

    def flask(self, *args: str) -> str:
        run = subprocess.run(
            [str(BIN / "flask"), "--app", "billing", *args],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert run.returncode == 0, run.stdout + run.stderr
        return run.stdout

    def new_key(self, *scopes: str) -> str:
        name = f"k-{uuid.uuid4().hex[:8]}"
        printed = self.flask("keys", "create", name, "--scopes", ",".join(scopes))
        return next(word for word in printed.split() if word.startswith("ck_"))


def _wait_until_ready(url: str, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"gunicorn exited with {process.returncode}")
        try:
            with urllib.request.urlopen(url + "/readyz", timeout=2):
                return
        except OSError:  # not listening yet, or still starting its workers
            time.sleep(0.2)
    raise RuntimeError(f"{url} did not become ready")


@pytest.fixture(scope="module")
def instances(
    postgresql_url: str, standin: StripeStandIn, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Instances]:
    try:
        store = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2)
        store.ping()
    except redis.RedisError as error:
        _redis_unavailable(f"cannot reach {REDIS_URL} ({error})")
    prefix = f"billing-test-{uuid.uuid4().hex[:8]}"
    env = {
        **os.environ,
        "DATABASE_URL": postgresql_url,
        "REDIS_URL": REDIS_URL,
        "RATE_LIMIT_KEY_PREFIX": prefix,
        "API_RATE_LIMIT": f"{API_LIMIT} per minute",
        "SECRET_KEY": "instances-test-secret",
        "STRIPE_SECRET_KEY": SECRET_KEY,
        "STRIPE_API_BASE": standin.url,
        "STRIPE_WEBHOOK_SECRET": "whsec_instances",
        "STRIPE_MAX_NETWORK_RETRIES": "0",
        "LOG_LEVEL": "WARNING",
        "METRICS_TOKEN": METRICS_TOKEN,
    }
    processes = []
    urls = []
    log = (tmp_path_factory.mktemp("instances") / "gunicorn.log").open("wb")
    for instance in range(2):
        port = free_port()
        metrics_dir = tmp_path_factory.mktemp(f"metrics-{instance}")
        process = subprocess.Popen(
            [
                str(BIN / "gunicorn"),
                "--config",
                "python:billing.gunicorn_conf",
                "--workers",
                "2",
                "--bind",
                f"127.0.0.1:{port}",
                "billing:create_app()",
            ],
            env={**env, "PROMETHEUS_MULTIPROC_DIR": str(metrics_dir)},
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        processes.append(process)
        urls.append(f"http://127.0.0.1:{port}")
    try:
        for url, process in zip(urls, processes, strict=True):
            _wait_until_ready(url, process)
        cluster = Instances(urls, env)
        cluster.flask("seed")
        yield cluster
    finally:
        for process in processes:
            process.terminate()
            process.wait(timeout=30)
        log.close()
        for key in store.scan_iter(f"*{prefix}*"):
            store.delete(key)


def _iv_booking(patient: str, **overrides: Any) -> dict[str, Any]:
    return {
        "booking_id": f"BK-{patient}",
        "session_type": "iv_individual",
        "scheduled_at": in_days(4),
        "currency": "usd",
        "patients": [{"patient_id": patient, "name": "Test Patient"}],
        **overrides,
    }


def test_invoice_numbers_are_gap_free_across_instances(instances: Instances) -> None:
    key = instances.new_key("quotes:write", "invoices:write")
    run = uuid.uuid4().hex[:6]

    def quote_and_invoice(i: int) -> str:
        status, quote, _ = instances.call(
            "POST", "/v1/quotes", key, _iv_booking(f"P-{run}-{i}"), instance=i % 2
        )
        assert status == 201, quote
        status, made, _ = instances.call(
            "POST", "/v1/invoices", key, {"quote_id": quote["id"]}, instance=(i + 1) % 2
        )
        assert status == 201, made
        return str(made["data"][0]["number"])

    with ThreadPoolExecutor(8) as pool:
        numbers = sorted(pool.map(quote_and_invoice, range(12)))
    serials = [int(number.rsplit("-", 1)[1]) for number in numbers]
    assert len(set(numbers)) == 12
    assert serials == list(range(serials[0], serials[0] + 12)), numbers


def test_duplicate_payment_requests_over_both_instances_make_one_payment_intent(
    instances: Instances, standin: StripeStandIn
) -> None:
    key = instances.new_key("quotes:write", "invoices:read", "invoices:write", "payments:write")
    patient = f"P-{uuid.uuid4().hex[:6]}"
    _, quote, _ = instances.call("POST", "/v1/quotes", key, _iv_booking(patient))
    _, made, _ = instances.call("POST", "/v1/invoices", key, {"quote_id": quote["id"]})
    invoice_id = made["data"][0]["id"]
    status, card, _ = instances.call(
        "POST",
        f"/v1/patients/{patient}/payment-methods",
        key,
        {"payment_method": "pm_card_visa"},
    )
    assert status == 201, card

    def pay(i: int) -> tuple[int, dict[str, Any]]:
        status, body, _ = instances.call(
            "POST",
            f"/v1/invoices/{invoice_id}/payments",
            key,
            {"method": "card_on_file"},
            headers={"Idempotency-Key": f"pay-{invoice_id}"},
            instance=i % 2,
        )
        return status, body

    with ThreadPoolExecutor(10) as pool:
        answers = list(pool.map(pay, range(10)))
    succeeded = [body for status, body in answers if status == 201]
    assert succeeded, answers
    assert {body["id"] for body in succeeded} == {succeeded[0]["id"]}
    # The others were told the same payment is in flight (409), never a second charge.
    assert all(status in (201, 409) for status, _ in answers), answers
    assert intents_at_stripe(standin, invoice_id) == 1
    _, invoice, _ = instances.call("GET", f"/v1/invoices/{invoice_id}", key)
    assert invoice["status"] == "paid" and invoice["amount_paid"] == invoice["total"]


def test_a_rate_limit_counts_requests_on_both_instances(instances: Instances) -> None:
    key = instances.new_key("quotes:write")
    answers = [instances.call("GET", "/v1/catalog", key)[0:3:2] for _ in range(API_LIMIT + 6)]
    statuses = [status for status, _ in answers]
    assert statuses.count(200) == API_LIMIT, statuses
    assert statuses[API_LIMIT:] == [429] * 6
    refused = answers[-1][1]
    assert int(refused["Retry-After"]) >= 1
    status, problem, headers = instances.call("GET", "/v1/catalog", key)
    assert (status, problem["code"]) == (429, "rate_limited")
    assert headers["Content-Type"] == "application/problem+json"


def test_a_revoked_key_and_a_new_price_reach_every_instance_within_a_second(
    instances: Instances,
) -> None:
    name = f"revoked-{uuid.uuid4().hex[:6]}"
    printed = instances.flask("keys", "create", name, "--scopes", "quotes:write")
    key = next(word for word in printed.split() if word.startswith("ck_"))
    for instance in (0, 1):  # both have it cached now
        assert instances.call("GET", "/v1/catalog", key, instance=instance)[0] == 200
    instances.flask("keys", "revoke", name)
    revoked_at = time.monotonic()
    time.sleep(1.0)
    for instance in (0, 1):
        status, problem, _ = instances.call("GET", "/v1/catalog", key, instance=instance)
        assert (status, problem.get("code")) == (401, "invalid_api_key"), instance
    assert time.monotonic() - revoked_at < 3

    finance = instances.new_key("catalog:write", "quotes:write")
    for instance in (0, 1):  # both have the price list cached
        assert (
            instances.call("POST", "/v1/quotes", finance, _iv_booking("P-warm"), instance=instance)[
                0
            ]
            == 201
        )
    status, price, _ = instances.call(
        "POST",
        "/v1/catalog/prices",
        finance,
        {"currency": "usd", "iv_individual_amount": 61_000},
        instance=0,
    )
    assert status == 201, price
    time.sleep(1.0)
    status, quote, _ = instances.call(
        "POST", "/v1/quotes", finance, _iv_booking("P-after"), instance=1
    )
    assert (status, quote["total"]) == (201, 61_000)


def test_metrics_add_up_every_worker_of_an_instance(instances: Instances) -> None:
    from tests.api.test_operations import _sample

    def scrape() -> str:
        request = urllib.request.Request(
            instances.urls[0] + "/metrics", headers={"Authorization": f"Bearer {METRICS_TOKEN}"}
        )
        with urllib.request.urlopen(request, timeout=10) as answer:
            return str(answer.read().decode())

    labels = {"method": "GET", "route": "/v1/catalog", "status": "200"}
    key = instances.new_key("quotes:write")
    before = _sample(scrape(), "billing_http_requests_total", **labels)
    with ThreadPoolExecutor(4) as pool:  # the instance's two workers share the load
        statuses = list(
            pool.map(lambda _: instances.call("GET", "/v1/catalog", key, instance=0)[0], range(20))
        )
    assert statuses == [200] * 20
    after = _sample(scrape(), "billing_http_requests_total", **labels)
    assert after - before == 20
