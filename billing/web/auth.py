"""API keys: bearer tokens stored as SHA-256 hashes, each carrying scopes."""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from flask import Flask, current_app, g, request
from sqlalchemy import select

from billing.adapters import db
from billing.adapters.cache import Generation, SharedCache
from billing.adapters.models import ApiKey
from billing.domain.errors import Forbidden, Unauthorized
from billing.services.access import audit

SCOPES = frozenset(
    {
        "quotes:write",
        "invoices:read",
        "invoices:write",
        "payments:write",
        "refunds:write",
        "reports:read",
        "catalog:write",
        "audit:read",
        "events:read",
        "webhooks:write",
        "books:close",
        "bookings:write",
    }
)
ANY_KEY = "*"  # any valid key may call the endpoint

F = TypeVar("F", bound=Callable[..., Any])


@dataclass(frozen=True, slots=True)
class Caller:
    """The client system behind a request: its key's id, name and scopes."""

    id: int
    name: str
    scopes: frozenset[str]


def init_app(app: Flask) -> None:
    # Valid keys are remembered for AUTH_CACHE_SECONDS at most; a revocation bumps the
    # shared cache generation, so every process forgets them within CACHE_CHECK_SECONDS.
    generation: Generation = app.extensions["billing.cache_generation"]
    app.extensions["billing.key_cache"] = SharedCache[str, Caller](
        app.config["AUTH_CACHE_SECONDS"], generation
    )
    app.before_request(authenticate)


def requires(*scopes: str) -> Callable[[F], F]:
    """Mark a view as needing a key with any one of `scopes` (or ANY_KEY)."""
    unknown = set(scopes) - SCOPES - {ANY_KEY}
    if unknown or not scopes:
        raise ValueError(f"unknown scopes {sorted(unknown)}")

    def mark(view: F) -> F:
        view._required_scopes = scopes  # type: ignore[attr-defined]  # kept on the function itself
        return view

    return mark


def required_scopes(endpoint: str | None, method: str) -> tuple[str, ...] | None:
    """The scopes the endpoint asks for, or None for a public endpoint."""
    view = current_app.view_functions.get(endpoint or "")
    if view is None:
        return None
    view_class = getattr(view, "view_class", None)
    if view_class is not None:
        view = getattr(view_class, method.lower(), None)
    return getattr(view, "_required_scopes", None)


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def generate_key() -> str:
    """A new high-entropy key; only its hash is ever stored."""
    return "ck_" + secrets.token_urlsafe(32)


def authenticate() -> None:
    """before_request: check the bearer key against the endpoint's scopes."""
    current = request._get_current_object()  # type: ignore[attr-defined]  # a LocalProxy method
    scopes = required_scopes(current.endpoint, current.method)
    if scopes is None:
        return
    header = current.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthorized("missing_api_key", "Send an API key as `Authorization: Bearer <key>`.")
    caller = _caller(hash_key(token.strip()))
    if caller is None:
        raise Unauthorized("invalid_api_key", "The API key is unknown or has been revoked.")
    here = g._get_current_object()
    here.api_key = caller
    audit.act_as(audit.Actor("api_key", caller.name, here.get("request_id")))
    if ANY_KEY not in scopes and not caller.scopes.intersection(scopes):
        raise Forbidden(
            "insufficient_scope",
            f"This key lacks the scope this endpoint needs: {' or '.join(scopes)}.",
        )


def _caller(key_hash: str) -> Caller | None:
    cache: SharedCache[str, Caller] = current_app.extensions["billing.key_cache"]
    caller = cache.lookup(db.session(), key_hash)
    if caller is None:
        row = (
            db.session()
            .scalars(select(ApiKey).where(ApiKey.key_hash == key_hash, ApiKey.revoked_at.is_(None)))
            .one_or_none()
        )
        if row is None:
            return None
        caller = Caller(id=row.id, name=row.name, scopes=row.scope_set)
        cache.put(key_hash, caller)
    return caller


def forget_keys() -> None:
    """Drop this process's remembered keys (after a revocation)."""
    current_app.extensions["billing.key_cache"].clear()
    current_app.extensions["billing.cache_generation"].forget()


def current_key() -> Caller:
    key: Caller = g.api_key
    return key
