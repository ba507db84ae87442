"""Probes for the load balancer, and the metrics for Prometheus."""

from __future__ import annotations

import hmac
from typing import Any

import redis
from flask import Blueprint, Flask, Response, current_app, request
from sqlalchemy import text

from billing.adapters import breakers, db, metrics
from billing.adapters.migrate import head_revision
from billing.domain.errors import NotFound, Unauthorized
from billing.web import limits
from billing.web.problems import problem

blp = Blueprint("health", __name__)


def init_app(app: Flask) -> None:
    app.extensions["billing.head_revision"] = head_revision()
    url = app.config["REDIS_URL"]
    app.extensions["billing.redis"] = (
        redis.Redis.from_url(url, socket_timeout=1, socket_connect_timeout=1) if url else None
    )
    app.extensions["billing.redis_breaker"] = breakers.breaker("redis")
    app.register_blueprint(blp)


@blp.get("/healthz")
def healthz() -> dict[str, str]:
    """Liveness: the process answers. Nothing else is asked, so a dependency that is down
    never makes an orchestrator restart a healthy process."""
    return {"status": "ok"}


@blp.get("/readyz")
def readyz() -> Response | dict[str, Any]:
    """Ready for traffic: the database answers and is migrated to this code's head. Redis
    is not needed to serve (rate limits count in memory meanwhile): its state is reported,
    `degraded`, with a 200, and in /metrics, never as a reason to take the instance out."""
    checks: dict[str, str] = {}
    head = current_app.extensions["billing.head_revision"]
    try:
        revision = db.session().scalar(text("SELECT version_num FROM alembic_version"))
        checks["database"] = "ok"
        checks["migrations"] = "ok" if revision == head else f"at {revision}, code needs {head}"
    except Exception:  # unreachable, or never migrated
        checks["database"] = "unreachable or not migrated"
    # For operators: what this instance talks to (nothing secret), and how well.
    details: dict[str, Any] = {
        "stripe_api_version": current_app.config["STRIPE_API_VERSION"] or None
    }
    degraded = _redis_state()
    if degraded is not None:
        details["redis"] = degraded
    failing = {name: state for name, state in checks.items() if state != "ok"}
    if failing:
        detail = "Not ready: " + "; ".join(f"{name}: {state}" for name, state in failing.items())
        extra = {"checks": checks, "details": details}
        return problem(503, "not_ready", "Service unavailable", detail, extra=extra)
    status = "degraded" if details.get("redis", "ok") != "ok" else "ready"
    return {"status": status, "checks": checks, "details": details}


def _redis_state() -> str | None:
    """`ok`, or what is wrong with Redis (skipped at once while its breaker is open);
    None when there is no Redis to ask."""
    store: redis.Redis | None = current_app.extensions["billing.redis"]
    if store is None:
        return None
    breaker: breakers.Breaker = current_app.extensions["billing.redis_breaker"]
    try:
        breaker.call(store.ping)
    except (breakers.Open, redis.RedisError):
        metrics.dependency_up("redis", False)
        return "unreachable: rate limits count in each process meanwhile"
    metrics.dependency_up("redis", True)
    return "ok"


@blp.get("/metrics")
def prometheus_metrics() -> Response:
    """Prometheus metrics, for `Authorization: Bearer <METRICS_TOKEN>` only."""
    token = current_app.config["METRICS_TOKEN"]
    if not token:
        raise NotFound("not_found", "No such resource.")
    limits.refuse_after_failures("metrics")
    scheme, _, given = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(
        given.strip().encode(), token.encode()
    ):
        limits.count_failure("metrics")
        raise Unauthorized("invalid_metrics_token", "Send `Authorization: Bearer <METRICS_TOKEN>`.")
    return metrics.exposition()
