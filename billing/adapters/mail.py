"""Sending email: SMTP (`SMTP_URL`), or, with none configured, .eml files in a folder
(what `make run` does, so mail can be read without a mail server)."""

from __future__ import annotations

import logging
import smtplib
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import formatdate
from pathlib import Path
from typing import Protocol
from urllib.parse import unquote, urlsplit

log = logging.getLogger("billing.mail")
TIMEOUT_SECONDS = 10


@dataclass(frozen=True, slots=True)
class Mail:
    to: str
    subject: str
    text: str
    html: str
    message_id: str
    unsubscribe: str | None = None  # a one-click unsubscribe address (RFC 8058)


class Mailer(Protocol):
    def send(self, mail: Mail) -> None: ...


def _message(mail: Mail, sender: str) -> EmailMessage:
    message = EmailMessage()
    message["From"] = sender
    message["To"] = mail.to
    message["Subject"] = mail.subject
    message["Date"] = formatdate(localtime=False)
    message["Message-ID"] = mail.message_id  # the same on a retry: readers can drop repeats
    if mail.unsubscribe:
        message["List-Unsubscribe"] = f"<{mail.unsubscribe}>"
        message["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
    message.set_content(mail.text)
    message.add_alternative(mail.html, subtype="html")
    return message


class SmtpMailer:
    """`smtp://[user:password@]host[:port]` (plain, or STARTTLS when the server offers it),
    `smtps://...` (TLS from the start)."""

    def __init__(self, url: str, sender: str) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("smtp", "smtps") or not parts.hostname:
            raise RuntimeError(f"SMTP_URL must be smtp://host[:port] or smtps://..., got {url!r}")
        self.tls = parts.scheme == "smtps"
        self.host, self.port = parts.hostname, parts.port or (465 if self.tls else 25)
        self.user = unquote(parts.username) if parts.username else None
        self.password = unquote(parts.password) if parts.password else None
        self.sender = sender

    def send(self, mail: Mail) -> None:
        kind = smtplib.SMTP_SSL if self.tls else smtplib.SMTP
        with kind(self.host, self.port, timeout=TIMEOUT_SECONDS) as server:
            if not self.tls and server.has_extn("starttls"):
                server.starttls()
            if self.user:
                server.login(self.user, self.password or "")
            server.send_message(_message(mail, self.sender))


class FolderMailer:
    """Each email as `<message id>.eml` in `folder`, and a log line saying where."""

    def __init__(self, folder: Path, sender: str) -> None:
        self.folder, self.sender = folder, sender

    def send(self, mail: Mail) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        path = self.folder / f"{mail.message_id.strip('<>').split('@')[0]}.eml"
        path.write_bytes(bytes(_message(mail, self.sender)))
        log.info("email %s written to %s", mail.message_id, path)  # no address in logs


def mailer(smtp_url: str, sender: str, folder: Path) -> Mailer:
    return SmtpMailer(smtp_url, sender) if smtp_url else FolderMailer(folder, sender)
