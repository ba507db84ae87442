"""Swagger UI's assets, served by the service itself so /docs works offline."""

from __future__ import annotations

from flask import Blueprint, Response, send_from_directory
from swagger_ui_bundle import swagger_ui_path

blp = Blueprint("swagger_assets", __name__)
ASSETS_URL = "/docs-assets/"


@blp.get(ASSETS_URL + "<path:filename>")
def asset(filename: str) -> Response:
    return send_from_directory(str(swagger_ui_path), filename, max_age=86400)
