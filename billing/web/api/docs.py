"""The API's docs page (Swagger UI) and its assets, served by the service itself so that
/docs works offline, with the same security headers as every page for people."""

from __future__ import annotations

from flask import (
    Blueprint,
    Response,
    current_app,
    make_response,
    render_template,
    send_from_directory,
)
from swagger_ui_bundle import swagger_ui_path

blp = Blueprint("swagger_assets", __name__)
ASSETS_URL = "/docs-assets/"
# Swagger UI sets style attributes and draws icons as data: images; nothing else inline.
DOCS_POLICY = "; ".join(
    [
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self' 'unsafe-inline'",
        "img-src 'self' data:",
        "connect-src 'self'",
        "form-action 'self'",
        "base-uri 'none'",
        "frame-ancestors 'none'",
    ]
)


@blp.get("/docs")
def docs() -> Response:
    """Swagger UI for /openapi.json."""
    page = render_template(
        "docs/swagger_ui.html",
        title=current_app.config["API_TITLE"],
        assets=ASSETS_URL,
        spec_url="/openapi.json",
    )
    return make_response(page)


@blp.get(ASSETS_URL + "<path:filename>")
def asset(filename: str) -> Response:
    return send_from_directory(str(swagger_ui_path), filename, max_age=86400)


@blp.after_request
def _headers(response: Response) -> Response:
    response.headers["Content-Security-Policy"] = DOCS_POLICY
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Referrer-Policy"] = "no-referrer"
    response.headers["X-Frame-Options"] = "DENY"
    return response
