"""The clinic's pricing and billing service."""

from __future__ import annotations

import inspect
import logging
import os
import secrets
from collections.abc import Callable, Mapping
from typing import Any

import click
from flask import Flask
from werkzeug.middleware.proxy_fix import ProxyFix

from billing import cli, config
from billing.adapters import db, metrics, providers, queue
from billing.adapters.cache import Generation
from billing.services.pricing.catalog import PriceBook
from billing.web import api, auth, limits, pages, problems, requests
from billing.web.pages import account as portal
from billing.web.pages import audit as audit_page
from billing.web.pages import books, finance, pay


class BillingApp(Flask):
    """Flask, remembering which hooks and views are coroutine functions.

    Flask asks that of every hook and view it calls, on every request
    (`inspect.iscoroutinefunction`, about 25 times for a quote: 1.8 % of its
    instructions); the answer for a function never changes. Up to MAX_REMEMBERED are
    remembered (the app's own hooks and views); any beyond are asked every time."""

    MAX_REMEMBERED = 4096

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._is_sync: dict[Callable[..., Any], bool] = {}

    def ensure_sync(self, func: Callable[..., Any]) -> Callable[..., Any]:
        key = getattr(func, "__func__", func)  # a view's method is bound anew each request
        try:
            is_sync = self._is_sync.get(key)
        except TypeError:  # unhashable: ask Flask
            return super().ensure_sync(func)
        if is_sync is None:
            is_sync = not inspect.iscoroutinefunction(func)
            if len(self._is_sync) < self.MAX_REMEMBERED:
                self._is_sync[key] = is_sync
        return func if is_sync else self.async_to_sync(func)


API_DOCS = {
    "API_TITLE": "Clinic billing API",
    "API_VERSION": "v1",
    "OPENAPI_VERSION": "3.0.3",  # the vendored Swagger UI 4.15 reads OpenAPI 3.0
    "OPENAPI_URL_PREFIX": "/",
    "OPENAPI_JSON_PATH": "openapi.json",
    # /docs is billing.web.api.docs's own page (a strict CSP, no inline script).
}


def create_app(config_overrides: Mapping[str, Any] | None = None) -> Flask:
    """Build the app from the environment, with `config_overrides` on top (tests)."""
    # The instance folder (the SQLite file, the development secret key, the offline Stripe
    # stand-in's state, emails as files): `instance/` in a checkout unless set.
    chosen = os.environ.get("BILLING_INSTANCE_PATH")
    app = BillingApp(__name__, instance_path=os.path.abspath(chosen) if chosen else None)
    try:
        _configure(app, config_overrides)
    except config.ConfigError as error:
        if click.get_current_context(silent=True) is not None:  # the flask command line
            raise click.ClickException(str(error)) from None
        raise
    _configure_logging(app.config["LOG_LEVEL"])

    db.init_app(app, db.Database(app.config["DATABASE_URL"], app.config["DB_POOL_SIZE"]))
    providers.init_app(app)
    generation = Generation(app.config["CACHE_CHECK_SECONDS"])
    app.extensions["billing.cache_generation"] = generation
    app.extensions["billing.prices"] = PriceBook(app.config["PRICE_CACHE_SECONDS"], generation)
    if app.config["TRUSTED_PROXIES"]:
        proxies = app.config["TRUSTED_PROXIES"]
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=proxies, x_proto=proxies)  # type: ignore[method-assign]  # Flask's documented way
    requests.init_app(app)
    metrics.init_app(app)
    limits.init_app(app)
    auth.init_app(app)
    app.before_request(requests.check_json_body)
    api.init_app(app)
    pages.init_app(app)
    pay.init_app(app)
    finance.init_app(app)
    audit_page.init_app(app)
    books.init_app(app)
    portal.init_app(app)
    auth.check_every_route_declares(app)  # closed by default: no /v1 route left open
    problems.init_app(app)  # after the Api, so our handlers replace flask-smorest's
    cli.init_app(app)
    celery = queue.init_app(app)
    if app.config["CELERY_BROKER_URL"] or app.config.get("EMBEDDED_WORKER"):
        # Events and emails committed by a request are handed to a worker at once.
        queue.kick_after_commit(app.extensions["billing.db"].sessionmaker)
    if app.config.get("EMBEDDED_WORKER"):
        queue.run_embedded(celery, app.instance_path)
    return app


def _configure(app: Flask, overrides: Mapping[str, Any] | None) -> None:
    """The settings: the environment's, `overrides` on top; ConfigError when the service
    cannot start with them."""
    app.config.update(API_DOCS)
    app.config.update(config.from_env())
    app.config.update(overrides or {})
    app.config["CLINIC_ZONE"] = config.clinic_zone(app.config["CLINIC_TIMEZONE"])
    app.config["JOURNAL_CHART"] = config.journal_chart(app.config["JOURNAL_ACCOUNTS"])
    app.config["SCHEDULE_WINDOW"] = window = config.schedule_window(
        app.config["SCHEDULE_HOURS"], app.config["SCHEDULE_CHARGE_HOUR"]
    )
    if not window.opens <= app.config["AUTOPAY_HOUR"] < window.closes:
        raise config.ConfigError(
            f"AUTOPAY_HOUR ({app.config['AUTOPAY_HOUR']}) must lie within SCHEDULE_HOURS "
            f"({app.config['SCHEDULE_HOURS']}): nothing is charged outside them"
        )
    unsafe = config.unsafe_in_production(app.config)
    if unsafe:
        raise config.ConfigError(
            "refusing to start in production:\n" + "\n".join(f"- {line}" for line in unsafe)
        )
    if not app.config["STRIPE_SECRET_KEY"] and not app.config.get("TESTING"):
        app.config.update(config.offline_stripe(app.instance_path))
    if not app.config["SECRET_KEY"]:
        app.config["SECRET_KEY"] = _instance_secret(app)
    if not app.config["DATABASE_URL"]:
        os.makedirs(app.instance_path, exist_ok=True)
        app.config["DATABASE_URL"] = (
            f"sqlite:///{os.path.join(app.instance_path, 'billing.sqlite3')}"
        )


def _instance_secret(app: Flask) -> str:
    """Development only: a secret kept in the instance folder, made on first use."""
    path = os.path.join(app.instance_path, "secret_key")
    if not os.path.exists(path):
        os.makedirs(app.instance_path, exist_ok=True)
        with open(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "w") as handle:
            handle.write(secrets.token_urlsafe(48))
    with open(path) as handle:
        return handle.read().strip()


def _configure_logging(level: str) -> None:
    root = logging.getLogger("billing")
    root.setLevel(level.upper())
    if not root.handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(message)s"))
        root.addHandler(handler)
        root.propagate = False
