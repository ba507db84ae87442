"""Command line: `flask --app billing db upgrade | seed | keys create | keys revoke`."""

from __future__ import annotations

import getpass
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime, timedelta
from functools import wraps
from typing import Any, TypeVar

import click
from alembic.util import CommandError as AlembicError
from flask import Flask, current_app
from flask.cli import AppGroup, with_appcontext
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError

from billing import config
from billing.adapters import db, migrate, providers
from billing.adapters.secrets_box import UnreadableSecret
from billing.config import ConfigError
from billing.domain.dates import day_of
from billing.domain.errors import ServiceError
from billing.services.access import audit, keys, staff
from billing.services.bookings import lifecycle
from billing.services.finance import stripe_sync as stripe_sync_service
from billing.services.integrations import webhooks
from billing.services.integrations.settings import secret_box
from billing.services.payments import recovery, schedule
from billing.services.portal import statement_emails
from billing.services.pricing import catalog
from billing.web import auth


class OneLineGroup(AppGroup):
    """A group whose commands, given a wrong option or argument, say so in one line
    (with where to read more) rather than click's usage block."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except click.UsageError as error:
            if error.ctx is None:
                raise
            path = error.ctx.command_path.replace("flask ", "flask --app billing ", 1)
            raise click.UsageError(f"{error.format_message()} (see {path} --help)") from None


db_cli = OneLineGroup("db", help="Database schema (Alembic).")
keys_cli = OneLineGroup("keys", help="API keys for client systems.")
payments_cli = OneLineGroup("payments", help="Payments through Stripe.")
statements_cli = OneLineGroup("statements", help="Patients' monthly statement emails.")
schedule_cli = OneLineGroup("schedule", help="Scheduled money: payment plans and their retries.")
stripe_cli = OneLineGroup("stripe", help="Stripe's own records, for finance.")
staff_cli = OneLineGroup("staff", help="Finance staff accounts for /finance.")
webhooks_cli = OneLineGroup("webhooks", help="Webhooks to client systems.")
F = TypeVar("F", bound=Callable[..., Any])


def _login_name() -> str:
    try:
        return getpass.getuser()
    except (OSError, KeyError):  # a container user with no name
        return "unknown"


def by_operator(command: F) -> F:
    """Changes a command makes are, in the audit trail, the operator's who typed it; what
    goes wrong is one line on stderr and a non-zero exit, never a traceback."""

    @wraps(command)
    def run(*args: Any, **kwargs: Any) -> Any:
        with audit.acting(audit.Actor("operator", f"cli:{_login_name()}")), _one_line():
            return command(*args, **kwargs)

    return run  # type: ignore[return-value]  # wraps keeps the signature mypy cannot see


@contextmanager
def _one_line() -> Iterator[None]:
    """The failures an operator can mend, each said in one line."""
    try:
        yield
    except (ServiceError, UnreadableSecret, ConfigError, AlembicError) as error:
        said = error.detail if isinstance(error, ServiceError) else str(error)
        raise click.ClickException(said.strip().splitlines()[0]) from None
    except DBAPIError as error:
        where = make_url(current_app.config["DATABASE_URL"]).render_as_string(hide_password=True)
        cause = str(error.orig).strip().splitlines()[0] if error.orig else str(error)
        unmigrated = "no such table" in cause or ("relation" in cause and "does not exist" in cause)
        hint = " (not migrated? flask --app billing db upgrade)" if unmigrated else ""
        raise click.ClickException(f"the database at {where} failed: {cause}{hint}") from None


@db_cli.command("upgrade")
@click.argument("revision", default="head")
@by_operator
def db_upgrade(revision: str) -> None:
    """Migrate the database to REVISION (default: head)."""
    migrate.upgrade(current_app.config["DATABASE_URL"], revision)
    click.echo(f"database at {revision}")


@click.command("seed")
@with_appcontext
@by_operator
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
@click.option(
    "--client",
    default=None,
    help="The client system the key belongs to (default: NAME); a new key of the same "
    "client keeps what the old one made, such as its webhook endpoints.",
)
@by_operator
def keys_create(name: str, scopes: str, client: str | None) -> None:
    """Create a key; it is printed once, on the last line."""
    try:
        key, plain = keys.create_key(
            db.session(), name, [s.strip() for s in scopes.split(",") if s.strip()], client
        )
    except ServiceError as error:
        raise click.ClickException(error.detail) from None
    click.echo(
        f"created key {key.name!r} with scopes {key.scopes}; store it now, it is not shown again:"
    )
    click.echo(plain)


@keys_cli.command("revoke")
@click.argument("name")
@by_operator
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
    type=click.IntRange(min=0),
    default=120,
    show_default=True,
    help="Only payments and refunds idle this many seconds.",
)
@by_operator
def payments_reconcile_pending(older_than: int) -> None:
    """Settle payments and refunds left pending or unknown by looking them up at Stripe."""
    on_terminal = sys.stdout.isatty()

    def on_each(done: int, total: int) -> None:
        if on_terminal:  # progress for a person; nothing but the outcome in cron
            click.echo(f"\r  {done} of {total} looked up at Stripe", nl=False)

    recovered = recovery.reconcile_pending(
        db.session(), providers.gateway(), timedelta(seconds=older_than), on_each
    )
    if on_terminal and (recovered.payments or recovered.refunds or recovered.errors):
        click.echo()
    for payment in recovered.payments:
        click.echo(f"{payment.id} (invoice {payment.invoice_id}): {payment.status}")
    for refund in recovered.refunds:
        click.echo(f"{refund.id} (invoice {refund.invoice_id}, {refund.kind}): {refund.status}")
    click.echo(
        f"{len(recovered.payments)} payment(s) and {len(recovered.refunds)} refund(s) settled"
    )
    for line in recovered.waiting:
        click.echo(f"waiting: {line}")
    if recovered.errors:
        for line in recovered.errors:
            click.echo(f"not settled yet: {line}", err=True)
        raise click.ClickException(f"{len(recovered.errors)} left for the next run")


@payments_cli.command("settle-bookings")
@by_operator
def payments_settle_bookings() -> None:
    """Void or refund what cancelled places and re-quotes left behind, and collect fees."""
    settings = lifecycle.settings_from(current_app.config, providers.gateway)
    settled = lifecycle.settle_pending(db.session(), settings)
    for booking_id in settled:
        click.echo(f"settled booking {booking_id}")
    click.echo(f"{len(settled)} booking(s) settled")


class Moment(click.ParamType[datetime, str]):
    """An ISO-8601 moment (`2027-01-31T09:00:00-05:00`); one without an offset is UTC."""

    name = "ISO-8601"

    def convert(self, value: Any, param: Any, ctx: Any) -> datetime:
        if isinstance(value, datetime):
            return value
        try:
            moment = datetime.fromisoformat(str(value))
        except ValueError:
            self.fail(f"{value!r} is not an ISO-8601 date and time", param, ctx)
        return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


@schedule_cli.command("run")
@click.option(
    "--as-of",
    type=Moment(),
    help="Run what is due at this moment (default: now); safe beside beat, and twice.",
)
@by_operator
def schedule_run(as_of: datetime | None) -> None:
    """Charge the instalments (and their retries) that are due; each once."""
    if as_of is not None and as_of > datetime.now(UTC) + timedelta(minutes=1):
        if config.production(current_app.config):  # it would charge instalments early
            raise click.ClickException("--as-of must not be in the future in production")
    run = schedule.run_due(
        db.session(), providers.gateway(), as_of.astimezone(UTC) if as_of else None
    )
    click.echo(
        f"{run.charged} charged, {run.covered} covered (paid otherwise), "
        f"{run.deferred} deferred, {run.errors} not reached, "
        f"{run.opened} membership periods begun"
    )
    if run.errors:
        raise click.ClickException(f"{run.errors} left for the next run (Stripe not reached)")


class Month(click.ParamType[date, str]):
    """A month, `2026-11`."""

    name = "YYYY-MM"

    def convert(self, value: Any, param: Any, ctx: Any) -> date:
        if isinstance(value, date):
            return value
        try:
            return date.fromisoformat(f"{value}-01")
        except ValueError:
            self.fail(f"{value!r} is not a month such as 2026-11", param, ctx)


@statements_cli.command("send")
@click.option("--month", type=Month(), help="The month (default: the one before this one).")
@by_operator
def statements_send(month: date | None) -> None:
    """Email each address whose patients owe something that its statement is ready (once
    per address and month: safe beside the scheduler, and twice)."""
    if current_app.config["STATEMENT_EMAILS"] != "on":
        raise click.ClickException("STATEMENT_EMAILS is off: no statement emails are sent")
    today = day_of(datetime.now(UTC), current_app.config["CLINIC_ZONE"])
    month = month or statement_emails.month_before(today)
    queued = statement_emails.queue_month(db.session(), month)
    click.echo(f"{queued} statement emails queued for {month:%B %Y}")


@stripe_cli.command("sync")
@click.option(
    "--since",
    type=click.DateTime(formats=["%Y-%m-%d"]),
    help="Only transactions from this day (UTC) on; default: since the last sync.",
)
@by_operator
def stripe_sync(since: datetime | None) -> None:
    """Copy Stripe's balance transactions and payouts; resumes an interrupted run."""
    on_terminal = sys.stdout.isatty()

    def on_page(seen: int, added: int) -> None:
        if on_terminal:  # progress for a person; nothing but the summary in cron
            click.echo(f"\r  {seen} transactions read, {added} new", nl=False)

    try:
        result = stripe_sync_service.sync(
            db.session(),
            providers.gateway(),
            since=since.replace(tzinfo=UTC) if since else None,
            on_page=on_page,
        )
    except ServiceError as error:
        resume = (
            "" if error.code == "stripe_not_configured" else " Run the command again to resume."
        )
        raise click.ClickException(f"{error.detail}{resume}") from None
    if on_terminal:
        click.echo()
    resumed = " (resumed an interrupted run)" if result.resumed else ""
    click.echo(
        f"synced {result.seen} balance transactions, {result.added} new{resumed}; "
        f"{result.payouts} payouts, {result.payouts_linked} linked"
    )
    if result.note:
        click.echo(result.note)


