"""Rate limits, counted across every instance: Flask-Limiter with its counters in Redis
when REDIS_URL is set (in this process's memory otherwise, for one instance alone).

- API calls: API_RATE_LIMIT per API key (the hash of the bearer token);
- failed authentications (an unknown API key, a wrong /metrics token):
  AUTH_FAILURE_LIMIT per client address, so a new made-up key on every request is
  stopped too, before its database lookup;
- pay-link pages: PAY_RATE_LIMIT_PER_MINUTE per client address (guessing links);
- finance sign-in: per address, and failed attempts per account.

A refusal is a 429 with Retry-After: problem+json for the API, a page for people.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from collections.abc import Callable
from functools import lru_cache, partial
from typing import Any

from flask import Flask, Response, current_app, g, request
from flask_limiter import Limiter, RequestLimit
from flask_limiter.util import get_remote_address
from limits import RateLimitItem, parse
from limits.storage import MemoryStorage, Storage, storage_from_string
from limits.strategies import STRATEGIES
from werkzeug.exceptions import TooManyRequests

log = logging.getLogger("billing.limits")

limiter = Limiter(key_func=get_remote_address)
API_LIMITER = "billing.api_limiter"
API_RESET = "billing_api_limit_reset"  # flask.g: when a refused caller may come back
STORAGE_RETRY_SECONDS = 5.0  # after a storage failure, count in memory this long
REDIS_TIMEOUT = 0.5  # seconds: a limit's round trip to Redis is a millisecond when it answers


class MemoryCounters(MemoryStorage):
    """`limits`' in-memory storage, freeing expired counters once a second.

    Its own sweep is a 10 ms timer thread, started again by the first hit after the last
    one ran: at a few hundred requests a second that is a new thread for nearly every
    request (0.17 ms each, and then that thread competes for the GIL). Expired counters
    are already ignored when read (`get` checks their expiry); the sweep only frees their
    memory, which can wait a second."""

    SWEEP_SECONDS = 1.0

    def __init__(self) -> None:
        super().__init__()
        self.next_sweep = 0.0

    def _MemoryStorage__schedule_expiry(self) -> None:  # the hook every write calls
        now = time.monotonic()
        if now < self.next_sweep or self.timer.is_alive():
            return
        self.next_sweep = now + self.SWEEP_SECONDS
        sweep = getattr(self, "_MemoryStorage__expire_events")  # noqa: B009 (private to it)
        self.timer = threading.Timer(self.SWEEP_SECONDS, sweep)
        self.timer.daemon = True
        self.timer.start()


def _storage(uri: str) -> Storage:
    if uri.startswith("memory://"):
        return MemoryCounters()
    storage = storage_from_string(uri, **storage_options(uri))
    assert isinstance(storage, Storage)
    return storage


class ApiLimiter:
    """API_RATE_LIMIT per caller, for every API request: the `limits` library (what
    Flask-Limiter counts with) called directly, in the storage Flask-Limiter is given
    (Redis when REDIS_URL is set). On the API's hot path Flask-Limiter's own per-request
    machinery (resolving, filtering and evaluating its limits) cost 0.2 ms of a 1 ms
    quote; this costs a few microseconds and one Redis round trip when there is Redis.
    When that storage fails, requests are counted in this process's memory until it
    answers again, as Flask-Limiter's in-memory fallback does."""

    def __init__(self, storage_uri: str, strategy: str, prefix: str) -> None:
        self.storage_uri = storage_uri
        self.strategy = STRATEGIES[strategy](_storage(storage_uri))
        self.fallback = STRATEGIES[strategy](MemoryCounters())
        self.prefix = prefix
        self.dead_until = 0.0

    def hit(self, limit: str, caller: str, kind: str = "api") -> tuple[bool, float]:
        """Count one request of `caller`; (allowed, when its window resets)."""
        return self._ask(limit, caller, kind, count=True)

    def test(self, limit: str, caller: str, kind: str) -> tuple[bool, float]:
        """Whether `caller` is still within `limit`, counting nothing."""
        return self._ask(limit, caller, kind, count=False)

    def _ask(self, limit: str, caller: str, kind: str, count: bool) -> tuple[bool, float]:
        item = _parsed(limit)
        strategy = self.strategy if time.monotonic() >= self.dead_until else self.fallback
        try:
            return _window(strategy, item, self.prefix, kind, caller, count)
        except Exception:  # Redis away: count here meanwhile
            log.warning("rate-limit storage %s failed; counting in memory", self.storage_uri)
            self.dead_until = time.monotonic() + STORAGE_RETRY_SECONDS
            return _window(self.fallback, item, self.prefix, kind, caller, count)


def _window(
    strategy: Any, item: RateLimitItem, prefix: str, kind: str, caller: str, count: bool
) -> tuple[bool, float]:
    allowed = (strategy.hit if count else strategy.test)(item, prefix, kind, caller)
    reset = 0.0 if allowed else strategy.get_window_stats(item, prefix, kind, caller)[0]
    return bool(allowed), float(reset)


@lru_cache(maxsize=32)
def _parsed(limit: str) -> RateLimitItem:
    return parse(limit)


def check_api_limit() -> None:
    """before_request, for the API's blueprints: a 429 once the caller's key (or address)
    has used API_RATE_LIMIT."""
    app = current_app._get_current_object()  # type: ignore[attr-defined]  # a LocalProxy method
    if request.blueprint not in API_BLUEPRINTS or not app.config["RATELIMIT_ENABLED"]:
        return
    counter: ApiLimiter = app.extensions[API_LIMITER]
    allowed, reset = counter.hit(str(app.config["API_RATE_LIMIT"]), api_caller())
    if not allowed:
        g.setdefault(API_RESET, reset)
        raise TooManyRequests()


