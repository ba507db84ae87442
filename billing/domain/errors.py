"""Typed failures with stable codes. Services raise them; one handler renders problem+json."""

from __future__ import annotations


class ServiceError(Exception):
    """A failure a caller can act on: an HTTP status, a stable `code`, a human `detail`."""

    status = 400
    title = "Bad request"
    # True when a call to another system failed in transit: it may or may not have acted.
    outcome_unknown = False

    def __init__(
        self,
        code: str,
        detail: str,
        errors: dict[str, list[str]] | None = None,
        extra: dict[str, str] | None = None,
    ) -> None:
        super().__init__(detail)
        self.code = code
        self.detail = detail
        self.errors = errors or {}
        self.extra = extra or {}  # more members of the problem body, e.g. a payment id


class BadRequest(ServiceError):
    status, title = 400, "Bad request"


class Unauthorized(ServiceError):
    status, title = 401, "Unauthorized"


class Forbidden(ServiceError):
    status, title = 403, "Forbidden"


class NotFound(ServiceError):
    status, title = 404, "Not found"


class Conflict(ServiceError):
    status, title = 409, "Conflict"


class Unprocessable(ServiceError):
    status, title = 422, "Unprocessable request"


def field_error(code: str, field: str, message: str) -> Unprocessable:
    """A 422 that names the one field that was wrong."""
    return Unprocessable(code, message, {field: [message]})


class PaymentRequired(ServiceError):
    status, title = 402, "Payment failed"


class BadGateway(ServiceError):
    status, title = 502, "Payment provider error"


class ServiceUnavailable(ServiceError):
    status, title = 503, "Service unavailable"


# Stable codes for failures raised by Flask or Werkzeug rather than by our services.
HTTP_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "validation_error",
    429: "rate_limited",
}