@staff_cli.command("create")
@click.argument("email")
@click.password_option()
@by_operator
def staff_create(email: str, password: str) -> None:
    """Create a finance staff account (the password is asked for, twice)."""
    try:
        staff.create_staff_user(db.session(), email, password)
    except ServiceError as error:
        raise click.ClickException(error.detail) from None
    click.echo(f"created staff account {email}")


@staff_cli.command("set-password")
@click.argument("email")
@click.password_option()
@by_operator
def staff_set_password(email: str, password: str) -> None:
    """Give an account a new password; every session of it ends."""
    try:
        staff.change_password(db.session(), email, password)
    except ServiceError as error:
        raise click.ClickException(error.detail) from None
    click.echo(f"new password set for {email}; its sessions have ended")


@webhooks_cli.command("reseal")
@with_appcontext
@by_operator
def webhooks_reseal() -> None:
    """Seal every endpoint's signing secret under the current SECRET_KEY: run it after a
    rotation, before the old key is removed from SECRET_KEY_FALLBACKS."""
    try:
        count = webhooks.reseal_secrets(db.session(), secret_box(current_app.config))
    except UnreadableSecret as error:
        raise click.ClickException(str(error)) from None
    click.echo(f"sealed {count} signing secret(s) again under the current SECRET_KEY")


def init_app(app: Flask) -> None:
    app.cli.add_command(webhooks_cli)
    app.cli.add_command(db_cli)
    app.cli.add_command(keys_cli)
    app.cli.add_command(payments_cli)
    app.cli.add_command(schedule_cli)
    app.cli.add_command(statements_cli)
    app.cli.add_command(stripe_cli)
    app.cli.add_command(staff_cli)
    app.cli.add_command(seed)
