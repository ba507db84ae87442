"""Server-rendered pages for people: the patient's pay page and the finance dashboard."""

from __future__ import annotations

from functools import cache
from pathlib import Path
from urllib.parse import urlsplit

from flask import Flask, Response, current_app, request

from billing.domain.dates import month_name, next_month
from billing.domain.pricing import session_name
from billing.web.calendar import clinic_date_filter


def init_app(app: Flask) -> None:
    """What every page writes the same way: the clinic's dates and months, the session
    types' names."""
    app.add_template_filter(clinic_date_filter, "clinic_date")
    app.add_template_filter(session_name, "session_name")
    app.add_template_filter(month_name, "month_name")
    app.add_template_filter(next_month, "next_month")
    app.add_url_rule("/favicon.ico", "favicon", favicon)


@cache
def _icon() -> bytes:
    return (Path(__file__).parents[2] / "static" / "favicon.ico").read_bytes()


def favicon() -> Response:
    """The icon browsers ask for on every page (never a 404 in the logs)."""
    response = Response(_icon(), mimetype="image/vnd.microsoft.icon")
    response.cache_control.public = True
    response.cache_control.max_age = 86400
    return response


def security_headers(response: Response) -> Response:
    """What every page for people carries: a strict CSP and no caching or referrers."""
    stripe_origin = _origin(current_app.config["STRIPE_JS_URL"])
    response.headers["Content-Security-Policy"] = "; ".join(
        [
            "default-src 'self'",
            f"script-src 'self' {stripe_origin}",
            f"frame-src {stripe_origin} https://hooks.stripe.com",
            f"connect-src 'self' {stripe_origin} https://api.stripe.com",
            "style-src 'self'",
            "img-src 'self' data:",
            "form-action 'self'",
            "base-uri 'none'",
            "frame-ancestors 'none'",
        ]
    )
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Referrer-Policy"] = "no-referrer"  # the token is in the URL
    response.headers["Cache-Control"] = "no-store"
    response.headers["X-Frame-Options"] = "DENY"
    if request.is_secure:
        response.headers["Strict-Transport-Security"] = "max-age=63072000; includeSubDomains"
    return response


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"
