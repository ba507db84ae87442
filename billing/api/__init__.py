"""The HTTP API: thin flask-smorest views over the services."""

from __future__ import annotations

from flask import Flask
from flask_smorest import Api

from billing.api import catalog, docs, health, quotes


def init_app(app: Flask) -> Api:
    api = Api(app)
    api.spec.components.security_scheme(
        "bearerAuth", {"type": "http", "scheme": "bearer", "description": "An API key."}
    )
    for blueprint in (catalog.blp, quotes.blp):
        api.register_blueprint(blueprint)
    app.register_blueprint(health.blp)
    app.register_blueprint(docs.blp)
    return api
