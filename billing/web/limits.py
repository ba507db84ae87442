"""Rate limits, counted across every instance: Flask-Limiter with its counters in Redis
when REDIS_URL is set (in this process's memory otherwise, for one instance alone).

- API calls: API_RATE_LIMIT per API key (the hash of the bearer token, so a flood of
  wrong keys is counted too, without a database lookup);
- pay-link pages: PAY_RATE_LIMIT_PER_MINUTE per client address (guessing links);
- finance sign-in: per address, and failed attempts per account.

A refusal is a 429 with Retry-After: problem+json for the API, a page for people.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable

from flask import Flask, Response, current_app, request
from flask_limiter import Limiter, RequestLimit
from flask_limiter.util import get_remote_address

limiter = Limiter(key_func=get_remote_address)


def init_app(app: Flask) -> None:
    app.config.setdefault("RATELIMIT_STORAGE_URI", app.config["REDIS_URL"] or "memory://")
    app.config.setdefault("RATELIMIT_STRATEGY", "moving-window")
    # Flask-Limiter's headers would put a Retry-After on every answer; 429s carry their own.
    app.config.setdefault("RATELIMIT_HEADERS_ENABLED", False)
    # A Redis outage must not take the service down with it: count in memory meanwhile.
    app.config.setdefault("RATELIMIT_IN_MEMORY_FALLBACK_ENABLED", True)
    app.config.setdefault("RATELIMIT_KEY_PREFIX", app.config["RATE_LIMIT_KEY_PREFIX"])
    limiter.init_app(app)


def api_caller() -> str:
    """The bucket of an API request: its bearer token (hashed), else its address."""
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        return "key:" + hashlib.sha256(token.strip().encode()).hexdigest()[:32]
    return "addr:" + (get_remote_address() or "unknown")


def api_limit() -> str:
    return str(current_app.config["API_RATE_LIMIT"])


def pay_limit() -> str:
    return f"{current_app.config['PAY_RATE_LIMIT_PER_MINUTE']} per minute"


def login_address_limit() -> str:
    return str(current_app.config["LOGIN_RATE_LIMIT"])


def login_account_limit() -> str:
    return str(current_app.config["LOGIN_ACCOUNT_LIMIT"])


def login_account() -> str:
    return "account:" + request.form.get("email", "").strip().lower()[:254]


def retry_after(limit: RequestLimit | None = None) -> str:
    """Seconds until the limit (by default the one this request broke) lets one through."""
    limit = limit or limiter.current_limit
    if limit is None:
        return "60"
    return str(max(1, int(limit.reset_at - time.time())))


def on_breach_page(
    render: Callable[[RequestLimit], Response],
) -> Callable[[RequestLimit], Response]:
    """For pages: answer a breach with `render`'s page (a 429) and a Retry-After."""

    def breach(limit: RequestLimit) -> Response:
        response = render(limit)
        response.status_code = 429
        response.headers["Retry-After"] = retry_after(limit)
        return response

    return breach
