"""Monthly statement emails: after a month ends, every address whose patients still owe
something gets one email saying their statement is ready, with the balance due and a link
to the portal, where the statement itemizes it. Never an amount of a single service, a
session type or anything else about treatment in the email.

One per address and month, whatever runs it (the scheduler every few hours, an operator's
`flask --app billing statements send`, both at once): each email's key is the month and the
address. It is written when sent: a balance paid meanwhile sends nothing; an address that
unsubscribed (the link in every statement email) is skipped.
"""

from __future__ import annotations

import hashlib
from datetime import date, timedelta

from itsdangerous import BadSignature, URLSafeSerializer
from sqlalchemy import select
from sqlalchemy.orm import Session

from billing.adapters.db import dialect_insert
from billing.adapters.models import Invoice, utcnow
from billing.adapters.outbox import EmailMessage
from billing.adapters.portal_models import StatementOptOut
from billing.domain import statuses
from billing.domain.dates import month_name
from billing.domain.money import Money
from billing.services.access import audit
from billing.services.integrations import email_content, emails
from billing.services.payments.account import account
from billing.services.portal.access import email_of, normalised, patients_of

KIND = "statement"
SALT = "statement-unsubscribe"


def month_before(today: date) -> date:
    """The first day of the month before `today`'s (the month a run on `today` covers)."""
    return (today.replace(day=1) - timedelta(days=1)).replace(day=1)


def queue_month(session: Session, month: date) -> int:
    """Queue the statement email of `month` (its first day) for every address with a
    balance due; how many were queued now (none twice for a month). The addresses are
    those the patients with an unpaid bill are reached at (their newest bill's)."""
    owing = session.scalars(
        select(Invoice.patient_id).where(Invoice.status.in_(statuses.UNPAID)).distinct()
    ).all()
    addresses = {normalised(a) for a in (email_of(session, p) for p in owing) if a}
    opted_out = set(session.scalars(select(StatementOptOut.email)))
    made = 0
    for address in sorted(addresses - opted_out):
        if balance_due(session, address):
            made += _queue(session, address, month)
    session.commit()
    return made


def _queue(session: Session, address: str, month: date) -> int:
    # An address may be 254 characters; the key holds 128.
    key = f"{KIND}:{month:%Y-%m}:{hashlib.sha256(address.encode()).hexdigest()}"
    return int(emails.queue_to(session, KIND, key, address, ref=f"{month:%Y-%m}"))


def balance_due(session: Session, address: str) -> list[Money]:
    """What the patients `address` reaches owe, per currency: each patient's bills less
    that patient's own credit (one child's credit does not pay a sibling's bill), only
    currencies with something owed."""
    due: dict[str, Money] = {}
    for patient_id in patients_of(session, address):
        for row in account(session, patient_id, movements=0).balances:
            currency = str(row["currency"])
            left = Money(int(str(row["balance"])), currency)
            if Money.zero(currency) < left:
                due[currency] = due.get(currency, Money.zero(currency)) + left
    return [due[currency] for currency in sorted(due)]


def unsubscribe_token(secret: str, address: str) -> str:
    return str(URLSafeSerializer(secret, salt=SALT).dumps(normalised(address)))


def address_of(keys: list[str], token: str) -> str | None:
    """The address an unsubscribe token names, if one of `keys` signed it."""
    for key in keys:
        try:
            return str(URLSafeSerializer(key, salt=SALT).loads(token[:500]))
        except BadSignature:
            continue
    return None


def opt_out(session: Session, address: str) -> None:
    """No more statement emails to `address` (asking twice is the same)."""
    session.execute(
        dialect_insert(session)(StatementOptOut)
        .values(email=normalised(address), created_at=utcnow())
        .on_conflict_do_nothing(index_elements=["email"])
    )
    audit.record(session, "statements.unsubscribed", "email", normalised(address)[:64])
    session.commit()


def opted_out(session: Session, address: str) -> bool:
    return session.get(StatementOptOut, normalised(address)) is not None


def _statement_email(
    session: Session, sending: emails.Sending, message: EmailMessage
) -> email_content.Content | None:
    """The statement email, written as it is sent: none when nothing is owed any more,
    the address unsubscribed, or STATEMENT_EMAILS is off."""
    due = balance_due(session, message.to_address)
    if not sending.statements or not due or opted_out(session, message.to_address):
        return None
    links = sending.links
    token = unsubscribe_token(links.secret, message.to_address)
    return email_content.render_statement(
        links,
        month_name(str(message.ref)),
        [money.format() for money in due],
        f"{links.base_url.rstrip('/')}/account/unsubscribe/{token}",
    )


emails.WRITERS[KIND] = emails.Writer(_statement_email)
