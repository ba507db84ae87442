"""The baseline for bench/quotes.py: a bare Flask app that echoes the booking it is sent.

`POST /v1/quotes` parses the JSON body and returns it with 201: no auth, no schema, no
database. Under the same gunicorn settings it shows what Flask, gunicorn and the HTTP
round trip cost by themselves, so the quote endpoint's figures can be read against it.

    gunicorn -w 4 -k sync --pythonpath bench "bare_app:create_bare_app()"
"""

from __future__ import annotations

from typing import Any

from flask import Flask, request


def create_bare_app() -> Flask:
    app = Flask(__name__)

    @app.post("/v1/quotes")
    def echo_booking() -> tuple[Any, int]:
        return request.get_json(), 201

    return app
