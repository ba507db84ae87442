"""Configuration from environment variables. Each one is documented in the README."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Mapping
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from billing.domain.clinical import PAYER_CLASSES, npi_problem
from billing.domain.journal import Account, chart_of_accounts
from billing.domain.money import CURRENCY_EXPONENTS
from billing.domain.schedules import Window


class ConfigError(RuntimeError):
    """A setting the service cannot start with; the message says which, and why."""


def _int(environ: Mapping[str, str], name: str, default: int) -> int:
    raw = environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError:
        raise ConfigError(f"{name} must be an integer, got {raw!r}") from None


def _float(environ: Mapping[str, str], name: str, default: float) -> float:
    raw = environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        return float(raw)
    except ValueError:
        raise ConfigError(f"{name} must be a number, got {raw!r}") from None


# Codes printed on receipts so patients can claim from an insurer or an HSA/FSA:
# the drug (HCPCS), its administration and the psychotherapy (CPT). Clinic-configurable.
DEFAULT_BILLING_CODES: dict[str, list[str]] = {
    "iv_individual": [
        "J3490 ketamine HCl",
        "96365 IV infusion, initial hour",
        "90834 psychotherapy, 45 min",
    ],
    "im_group": ["J3490 ketamine HCl", "96372 IM injection", "90853 group psychotherapy"],
}


def _days(environ: Mapping[str, str], name: str, default: list[int]) -> list[int]:
    raw = environ.get(name)
    if not raw:
        return default
    try:
        days = sorted({int(part) for part in raw.split(",") if part.strip()})
    except ValueError:
        raise ConfigError(f"{name} must be whole days, comma-separated, got {raw!r}") from None
    if not days or days[0] < 1:
        raise ConfigError(f"{name} must name days from 1 on, got {raw!r}")
    return days


def _npi(environ: Mapping[str, str], name: str) -> str:
    """An NPI whose check digit is right, or none; anything else stops the service."""
    value = environ.get(name, "").strip()
    if value and (problem := npi_problem(value)):
        raise ConfigError(f"{name}: {problem}")
    return value


def _payer_classes(environ: Mapping[str, str], name: str, default: str) -> tuple[str, ...]:
    """Comma-separated payer classes; refused at start-up when one is not known."""
    raw = environ.get(name, default)
    chosen = tuple(part.strip() for part in raw.split(",") if part.strip())
    unknown = [part for part in chosen if part not in PAYER_CLASSES]
    if unknown:
        raise ConfigError(f"{name}: unknown payer classes {unknown}; known: {PAYER_CLASSES}")
    return chosen


def _choice(environ: Mapping[str, str], name: str, choices: tuple[str, ...]) -> str:
    """One of `choices` (the first by default)."""
    raw = environ.get(name, choices[0]).strip().lower()
    if raw not in choices:
        raise ConfigError(f"{name} must be one of {', '.join(choices)}, got {raw!r}")
    return raw


def _json(environ: Mapping[str, str], name: str, default: Any) -> Any:
    raw = environ.get(name)
    if not raw:
        return default
    try:
        return json.loads(raw)
    except ValueError:
        raise ConfigError(f"{name} must be JSON, got {raw!r}") from None


def _minor_amounts(
    environ: Mapping[str, str], name: str, default: dict[str, int]
) -> dict[str, int]:
    """A JSON object of amounts per currency, each in that currency's minor unit."""
    found = _json(environ, name, default)
    if not isinstance(found, dict) or not all(
        currency in CURRENCY_EXPONENTS and type(amount) is int and amount > 0
        for currency, amount in found.items()
    ):
        raise ConfigError(
            f"{name} must be a JSON object of positive whole amounts in each currency's minor"
            f' unit, such as {{"usd": 5000}}; got {environ.get(name)!r}'
        )
    return found


# Written by `make run` when it starts the local Stripe stand-in (development only).
OFFLINE_STRIPE_FILE = "offline-stripe.json"


def offline_stripe(instance_path: str) -> dict[str, Any]:
    """The running stand-in's settings, when `make run` has one up; else nothing.

    A file left behind by a `make run` that was killed is removed, with a word on stderr,
    rather than pointing commands at a stand-in that is gone.
    """
    path = os.path.join(instance_path, OFFLINE_STRIPE_FILE)
    try:
        with open(path) as handle:
            settings: dict[str, Any] = json.load(handle)
    except (OSError, ValueError):
        return {}
    server = settings.pop("server_pid", None)
    if not isinstance(server, int) or not _alive(server):
        os.remove(path)
        sys.stderr.write(
            f"{path} was left by a `make run` that has stopped; removed it. "
            "Start `make run` again to use the local Stripe stand-in.\n"
        )
        return {}
    return settings


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, but another user's
        return True
    return True


