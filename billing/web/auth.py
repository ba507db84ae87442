"""API keys: bearer tokens stored as SHA-256 hashes, each carrying scopes.

Closed by default: every route under /v1/ needs a key with one of the scopes its view
declares (`@requires`), whatever the HTTP method: HEAD is authorised exactly as GET (the
view that answers it), OPTIONS needs any valid key, and a view that declares nothing is
refused to everyone, unless marked `@public` (it checks its caller otherwise, as the
Stripe webhook checks Stripe's signature). The app does not start with a /v1 view that
declares neither.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from flask import Flask, current_app, g, request
from sqlalchemy import select

from billing.adapters import db
from billing.adapters.cache import Generation, SharedCache
from billing.adapters.models import ApiKey
from billing.domain.access import ANY_KEY, SCOPES, hash_key
from billing.domain.errors import Forbidden, Unauthorized
from billing.services.access import audit
from billing.web import limits

NOBODY = ("nobody",)  # what a /v1 view that declared nothing asks for: no key has it
API_PREFIX = "/v1/"

F = TypeVar("F", bound=Callable[..., Any])


@dataclass(frozen=True, slots=True)
class Caller:
    """The client system behind a request: its key's id, name and scopes, and the client
    system the key belongs to."""

    id: int
    name: str
    scopes: frozenset[str]
    client: str


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


def public(reason: str) -> Callable[[F], F]:
    """Mark a view under /v1/ as called without a key; `reason` says who it trusts."""

    def mark(view: F) -> F:
        view._public = reason  # type: ignore[attr-defined]  # kept on the function itself
        return view

    return mark


def handler_of(view: Any, method: str) -> Any:
    """The function that answers `method` on a view: a MethodView's method (HEAD is
    answered by GET's, as Flask does), or the view function itself."""
    view_class = getattr(view, "view_class", None)
    if view_class is None:
        return view
    name = method.lower()
    if name == "head" and not hasattr(view_class, "head"):
        name = "get"
    return getattr(view_class, name, None)


def required_scopes(endpoint: str | None, method: str, path: str) -> tuple[str, ...] | None:
    """The scopes a request needs; None only where no key is asked for (pages, probes,
    a view marked public, a route that does not exist: Flask answers 404 or 405)."""
    view = current_app.view_functions.get(endpoint or "")
    if view is None or not path.startswith(API_PREFIX):
        return None
    if method == "OPTIONS":
        return (ANY_KEY,)
    handler = handler_of(view, method)
    if getattr(handler, "_public", None):
        return None
    scopes: tuple[str, ...] | None = getattr(handler, "_required_scopes", None)
    return scopes if scopes is not None else NOBODY


def check_every_route_declares(app: Flask) -> None:
    """At start: every method of every /v1 route declares its scopes or is public."""
    undeclared = [
        f"{method} {rule.rule}"
        for rule in app.url_map.iter_rules()
        if rule.rule.startswith(API_PREFIX)
        for method in sorted((rule.methods or set()) - {"HEAD", "OPTIONS"})
        if not _declares(handler_of(app.view_functions[rule.endpoint], method))
    ]
    if undeclared:
        raise RuntimeError(
            "API routes with no @requires or @public (refused to everyone): "
            + ", ".join(undeclared)
        )


def _declares(handler: Any) -> bool:
    return bool(getattr(handler, "_required_scopes", None) or getattr(handler, "_public", None))


def authenticate() -> None:
    """before_request: check the bearer key against the endpoint's scopes."""
    current = request._get_current_object()  # type: ignore[attr-defined]  # a LocalProxy method
    scopes = required_scopes(current.endpoint, current.method, current.path)
    if scopes is None:
        return
    header = current.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthorized("missing_api_key", "Send an API key as `Authorization: Bearer <key>`.")
    limits.refuse_after_failures("api_key")  # before the lookup a made-up key costs
    caller = _caller(hash_key(token.strip()))
    if caller is None:
        limits.count_failure("api_key")
        raise Unauthorized("invalid_api_key", "The API key is unknown or has been revoked.")
    here = g._get_current_object()
    here.api_key = caller
    audit.act_as(audit.Actor("api_key", caller.name, here.get("request_id")))
    if ANY_KEY not in scopes and not caller.scopes.intersection(scopes):
        raise Forbidden(
            "insufficient_scope",
            f"This key lacks the scope this endpoint needs: {' or '.join(scopes)}.",
        )


def check_scope(scope: str, what: str) -> None:
    """Inside a view that several scopes may call: refuse (403) unless this request's key
    holds `scope`, the one `what` (e.g. "recording cash") needs."""
    if scope not in current_key().scopes:
        raise Forbidden("insufficient_scope", f"This key lacks the scope {what} needs: {scope}.")


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
        caller = Caller(id=row.id, name=row.name, scopes=row.scope_set, client=row.client)
        cache.put(key_hash, caller)
    return caller


def forget_keys() -> None:
    """Drop this process's remembered keys (after a revocation)."""
    current_app.extensions["billing.key_cache"].clear()
    current_app.extensions["billing.cache_generation"].forget()


def current_key() -> Caller:
    key: Caller = g.api_key
    return key
