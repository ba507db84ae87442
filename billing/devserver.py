"""`make run`: serve the app on loopback with the embedded defaults (development only).

With no STRIPE_SECRET_KEY it also starts a local Stripe stand-in (localstripe, a dev
dependency), registers the app's webhook endpoint with it and points the app at it.
With a key set it talks to Stripe and starts nothing.
"""

from __future__ import annotations

import argparse
import atexit
import json
import logging
import os
import re
import secrets
import signal
import sys
from pathlib import Path
from typing import Any

from werkzeug.serving import run_simple

from billing import create_app
from billing.config import OFFLINE_STRIPE_FILE

# Pay links, portal sign-in links and statement unsubscribe links carry their token.
PAY_TOKEN = re.compile(r"(/pay/|/account/sign-in/|/account/unsubscribe/)[^/\s?\"]+")


class HidePayTokens(logging.Filter):
    """Werkzeug's access line prints the path: a pay link's token becomes `<token>`."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if "/pay/" in message or "/account/" in message:
            record.msg, record.args = PAY_TOKEN.sub(r"\1<token>", message), ()
        return True


def hide_pay_tokens() -> None:
    """Keep pay-link tokens out of Werkzeug's own request log, as out of the app's."""
    logger = logging.getLogger("werkzeug")
    if not any(isinstance(f, HidePayTokens) for f in logger.filters):
        logger.addFilter(HidePayTokens())


def offline_stripe(instance_path: str, port: int) -> dict[str, Any]:
    """Start the stand-in and return the settings that point the app at it."""
    from billing.adapters.standin import StripeStandIn

    Path(instance_path).mkdir(parents=True, exist_ok=True)
    standin = StripeStandIn(state_file=Path(instance_path) / "stripe-standin.pickle").start()
    webhook_secret = "whsec_offline_" + secrets.token_hex(16)
    standin.register_webhook(f"http://127.0.0.1:{port}/v1/stripe/webhooks", webhook_secret)
    print(
        f"No STRIPE_SECRET_KEY: using the local Stripe stand-in at {standin.url} "
        "(localstripe; test cards only, nothing leaves this machine).",
        flush=True,
    )
    settings = {
        "STRIPE_SECRET_KEY": "sk_test_offline",
        "STRIPE_API_BASE": standin.url,
        "STRIPE_WEBHOOK_SECRET": webhook_secret,
        "STRIPE_PUBLISHABLE_KEY": "pk_test_offline",
        "STRIPE_JS_URL": f"{standin.url}/js.stripe.com/v3/",
        "PAY_PAGE_BANK_DEBIT": True,  # the stand-in takes Stripe's test bank accounts
    }
    # So that `flask --app billing stripe sync` and friends, run beside `make run`,
    # reach the same stand-in (billing.config.offline_stripe reads it).
    share = Path(instance_path) / OFFLINE_STRIPE_FILE
    share.write_text(json.dumps({**settings, "server_pid": os.getpid()}))
    atexit.register(share.unlink, missing_ok=True)
    # A plain `kill` (SIGTERM) ends the server through sys.exit, so the file goes too.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    return settings


def local_defaults(port: int) -> dict[str, Any]:
    """What `make run` sets unless the environment says otherwise: links in emails point at
    this server, webhooks may reach a receiver on this machine, with no broker a worker
    and the scheduler run in this process, and superbills carry example identifiers."""
    defaults: dict[str, Any] = {}
    if not os.environ.get("PUBLIC_BASE_URL"):
        defaults["PUBLIC_BASE_URL"] = f"http://127.0.0.1:{port}"
    if not os.environ.get("WEBHOOK_ALLOWED_NETWORKS"):
        defaults["WEBHOOK_ALLOWED_NETWORKS"] = "127.0.0.0/8,::1/128"
    if not (os.environ.get("CELERY_BROKER_URL") or os.environ.get("REDIS_URL")):
        defaults["EMBEDDED_WORKER"] = True
    # Example identifiers for superbills on a developer's machine (CMS's sample NPI); a
    # deployment sets its own, and without them superbills are refused.
    if not os.environ.get("CLINIC_NPI"):
        defaults["CLINIC_NPI"] = "1234567893"
    if not os.environ.get("CLINIC_TIN"):
        defaults["CLINIC_TIN"] = "00-0000000"
    return defaults


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, default=int(os.environ.get("PORT", "8000")))
    args = parser.parse_args()
    # One line per request, the app's own, readable: not Werkzeug's access line beside it
    # (nor its banner: the lines below say where the server is).
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    os.environ.setdefault("LOG_FORMAT", "text")
    overrides: dict[str, Any] = {}
    if not os.environ.get("STRIPE_SECRET_KEY"):
        overrides = offline_stripe(create_app().instance_path, args.port)
    else:
        print("STRIPE_SECRET_KEY is set: talking to Stripe.", flush=True)
    overrides |= local_defaults(args.port)
    app = create_app(overrides)
    print(f"clinic billing API on http://127.0.0.1:{args.port} (docs: /docs)", flush=True)
    print(f"database: {app.config['DATABASE_URL']}", flush=True)
    if app.config.get("EMBEDDED_WORKER"):
        print("task queue: a worker and the scheduler in this process (no broker set)", flush=True)
    if not app.config["SMTP_URL"]:
        mail = app.config["MAIL_DIR"] or os.path.join(app.instance_path, "mail")
        print(f"email: no SMTP_URL, each email is written to {mail}/<id>.eml", flush=True)
    hide_pay_tokens()
    run_simple("127.0.0.1", args.port, app, threaded=True)


if __name__ == "__main__":
    main()
