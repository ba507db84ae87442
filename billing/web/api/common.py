"""Helpers the views share: the Idempotency-Key header and the API's OpenAPI settings."""

from __future__ import annotations

import re
from typing import Any

from flask import current_app, g, request

from billing.domain.errors import BadRequest
from billing.services.idempotency import IdempotencyRequest, fingerprint
from billing.services.pricing.catalog import PriceBook
from billing.web.auth import current_key
from billing.web.requests import JSON_BODY

IDEMPOTENCY_KEY = re.compile(r"^[\x21-\x7e]{1,255}$")
BEARER: list[dict[str, list[str]]] = [{"bearerAuth": []}]
IDEMPOTENCY_HEADER: dict[str, Any] = {
    "in": "header",
    "name": "Idempotency-Key",
    "schema": {"type": "string", "maxLength": 255},
    "description": "A replay with the same key and body returns the first response.",
}


def idempotency_request(required: bool = False) -> IdempotencyRequest | None:
    """The request's Idempotency-Key, bound to the calling key and the body."""
    key = request.headers.get("Idempotency-Key")
    if key is None:
        if required:
            raise BadRequest(
                "idempotency_key_required", "This request needs an `Idempotency-Key` header."
            )
        return None
    if not IDEMPOTENCY_KEY.match(key):
        raise BadRequest(
            "invalid_idempotency_key",
            "Idempotency-Key must be 1-255 printable ASCII characters without spaces.",
        )
    body = g.get(JSON_BODY) if JSON_BODY in g else request.get_json(silent=True)
    return IdempotencyRequest(
        api_key_id=current_key().id,
        key=key,
        fingerprint=fingerprint(request.method, request.path, body),
    )


def price_book() -> PriceBook:
    """This process's cached price list."""
    book: PriceBook = current_app.extensions["billing.prices"]
    return book


def public_url(path: str) -> str:
    """An absolute URL for people outside (PUBLIC_BASE_URL, else the request's host)."""
    base = current_app.config["PUBLIC_BASE_URL"] or request.host_url
    return base.rstrip("/") + path
