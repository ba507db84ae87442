"""Prometheus metrics: requests, payments and refunds, Stripe's webhooks, calls to Stripe.

One process: counts live in memory. Under gunicorn with several workers, point
PROMETHEUS_MULTIPROC_DIR at an empty folder before they start: each worker writes its
counts there and /metrics adds them up (billing/gunicorn_conf.py empties the folder at
start and forgets workers that exit).
"""

from __future__ import annotations

import os
import time
from typing import Any

from flask import Flask, Response, g, request
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)

SECONDS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
LAG_SECONDS = (1, 2, 5, 10, 30, 60, 300, 900, 3600, 6 * 3600, 24 * 3600, 3 * 24 * 3600)

REQUESTS = Counter(
    "billing_http_requests_total", "HTTP requests answered.", ["method", "route", "status"]
)
REQUEST_SECONDS = Histogram(
    "billing_http_request_duration_seconds",
    "Time to answer an HTTP request.",
    ["method", "route"],
    buckets=SECONDS,
)
PAYMENTS = Counter("billing_payments_total", "Payments reaching an outcome.", ["method", "outcome"])
REFUNDS = Counter("billing_refunds_total", "Refunds reaching an outcome.", ["kind", "outcome"])
WEBHOOK_EVENTS = Counter(
    "billing_stripe_webhook_events_total",
    "Stripe webhook events received (result: applied, duplicate, waiting).",
    ["type", "result"],
)
WEBHOOK_LAG = Histogram(
    "billing_stripe_webhook_lag_seconds",
    "From an event's creation at Stripe to its arrival here.",
    ["type"],
    buckets=LAG_SECONDS,
)
STRIPE_SECONDS = Histogram(
    "billing_stripe_request_duration_seconds",
    "Time a call to Stripe took, retries included.",
    ["operation"],
    buckets=SECONDS,
)
STRIPE_ERRORS = Counter(
    "billing_stripe_errors_total",
    "Calls to Stripe that failed, by our error code.",
    ["operation", "code"],
)


STRIPE_MISMATCHES = Counter(
    "billing_stripe_mismatches_total",
    "PaymentIntents Stripe reported that did not match the payment they named (alert on "
    "any increase): kept for finance, nothing applied.",
    ["reason"],
)


DEPENDENCY_UP = Gauge(
    "billing_dependency_up",
    "1 when a dependency the service can do without (Redis) answered its last readiness "
    "check, 0 when it did not: the service runs degraded meanwhile.",
    ["dependency"],
    multiprocess_mode="max",
)


def dependency_up(name: str, up: bool) -> None:
    DEPENDENCY_UP.labels(name).set(1 if up else 0)


def stripe_mismatch(reason: str) -> None:
    STRIPE_MISMATCHES.labels(reason).inc()


def payment_outcome(method: str, outcome: str) -> None:
    PAYMENTS.labels(method, outcome).inc()


def refund_outcome(kind: str, outcome: str) -> None:
    REFUNDS.labels(kind, outcome).inc()


def webhook_event(event_type: str, result: str, created: int) -> None:
    WEBHOOK_EVENTS.labels(event_type, result).inc()
    if created:
        WEBHOOK_LAG.labels(event_type).observe(max(0.0, time.time() - created))


def stripe_call(operation: str, seconds: float, error_code: str | None) -> None:
    STRIPE_SECONDS.labels(operation).observe(seconds)
    if error_code is not None:
        STRIPE_ERRORS.labels(operation, error_code).inc()


def exposition() -> Response:
    """Every metric of this process, or of every worker under gunicorn."""
    registry = REGISTRY
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]  # untyped upstream
    return Response(generate_latest(registry), mimetype=CONTENT_TYPE_LATEST)


# Each (method, route, status)'s counter and (method, route)'s histogram, as `labels()`
# returns them: looked up here, without its checks and lock on every request. Routes are
# the app's patterns and statuses a few dozen, so these stay small.
_COUNTED: dict[tuple[str, str, int], Any] = {}
_TIMED: dict[tuple[str, str], Any] = {}


def _count_request(response: Response) -> Response:
    # The route's pattern, not the path: pay links and ids must not become labels.
    current = request._get_current_object()  # type: ignore[attr-defined]  # a LocalProxy method
    rule = current.url_rule
    route = rule.rule if rule is not None else "unmatched"
    method, status = current.method, response.status_code
    counted = _COUNTED.get((method, route, status))
    if counted is None:
        counted = _COUNTED[method, route, status] = REQUESTS.labels(method, route, str(status))
    counted.inc()
    started = g.get("started")
    if started is not None:
        timed = _TIMED.get((method, route))
        if timed is None:
            timed = _TIMED[method, route] = REQUEST_SECONDS.labels(method, route)
        timed.observe(time.perf_counter() - started)
    return response


def init_app(app: Flask) -> None:
    app.after_request(_count_request)
