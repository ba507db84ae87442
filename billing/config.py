"""Configuration from environment variables. Each one is documented in the README."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any


def _int(environ: Mapping[str, str], name: str, default: int) -> int:
    raw = environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError:
        raise RuntimeError(f"{name} must be an integer, got {raw!r}") from None


def _float(environ: Mapping[str, str], name: str, default: float) -> float:
    raw = environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        return float(raw)
    except ValueError:
        raise RuntimeError(f"{name} must be a number, got {raw!r}") from None


def normalise_database_url(url: str) -> str:
    """Use the psycopg 3 driver for plain postgres URLs."""
    for prefix in ("postgres://", "postgresql://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


def from_env(environ: Mapping[str, str] | None = None) -> dict[str, Any]:
    """The app's settings, read from the environment with their defaults."""
    env = os.environ if environ is None else environ
    database_url = env.get("DATABASE_URL", "")
    return {
        # Empty means the embedded default: SQLite in the app's instance folder.
        "DATABASE_URL": normalise_database_url(database_url) if database_url else "",
        "QUOTE_TTL_HOURS": _int(env, "QUOTE_TTL_HOURS", 24),
        "MAX_CONTENT_LENGTH": _int(env, "MAX_BODY_BYTES", 64 * 1024),
        "DB_POOL_SIZE": _int(env, "DB_POOL_SIZE", 5),
        "AUTH_CACHE_SECONDS": _float(env, "AUTH_CACHE_SECONDS", 5.0),
        "PRICE_CACHE_SECONDS": _float(env, "PRICE_CACHE_SECONDS", 5.0),
        "LOG_LEVEL": env.get("LOG_LEVEL", "INFO"),
        "CLINIC_NAME": env.get("CLINIC_NAME", "Ketamine Clinic"),
        "STRIPE_SECRET_KEY": env.get("STRIPE_SECRET_KEY", ""),
        "STRIPE_WEBHOOK_SECRET": env.get("STRIPE_WEBHOOK_SECRET", ""),
        "STRIPE_API_BASE": env.get("STRIPE_API_BASE", ""),
        "STRIPE_TIMEOUT_SECONDS": _float(env, "STRIPE_TIMEOUT_SECONDS", 10.0),
        "STRIPE_MAX_NETWORK_RETRIES": _int(env, "STRIPE_MAX_NETWORK_RETRIES", 2),
    }
