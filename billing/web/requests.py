"""Per-request plumbing: request ids, strict JSON bodies, one structured log line."""

from __future__ import annotations

import json
import logging
import re
import secrets
import time
from collections.abc import Callable

from flask import Flask, Request, Response, current_app, g, request
from flask.sessions import SecureCookieSession, SecureCookieSessionInterface

from billing.domain.errors import BadRequest, NotFound, ServiceError, field_error
from billing.services.access import audit

log = logging.getLogger("billing.request")
# A caller's X-Request-ID is kept (logs, the audit trail) only when it is this plain.
REQUEST_ID = re.compile(r"[A-Za-z0-9._\-]{1,128}")


class UnsupportedMediaType(ServiceError):
    status, title = 415, "Unsupported media type"


def _start() -> None:
    # The request and g, looked up once (each use of Flask's proxies is a lookup).
    current = request._get_current_object()  # type: ignore[attr-defined]  # a LocalProxy method
    here = g._get_current_object()
    here.started = time.perf_counter()
    incoming = current.headers.get("X-Request-ID", "")
    here.request_id = incoming if REQUEST_ID.fullmatch(incoming) else secrets.token_hex(16)
    # Until a key or a sign-in says who it is, the caller is known by its address.
    audit.act_as(audit.Actor("anonymous", current.remote_addr or "unknown", here.request_id))


JSON_BODY = "billing_json_body"  # flask.g: the request's body, parsed once


def _first_string(value: object, bad: Callable[[str], bool], path: str = "") -> str | None:
    """The dotted path of the first string (a key or a value) that is `bad`, if any."""
    if isinstance(value, str):
        return path or "body" if bad(value) else None
    if isinstance(value, dict):
        for key, item in value.items():
            name = f"{path}.{key}" if path else str(key)
            found = _first_string(key, bad, name) or _first_string(item, bad, name)
            if found:
                return found
    if isinstance(value, list):
        for index, item in enumerate(value):
            found = _first_string(item, bad, f"{path}.{index}" if path else str(index))
            if found:
                return found
    return None


def _has_nul(text: str) -> bool:
    return "\x00" in text


LONE_SURROGATE = re.compile("[\ud800-\udfff]")
# How one can be written: an escape from \ud800 to \udfff, or (json reads UTF-8 with
# "surrogatepass") its three bytes, which all begin with 0xED.
MAY_HOLD_SURROGATE = re.compile(rb"\\u[dD][89a-fA-F]|\xed")


def _has_lone_surrogate(text: str) -> bool:
    return LONE_SURROGATE.search(text) is not None


def check_json_body() -> None:
    """API requests carry no NUL characters (no id or name holds one, and PostgreSQL
    cannot store them) and no lone surrogates (no character at all), and API writes carry
    a JSON object, declared as such."""
    current = request._get_current_object()  # type: ignore[attr-defined]  # a LocalProxy method
    path = current.path
    if not path.startswith("/v1/"):
        return
    if "\x00" in path:
        raise NotFound("not_found", "No such resource.")
    if current.query_string and any(
        "\x00" in part for item in current.args.items(multi=True) for part in item
    ):
        raise BadRequest("nul_character", "The query string must not contain NUL characters.")
    if current.method not in ("POST", "PUT", "PATCH"):
        return
    if path.startswith("/v1/stripe/"):
        return  # webhooks verify the raw body themselves
    if not current.content_length and not current.get_data(cache=True):
        return  # no body; the schema reports the missing fields
    if not current.is_json:
        raise UnsupportedMediaType(
            "unsupported_media_type", "Send the body as JSON with `Content-Type: application/json`."
        )
    data = current.get_data(cache=True)
    try:
        body = json.loads(data)
    except ValueError as error:
        raise BadRequest("malformed_json", f"The body is not valid JSON: {error}.") from None
    except RecursionError:  # `[[[[...` nested thousands deep: no request is shaped so
        raise BadRequest("malformed_json", "The body is nested too deeply.") from None
    g.setdefault(JSON_BODY, body)  # the arguments parser takes this parse (api.blueprint)
    # A NUL can only be written `\u0000` in JSON: without those bytes, no string has one.
    field = _first_string(body, _has_nul) if b"\\u0000" in data else None
    if field:
        raise field_error("nul_character", field, "Must not contain NUL characters.")
    # Half of a surrogate pair alone is no character: it can be neither stored nor sent.
    if MAY_HOLD_SURROGATE.search(data):
        field = _first_string(body, _has_lone_surrogate)
        if field:
            raise field_error(
                "invalid_unicode", field, "Must be valid Unicode: a lone surrogate is no character."
            )


def _finish(response: Response) -> Response:
    response.headers["X-Request-ID"] = g.get("request_id", "")
    if request._get_current_object().path.startswith("/v1/"):  # type: ignore[attr-defined]  # a LocalProxy method
        # patients' names and invoices: kept by no cache
        response.headers.setdefault("Cache-Control", "no-store")
        response.headers["X-Content-Type-Options"] = "nosniff"
    if not log.isEnabledFor(logging.INFO):
        return response
    api_key = g.get("api_key")
    rule = request.url_rule.rule if request.url_rule is not None else request.path
    line = {
        "event": "request",
        "method": request.method,
        # Pay links carry a secret token in the path, a gift card its code (which anyone
        # may spend): log the route instead.
        "path": rule if "token" in rule or "<code>" in rule else request.path,
        "status": response.status_code,
        "duration_ms": round((time.perf_counter() - g.started) * 1000, 2),
        "request_id": g.get("request_id"),
        "api_key": api_key.name if api_key is not None else None,
    }
    if current_app.config["LOG_FORMAT"] == "text":  # `make run`: for a person to read
        who = f" ({line['api_key']})" if line["api_key"] else ""
        log.info(
            f"{line['method']} {line['path']} {line['status']} "
            f"{line['duration_ms']:.1f} ms{who} [{line['request_id']}]"
        )
    else:
        log.info(json.dumps(line))
    return response


def _end(_error: BaseException | None) -> None:
    # The thread serves other requests (and code) next: nobody is acting any more.
    audit.act_as(audit.SYSTEM)


class CookieSessions(SecureCookieSessionInterface):
    """Flask's signed-cookie sessions (the finance pages' and the pay page's), set up
    only for a request that carries the cookie: an API call has none, and making the
    signer for nothing cost every call."""

    def open_session(self, app: Flask, request: Request) -> SecureCookieSession | None:
        if app.secret_key and (
            "HTTP_COOKIE" not in request.environ
            or not request.cookies.get(self.get_cookie_name(app))
        ):
            return self.session_class()
        return super().open_session(app, request)


def init_app(app: Flask) -> None:
    app.session_interface = CookieSessions()
    app.before_request(_start)
    app.after_request(_finish)
    app.teardown_request(_end)