def clinic_zone(name: str) -> ZoneInfo:
    """The clinic's time zone by its IANA name; an unknown name stops the service at start."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):  # unknown, malformed, unreadable
        raise ConfigError(
            f"CLINIC_TIMEZONE must be an IANA time zone name such as America/Los_Angeles, "
            f"got {name!r}"
        ) from None


def schedule_window(hours: str, charge_hour: int) -> Window:
    """SCHEDULE_HOURS (`8-21`) and SCHEDULE_CHARGE_HOUR as the hours scheduled charges keep."""
    try:
        opens, closes = (int(part) for part in hours.split("-"))
        return Window(opens=opens, closes=closes, charge_hour=charge_hour)
    except ValueError:
        raise ConfigError(
            f"SCHEDULE_HOURS must be two hours like 8-21 around SCHEDULE_CHARGE_HOUR "
            f"({charge_hour}), got {hours!r}"
        ) from None


def journal_chart(overrides: Any) -> dict[str, Account]:
    """The journal's accounts; a wrong JOURNAL_ACCOUNTS stops the service at start."""
    try:
        return chart_of_accounts(overrides)
    except ValueError as error:
        raise ConfigError(f"JOURNAL_ACCOUNTS: {error}") from None


def normalise_database_url(url: str) -> str:
    """Use the psycopg 3 driver for plain postgres URLs."""
    for prefix in ("postgres://", "postgresql://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


# SECRET_KEYs seen in examples and tutorials: whoever read them could forge sessions.
EXAMPLE_SECRETS = frozenset(
    {"change-me", "changeme", "secret", "secret-key", "dev", "development", "test", "example"}
)
MIN_SECRET_BYTES = 32


def production(config: Mapping[str, Any]) -> bool:
    """BILLING_ENV=production, or a live Stripe key (which is only ever production)."""
    return config.get("BILLING_ENV") == "production" or str(
        config.get("STRIPE_SECRET_KEY", "")
    ).startswith(("sk_live_", "rk_live_"))


def unsafe_in_production(config: Mapping[str, Any]) -> list[str]:
    """What stops the service from starting in production: one line per problem."""
    if not production(config):
        return []
    problems = []
    secret = str(config.get("SECRET_KEY") or "")
    if len(secret.encode()) < MIN_SECRET_BYTES or secret.lower() in EXAMPLE_SECRETS:
        problems.append(
            f"SECRET_KEY must be at least {MIN_SECRET_BYTES} random bytes, not an example "
            '(e.g. SECRET_KEY="$(openssl rand -base64 48)").'
        )
    for retired in config.get("SECRET_KEY_FALLBACKS") or ():
        # A retired key still opens sessions and pay links: as strong as the key, or out.
        if len(str(retired).encode()) < MIN_SECRET_BYTES or str(retired).lower() in EXAMPLE_SECRETS:
            problems.append(
                f"SECRET_KEY_FALLBACKS holds a key under {MIN_SECRET_BYTES} bytes or an example:"
                " a retired key still signs in, so it must be as strong as SECRET_KEY."
            )
            break
    if not config.get("STRIPE_SECRET_KEY"):
        problems.append("STRIPE_SECRET_KEY is not set: payments cannot be taken.")
    if not config.get("STRIPE_WEBHOOK_SECRET"):
        problems.append("STRIPE_WEBHOOK_SECRET is not set: Stripe's webhooks cannot be verified.")
    base = str(config.get("PUBLIC_BASE_URL") or "")
    if not base.startswith("https://"):
        problems.append(
            "PUBLIC_BASE_URL must be the service's https:// address: pay links and emails "
            "are built from it, never from a request's Host header."
        )
    url = str(config.get("DATABASE_URL") or "")
    if not url or url.startswith("sqlite"):
        problems.append("DATABASE_URL must point at PostgreSQL: SQLite is for development.")
    return problems


def from_env(environ: Mapping[str, str] | None = None) -> dict[str, Any]:
    """The app's settings, read from the environment with their defaults."""
    env = os.environ if environ is None else environ
    database_url = env.get("DATABASE_URL", "")
    return {
        # "production" refuses unsafe settings at start (a live Stripe key implies it).
        "BILLING_ENV": env.get("BILLING_ENV", "development").strip().lower(),
        # Empty means the embedded default: SQLite in the app's instance folder.
        "DATABASE_URL": normalise_database_url(database_url) if database_url else "",
        "QUOTE_TTL_HOURS": _int(env, "QUOTE_TTL_HOURS", 24),
        "MAX_CONTENT_LENGTH": _int(env, "MAX_BODY_BYTES", 64 * 1024),
        "DB_POOL_SIZE": _int(env, "DB_POOL_SIZE", 5),
        "AUTH_CACHE_SECONDS": _float(env, "AUTH_CACHE_SECONDS", 5.0),
        "PRICE_CACHE_SECONDS": _float(env, "PRICE_CACHE_SECONDS", 5.0),
        # How often each process checks whether keys or prices changed elsewhere.
        "CACHE_CHECK_SECONDS": _float(env, "CACHE_CHECK_SECONDS", 0.5),
        "LOG_LEVEL": env.get("LOG_LEVEL", "INFO"),
        # `json`: one JSON object per line (production); `text`: a line a person reads.
        "LOG_FORMAT": env.get("LOG_FORMAT", "json").strip().lower(),
        "CLINIC_NAME": env.get("CLINIC_NAME", "Example Clinic"),
        # Whose calendar reports, the dashboard and invoice years follow; storage stays UTC.
        "CLINIC_TIMEZONE": env.get("CLINIC_TIMEZONE") or "UTC",
        # How patients reach the clinic: shown on every pay page that cannot take a payment.
        "CLINIC_PHONE": env.get("CLINIC_PHONE", "(555) 010-0100"),
        "CLINIC_EMAIL": env.get("CLINIC_EMAIL", "billing@example-clinic.com"),
        "STRIPE_SECRET_KEY": env.get("STRIPE_SECRET_KEY", ""),
        "STRIPE_WEBHOOK_SECRET": env.get("STRIPE_WEBHOOK_SECRET", ""),
        "STRIPE_API_BASE": env.get("STRIPE_API_BASE", ""),
        # The Stripe API version every request names; empty: the version the installed
        # stripe-python was generated for (its types describe that version's requests).
        "STRIPE_API_VERSION": env.get("STRIPE_API_VERSION", ""),
        "STRIPE_TIMEOUT_SECONDS": _float(env, "STRIPE_TIMEOUT_SECONDS", 10.0),
        "STRIPE_MAX_NETWORK_RETRIES": _int(env, "STRIPE_MAX_NETWORK_RETRIES", 2),
        "STRIPE_PUBLISHABLE_KEY": env.get("STRIPE_PUBLISHABLE_KEY", ""),
        "STRIPE_JS_URL": env.get("STRIPE_JS_URL", "https://js.stripe.com/v3/"),
        # Signs pay links; empty means a key kept in the instance folder (development).
        "SECRET_KEY": env.get("SECRET_KEY", ""),
        # Retired SECRET_KEYs, comma-separated: pay links and finance sessions they signed
        # still open (Flask reads the same setting for its session cookie).
        "SECRET_KEY_FALLBACKS": [
            key.strip() for key in env.get("SECRET_KEY_FALLBACKS", "").split(",") if key.strip()
        ],
        "PAY_LINK_TTL_DAYS": _int(env, "PAY_LINK_TTL_DAYS", 7),
        "PAY_RATE_LIMIT_PER_MINUTE": _int(env, "PAY_RATE_LIMIT_PER_MINUTE", 60),
        # Shared state of several instances (rate-limit counters); empty: this process only.
        "REDIS_URL": env.get("REDIS_URL", ""),
        # The task queue's broker: Redis in production; empty: `make run`'s in-process one.
        "CELERY_BROKER_URL": env.get("CELERY_BROKER_URL", "") or env.get("REDIS_URL", ""),
        "TASK_QUEUE": env.get("TASK_QUEUE", "billing"),
        "SWEEP_SECONDS": _float(env, "SWEEP_SECONDS", 5.0),
        # Webhooks to client systems.
        "WEBHOOK_RETRY_BASE_SECONDS": _float(env, "WEBHOOK_RETRY_BASE_SECONDS", 60.0),
        "WEBHOOK_RETRY_HOURS": _float(env, "WEBHOOK_RETRY_HOURS", 72.0),
        "WEBHOOK_DISABLE_AFTER_HOURS": _float(env, "WEBHOOK_DISABLE_AFTER_HOURS", 72.0),
        "WEBHOOK_TIMEOUT_SECONDS": _float(env, "WEBHOOK_TIMEOUT_SECONDS", 10.0),
        "WEBHOOK_ALLOWED_NETWORKS": env.get("WEBHOOK_ALLOWED_NETWORKS", ""),
        # Email to patients.
        "SMTP_URL": env.get("SMTP_URL", ""),
        "MAIL_FROM": env.get("MAIL_FROM", ""),
        "MAIL_DIR": env.get("MAIL_DIR", ""),
        "REMINDER_DAYS": _days(env, "REMINDER_DAYS", [3, 7, 14]),
        # After each month: an email to every address whose patients owe something, saying
        # their statement is ready (`off`: none; patients can also unsubscribe).
        "STATEMENT_EMAILS": _choice(env, "STATEMENT_EMAILS", ("on", "off")),
        # Scheduled money (payment plans): the hours of the clinic's clock within which
        # cards are charged (`8-21`: from 8:00 to 21:00), the hour a due day is charged,
        # and the days after a first decline on which a decline worth retrying is retried.
        "SCHEDULE_HOURS": env.get("SCHEDULE_HOURS", "8-21"),
        "SCHEDULE_CHARGE_HOUR": _int(env, "SCHEDULE_CHARGE_HOUR", 9),
        "SCHEDULE_RETRY_DAYS": _days(env, "SCHEDULE_RETRY_DAYS", [1, 3, 5, 7]),
        # AutoPay: `on` charges every patient's open balances to a card they saved with
        # consent (unless they turned it off), when attendance is marked and nightly at
        # AUTOPAY_HOUR of the clinic's clock; `off`: only patients who turned it on.
        "AUTOPAY": _choice(env, "AUTOPAY", ("off", "on")),
        "AUTOPAY_HOUR": _int(env, "AUTOPAY_HOUR", 20),
        # A package paid by a payment plan: its credits usable once it is all paid
        # (`when_paid`), at once (`at_once`), or in proportion to what is paid (`as_paid`).
        "PLAN_PACKAGE_CREDITS": _choice(
            env, "PLAN_PACKAGE_CREDITS", ("when_paid", "at_once", "as_paid")
        ),
        # Memberships: `off` charges the whole fee each period from the day a membership
        # started (anniversary periods), and cancelling now refunds nothing by default;
        # `on` runs periods from the 1st of the month (1 January for yearly ones), charges a
        # first shorter period for its days only, and refunds a cancelled period's unused
        # days by default. A membership keeps the setting it was made under.
        "MEMBERSHIP_PRORATION": _choice(env, "MEMBERSHIP_PRORATION", ("off", "on")),
        "RATE_LIMIT_KEY_PREFIX": env.get("RATE_LIMIT_KEY_PREFIX", "billing"),
        "API_RATE_LIMIT": env.get("API_RATE_LIMIT", "600 per minute"),
        # Unknown API keys and wrong /metrics tokens, per client address.
        "AUTH_FAILURE_LIMIT": env.get("AUTH_FAILURE_LIMIT", "30 per minute"),
        "LOGIN_RATE_LIMIT": env.get("LOGIN_RATE_LIMIT", "10 per minute"),
        "LOGIN_ACCOUNT_LIMIT": env.get("LOGIN_ACCOUNT_LIMIT", "10 per hour"),
        # /metrics answers only `Authorization: Bearer <METRICS_TOKEN>`; empty: no /metrics.
        "METRICS_TOKEN": env.get("METRICS_TOKEN", ""),
        # PostgreSQL writes the reconciliation report's JSON and CSV itself; "false" keeps
        # the portable path (for comparison: the results are the same).
        "REPORTS_IN_DATABASE": env.get("REPORTS_IN_DATABASE", "true").lower() != "false",
        # Behind a load balancer: how many proxies' X-Forwarded-For entries to trust.
        "TRUSTED_PROXIES": _int(env, "TRUSTED_PROXIES", 0),
        "PUBLIC_BASE_URL": env.get("PUBLIC_BASE_URL", ""),
        # The finance dashboard's session cookie: Secure unless turned off for plain HTTP.
        "FINANCE_COOKIE_SECURE": env.get("FINANCE_COOKIE_SECURE", "true").lower() != "false",
        # A finance session ends after this long without a page view (and 12 hours after
        # sign-in, however busy).
        "FINANCE_IDLE_MINUTES": _int(env, "FINANCE_IDLE_MINUTES", 30),
        # The patient portal (/account): a sign-in link a patient asks for works once,
        # within PORTAL_LINK_MINUTES, in the browser that asked; one staff send, within
        # PORTAL_INVITE_HOURS. A session ends after PORTAL_IDLE_MINUTES without a page, and
        # PORTAL_SESSION_HOURS after sign-in. Its cookie is Secure unless turned off.
        "PORTAL_LINK_MINUTES": _int(env, "PORTAL_LINK_MINUTES", 15),
        "PORTAL_INVITE_HOURS": _int(env, "PORTAL_INVITE_HOURS", 24),
        "PORTAL_IDLE_MINUTES": _int(env, "PORTAL_IDLE_MINUTES", 60),
        "PORTAL_SESSION_HOURS": _int(env, "PORTAL_SESSION_HOURS", 12),
        "PORTAL_COOKIE_SECURE": env.get("PORTAL_COOKIE_SECURE", "true").lower() != "false",
        # Sign-in links asked for, per client address and per email address.
        "PORTAL_ADDRESS_LIMIT": env.get("PORTAL_ADDRESS_LIMIT", "10 per hour"),
        "PORTAL_EMAIL_LIMIT": env.get("PORTAL_EMAIL_LIMIT", "5 per hour"),
        "CLINIC_ADDRESS": env.get("CLINIC_ADDRESS", "100 Main Street, Springfield, CA 90000"),
        "CLINIC_TAX_ID": env.get("CLINIC_TAX_ID", "EIN 00-0000000"),
        "BILLING_CODES": _json(env, "BILLING_CODES", DEFAULT_BILLING_CODES),
        # The clinic as billing provider on superbills and claims: its NPI (type 2), tax
        # id (EIN) and taxonomy code. Superbills are refused while NPI or TIN is unset.
        "CLINIC_NPI": _npi(env, "CLINIC_NPI"),
        "CLINIC_TIN": env.get("CLINIC_TIN", ""),
        "CLINIC_TAXONOMY": env.get("CLINIC_TAXONOMY", "2084P0800X"),
        # Per session type: the place of service (11, the office, by default) and per
        # billing code its units, modifiers and share of the charge on a superbill.
        "SUPERBILL_LINES": _json(env, "SUPERBILL_LINES", {}),
        # Payer classes never charged a missed-appointment or late-cancellation fee
        # (Medicaid: 42 CFR 447.15), comma-separated; the exemption is recorded on the
        # booking's place.
        "FEE_EXEMPT_PAYER_CLASSES": _payer_classes(env, "FEE_EXEMPT_PAYER_CLASSES", "medicaid"),
        # The largest sliding-scale discount staff may approve on a line, in per cent.
        "MAX_DISCOUNT_PERCENT": _int(env, "MAX_DISCOUNT_PERCENT", 50),
        # A bill this far above a Good Faith Estimate may be disputed, per currency in its
        # minor unit; a currency not named: 400 of its major units.
        "ESTIMATE_DISPUTE_THRESHOLDS": _json(env, "ESTIMATE_DISPUTE_THRESHOLDS", {"usd": 40000}),
        # The least a patient may choose to pay at a time on the pay page, per currency in
        # its minor unit; in a currency not named the page takes the whole balance only.
        "PAY_PAGE_MINIMUMS": _minor_amounts(env, "PAY_PAGE_MINIMUMS", {"usd": 5000}),
        # Money paid beyond what an invoice owes (paid twice, paid after it was void, a
        # credit note on a paid bill): kept as the patient's credit, which pays their next
        # bills, or refunded to the card (money received at the desk is kept as credit).
        "OVERPAYMENTS": _choice(env, "OVERPAYMENTS", ("credit", "refund")),
        # The pay page also offers a US bank account (ACH Direct Debit) on invoices in US
        # dollars: turn on once ACH is activated on the Stripe account (Stripe refuses a
        # PaymentIntent naming a payment method type the account has not activated).
        "PAY_PAGE_BANK_DEBIT": _choice(env, "PAY_PAGE_BANK_DEBIT", ("off", "on")) == "on",
        # The accounting journal's accounts: names (QuickBooks) and codes (Xero) per key,
        # over the defaults of billing/domain/journal.py.
        "JOURNAL_ACCOUNTS": _json(env, "JOURNAL_ACCOUNTS", {}),
    }
