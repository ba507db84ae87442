"""Command line: `flask --app billing db upgrade | seed | keys create | keys revoke`."""

from __future__ import annotations

from datetime import timedelta

import click
from flask import Flask, current_app
from flask.cli import AppGroup, with_appcontext

from billing import auth, db, migrate, providers
from billing.errors import ServiceError
from billing.services import catalog, keys, payments

db_cli = AppGroup("db", help="Database schema (Alembic).")
keys_cli = AppGroup("keys", help="API keys for client systems.")
payments_cli = AppGroup("payments", help="Payments through Stripe.")


@db_cli.command("upgrade")
@click.argument("revision", default="head")
def db_upgrade(revision: str) -> None:
    """Migrate the database to REVISION (default: head)."""
    migrate.upgrade(current_app.config["DATABASE_URL"], revision)
    click.echo(f"database at {revision}")


@click.command("seed")
@with_appcontext
def seed() -> None:
    """Add the default price list if there is none."""
    price = catalog.seed_default(db.session())
    if price is None:
        click.echo("price list already present; nothing added")
    else:
        click.echo(
            f"added price version {price.version}: iv_individual {price.iv_individual.format()}"
        )


@keys_cli.command("create")
@click.argument("name")
@click.option("--scopes", required=True, help="Comma-separated, e.g. quotes:write,invoices:read")
def keys_create(name: str, scopes: str) -> None:
    """Create a key; it is printed once, on the last line."""
    try:
        key, plain = keys.create_key(
            db.session(), name, [s.strip() for s in scopes.split(",") if s.strip()]
        )
    except ServiceError as error:
        raise click.ClickException(error.detail) from None
    click.echo(
        f"created key {key.name!r} with scopes {key.scopes}; store it now, it is not shown again:"
    )
    click.echo(plain)


@keys_cli.command("revoke")
@click.argument("name")
def keys_revoke(name: str) -> None:
    """Revoke the key called NAME."""
    try:
        keys.revoke_key(db.session(), name)
        auth.forget_keys()
    except ServiceError as error:
        raise click.ClickException(error.detail) from None
    click.echo(f"revoked key {name!r}")


@payments_cli.command("reconcile-pending")
@click.option(
    "--older-than",
    type=int,
    default=120,
    show_default=True,
    help="Only payments idle this many seconds.",
)
def payments_reconcile_pending(older_than: int) -> None:
    """Settle payments left pending or unknown by looking their PaymentIntents up."""
    try:
        settled = payments.reconcile_pending(
            db.session(), providers.gateway(), timedelta(seconds=older_than)
        )
    except ServiceError as error:
        raise click.ClickException(error.detail) from None
    for payment in settled:
        click.echo(f"{payment.id} (invoice {payment.invoice_id}): {payment.status}")
    click.echo(f"{len(settled)} payment(s) settled")


def init_app(app: Flask) -> None:
    app.cli.add_command(db_cli)
    app.cli.add_command(keys_cli)
    app.cli.add_command(payments_cli)
    app.cli.add_command(seed)
