"""How deliveries and emails are made, from the app's configuration (one place, so the
workers, the command line and the tests build them alike)."""

from __future__ import annotations

import os
from datetime import timedelta
from pathlib import Path
from typing import Any

from flask import Flask

from billing.adapters.mail import mailer
from billing.adapters.secrets_box import SecretBox
from billing.adapters.webhook_sender import WebhookSender, networks
from billing.config import production
from billing.services.integrations.email_content import Links
from billing.services.integrations.emails import Sending
from billing.services.integrations.webhooks import Delivering


def secret_box(config: Any) -> SecretBox:
    """Webhook signing secrets: sealed under SECRET_KEY, opened with it or a retired one."""
    return SecretBox(config["SECRET_KEY"], config.get("SECRET_KEY_FALLBACKS") or ())


def delivering(config: Any) -> Delivering:
    timeout = float(config["WEBHOOK_TIMEOUT_SECONDS"])
    return Delivering(
        sender=WebhookSender(networks(config["WEBHOOK_ALLOWED_NETWORKS"]), timeout),
        box=secret_box(config),
        retry_base_seconds=float(config["WEBHOOK_RETRY_BASE_SECONDS"]),
        retry_window=timedelta(hours=float(config["WEBHOOK_RETRY_HOURS"])),
        disable_after=timedelta(hours=float(config["WEBHOOK_DISABLE_AFTER_HOURS"])),
        lease=timedelta(seconds=timeout * 3 + 5),
    )


def can_email(config: Any) -> bool:
    """Whether an email queued now can reach a patient: it links to the pay page
    (PUBLIC_BASE_URL), and production sends it by SMTP, never into a folder."""
    by_smtp = bool(config.get("SMTP_URL")) or not production(config)
    return bool(config.get("PUBLIC_BASE_URL")) and by_smtp


def sending(app: Flask) -> Sending:
    config = app.config
    if not config["PUBLIC_BASE_URL"]:
        raise RuntimeError("Emails link to the pay page: set PUBLIC_BASE_URL to send them.")
    folder = Path(config["MAIL_DIR"] or os.path.join(app.instance_path, "mail"))
    sender = config["MAIL_FROM"] or f"{config['CLINIC_NAME']} <{config['CLINIC_EMAIL']}>"
    return Sending(
        mailer=mailer(config["SMTP_URL"], sender, folder),
        links=Links(
            base_url=config["PUBLIC_BASE_URL"],
            secret=config["SECRET_KEY"],
            ttl=timedelta(days=config["PAY_LINK_TTL_DAYS"]),
            clinic_name=config["CLINIC_NAME"],
            clinic_phone=config["CLINIC_PHONE"],
            clinic_email=config["CLINIC_EMAIL"],
            mail_domain=config["CLINIC_EMAIL"].rsplit("@", 1)[-1] or "billing.local",
        ),
        statements=config.get("STATEMENT_EMAILS", "on") == "on",
    )
