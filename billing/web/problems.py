"""One place that turns every failure into application/problem+json (RFC 9457)."""

from __future__ import annotations

import logging
from typing import Any

from flask import Flask, Response, g, json
from sqlalchemy import exc as sql
from werkzeug.exceptions import HTTPException

from billing.domain.errors import HTTP_CODES, ServiceError
from billing.web import limits

log = logging.getLogger("billing.errors")


def problem(
    status: int,
    code: str,
    title: str,
    detail: str,
    errors: dict[str, list[str]] | None = None,
    headers: dict[str, str] | None = None,
    extra: dict[str, Any] | None = None,
) -> Response:
    body: dict[str, Any] = {
        "type": f"/problems/{code}",
        "title": title,
        "status": status,
        "detail": detail,
        "code": code,
    }
    if errors:
        body["errors"] = errors
    body.update(extra or {})
    if "request_id" in g:
        body["request_id"] = g.request_id
    response = Response(json.dumps(body), status=status, mimetype="application/problem+json")
    response.headers.update(headers or {})
    return response


def flatten(messages: Any, prefix: str = "") -> dict[str, list[str]]:
    """Marshmallow's nested messages as field paths: {"patients.0.name": [...]}."""
    if isinstance(messages, dict):
        flat: dict[str, list[str]] = {}
        for key, value in messages.items():
            name = "" if key == "_schema" else str(key)
            path = f"{prefix}.{name}" if prefix and name else (prefix or name or "body")
            flat.update(flatten(value, path))
        return flat
    if isinstance(messages, list) and all(isinstance(m, str) for m in messages):
        return {prefix or "body": list(messages)}
    return {prefix or "body": [str(messages)]}


def _service_error(error: ServiceError) -> Response:
    headers = {"WWW-Authenticate": 'Bearer realm="billing"'} if error.status == 401 else None
    return problem(
        error.status, error.code, error.title, error.detail, error.errors, headers, error.extra
    )


def _http_error(error: HTTPException) -> Response | Any:
    if error.response is not None:  # abort(<a page>) from the pages for people
        return error.response
    status = error.code or 500
    code = HTTP_CODES.get(status, "http_error")
    detail = error.description or ""
    errors = None
    data = getattr(error, "data", None) or {}
    messages = data.get("messages")
    if messages:
        # webargs nests messages under the location ("json", "query", "headers").
        errors = {}
        for location_messages in messages.values():
            errors.update(flatten(location_messages))
        detail = "The request did not validate: " + "; ".join(
            f"{field}: {' '.join(texts)}" for field, texts in errors.items()
        )
    headers = None
    if status == 405:
        detail = "This method is not allowed on this path."
    if status == 429:
        detail = "Too many requests with this API key; retry after the time in Retry-After."
        headers = {"Retry-After": limits.retry_after()}
    return problem(status, code, error.name, detail, errors, headers)


def _unexpected(error: Exception) -> Response:
    log.exception("unhandled error (request %s)", g.get("request_id", "-"))
    return problem(
        500,
        "internal_error",
        "Internal server error",
        "Something went wrong on our side. Quote the request id when you report it.",
    )


def _database_error(error: sql.SQLAlchemyError) -> Response:
    """A lost or unreachable database is a clean 503 to retry; any other database error is
    our bug (a 500). Either way the transaction rolled back: nothing was half written."""
    lost = isinstance(error, sql.TimeoutError | sql.OperationalError | sql.InterfaceError) or (
        isinstance(error, sql.DBAPIError) and error.connection_invalidated
    )
    if not lost:
        return _unexpected(error)
    log.warning("database unavailable (request %s): %s", g.get("request_id", "-"), error)
    return problem(
        503,
        "database_unavailable",
        "Service unavailable",
        "The database could not be reached part-way through this request; what it had not "
        "committed was rolled back. Retry in a moment, with the same Idempotency-Key where "
        "one is used: nothing is created or charged twice.",
        headers={"Retry-After": "1"},
    )


def init_app(app: Flask) -> None:
    app.register_error_handler(ServiceError, _service_error)
    app.register_error_handler(sql.SQLAlchemyError, _database_error)
    app.register_error_handler(HTTPException, _http_error)
    app.register_error_handler(Exception, _unexpected)
