"""Liveness and readiness probes for the load balancer."""

from __future__ import annotations

from flask import Blueprint, Response
from sqlalchemy import text

from billing import db
from billing.problems import problem

blp = Blueprint("health", __name__)


@blp.get("/healthz")
def healthz() -> dict[str, str]:
    """The process is up."""
    return {"status": "ok"}


@blp.get("/readyz")
def readyz() -> Response | dict[str, str]:
    """The database answers and is migrated."""
    try:
        db.session().execute(text("SELECT 1 FROM alembic_version"))
    except Exception:
        return problem(
            503,
            "not_ready",
            "Service unavailable",
            "The database is not reachable or not migrated.",
        )
    return {"status": "ready"}
