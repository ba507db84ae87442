"""Probes for the load balancer, and the metrics for Prometheus."""

from __future__ import annotations

import hmac
from typing import Any

import redis
from flask import Blueprint, Flask, Response, current_app, request
from sqlalchemy import text

from billing.adapters import db, metrics
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
    app.register_blueprint(blp)


@blp.get("/healthz")
def healthz() -> dict[str, str]:
    """The process is up."""
    return {"status": "ok"}


@blp.get("/readyz")
def readyz() -> Response | dict[str, Any]:
    """Ready for traffic: the database answers and is migrated to this code's head, and
    Redis answers when one is configured."""
    checks: dict[str, str] = {}
    head = current_app.extensions["billing.head_revision"]
    try:
        revision = db.session().scalar(text("SELECT version_num FROM alembic_version"))
        checks["database"] = "ok"
        checks["migrations"] = "ok" if revision == head else f"at {revision}, code needs {head}"
    except Exception:  # unreachable, or never migrated
        checks["database"] = "unreachable or not migrated"
    store: redis.Redis | None = current_app.extensions["billing.redis"]
    if store is not None:
        try:
            store.ping()
            checks["redis"] = "ok"
        except redis.RedisError:
            checks["redis"] = "unreachable"
    # For operators: what this instance talks to (nothing secret).
    details = {"stripe_api_version": current_app.config["STRIPE_API_VERSION"] or None}
    failing = {name: state for name, state in checks.items() if state != "ok"}
    if failing:
        detail = "Not ready: " + "; ".join(f"{name}: {state}" for name, state in failing.items())
        extra = {"checks": checks, "details": details}
        return problem(503, "not_ready", "Service unavailable", detail, extra=extra)
    return {"status": "ready", "checks": checks, "details": details}


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