def refuse_after_failures(kind: str) -> None:
    """Before checking a caller's secret: a 429 once its address has failed
    AUTH_FAILURE_LIMIT times (`kind`: what failed, the API key or the /metrics token)."""
    app = current_app._get_current_object()  # type: ignore[attr-defined]  # a LocalProxy method
    if not app.config["RATELIMIT_ENABLED"]:
        return
    counter: ApiLimiter = app.extensions[API_LIMITER]
    allowed, reset = counter.test(str(app.config["AUTH_FAILURE_LIMIT"]), _address(), kind)
    if not allowed:
        g.setdefault(API_RESET, reset)
        raise TooManyRequests()


def count_failure(kind: str) -> None:
    """A failed authentication from this request's address."""
    app = current_app._get_current_object()  # type: ignore[attr-defined]  # a LocalProxy method
    if app.config["RATELIMIT_ENABLED"]:
        counter: ApiLimiter = app.extensions[API_LIMITER]
        counter.hit(str(app.config["AUTH_FAILURE_LIMIT"]), _address(), kind)


def _address() -> str:
    return "addr:" + (get_remote_address() or "unknown")


PAGES_WITH_LIMITS = ("pay", "finance", "account")  # the blueprints with Flask-Limiter's limits
# The blueprints API_RATE_LIMIT applies to (billing.web.api registers them).
API_BLUEPRINTS: set[str] = set()


def storage_options(uri: str) -> dict[str, float]:
    """A Redis that stops answering costs a request this long at most, not the client's
    default of seconds (then the breaker skips it for STORAGE_RETRY_SECONDS)."""
    if uri.startswith(("redis://", "rediss://")):
        return {"socket_timeout": REDIS_TIMEOUT, "socket_connect_timeout": REDIS_TIMEOUT}
    return {}


def init_app(app: Flask) -> None:
    app.config.setdefault("RATELIMIT_STORAGE_URI", app.config["REDIS_URL"] or "memory://")
    app.config.setdefault(
        "RATELIMIT_STORAGE_OPTIONS", storage_options(app.config["RATELIMIT_STORAGE_URI"])
    )
    # A sliding window counter: two counters per caller, O(1) a request in Redis or in
    # memory, within a small error of the exact moving window (which keeps a timestamp
    # per request and, in memory, copied that list a hundred times a second).
    app.config.setdefault("RATELIMIT_STRATEGY", "sliding-window-counter")
    # Flask-Limiter's headers would put a Retry-After on every answer; 429s carry their own.
    app.config.setdefault("RATELIMIT_HEADERS_ENABLED", False)
    # A Redis outage must not take the service down with it: count in memory meanwhile.
    app.config.setdefault("RATELIMIT_IN_MEMORY_FALLBACK_ENABLED", True)
    app.config.setdefault("RATELIMIT_KEY_PREFIX", app.config["RATE_LIMIT_KEY_PREFIX"])
    app.config.setdefault("RATELIMIT_ENABLED", True)
    limiter.init_app(app)
    # Flask-Limiter hooks itself into every request of the app; only the pages have its
    # limits, so its hooks run for theirs alone (on every API call its check cost 4% of a
    # quote's CPU, and its after-request and teardown hooks 2% more).
    every: tuple[dict[str | None, list[Any]], ...] = (
        app.before_request_funcs,
        app.after_request_funcs,
        app.teardown_request_funcs,
    )
    for hooks in every:
        its_own = [hook for hook in hooks[None] if _of_limiter(hook)]
        hooks[None] = [hook for hook in hooks[None] if not _of_limiter(hook)]
        for blueprint in PAGES_WITH_LIMITS:
            hooks.setdefault(blueprint, []).extend(its_own)
    app.extensions[API_LIMITER] = ApiLimiter(
        app.config["RATELIMIT_STORAGE_URI"],
        app.config["RATELIMIT_STRATEGY"],
        app.config["RATELIMIT_KEY_PREFIX"],
    )
    app.before_request(check_api_limit)


def _of_limiter(hook: Callable[..., object]) -> bool:
    """A hook Flask-Limiter registered: one of its bound methods, or a partial of one."""
    if isinstance(hook, partial):
        return limiter in hook.args
    return getattr(hook, "__self__", None) is limiter


def api_caller() -> str:
    """The bucket of an API request: its bearer token (hashed), else its address."""
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        return "key:" + hashlib.sha256(token.strip().encode()).hexdigest()[:32]
    return _address()


def pay_limit() -> str:
    return f"{current_app.config['PAY_RATE_LIMIT_PER_MINUTE']} per minute"


def login_address_limit() -> str:
    return str(current_app.config["LOGIN_RATE_LIMIT"])


def login_account_limit() -> str:
    return str(current_app.config["LOGIN_ACCOUNT_LIMIT"])


def login_account() -> str:
    """Failed sign-ins are counted per account AND address: a stranger's wrong passwords
    cannot lock the account's owner out from the clinic."""
    email = request.form.get("email", "").strip().lower()[:254]
    return f"account:{email}|{_address()}"


def retry_after(limit: RequestLimit | None = None) -> str:
    """Seconds until the limit (by default the one this request broke) lets one through."""
    if limit is None and API_RESET in g:
        return str(max(1, int(g.get(API_RESET) - time.time())))
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
