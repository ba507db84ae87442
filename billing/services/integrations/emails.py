"""Emails to patients: decided in the transaction of what calls for them, sent once by a
worker, rendered when sent.

Each email has a key (`receipt:in_...`, `reminder:in_...:7`, ...) so deciding it twice
(a retried request, a webhook delivered twice, two schedulers) makes one email. What
a patient is sent says which clinic, which invoice, how much and where to pay or see the
receipt: never the kind of session, a drug or a clinician.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import exists, or_, select, update
from sqlalchemy.orm import Session

from billing.adapters.db import dialect_insert
from billing.adapters.estimate_models import BillDispute
from billing.adapters.mail import Mail, Mailer
from billing.adapters.models import Invoice, new_id, utcnow
from billing.adapters.outbox import EMAILS_QUEUED, EmailMessage
from billing.domain import statuses
from billing.services.bookings import holds
from billing.services.integrations import email_content

PUBLISHED = EMAILS_QUEUED  # session.info: tell a worker after the commit
PAY_LINK, RECEIPT, REMINDER, ACTION_NEEDED = "pay_link", "receipt", "reminder", "action_needed"
# A bank debit that failed while processing, or came back after it succeeded.
BANK_DEBIT_FAILED, BANK_DEBIT_RETURNED = "bank_debit_failed", "bank_debit_returned"
# A payment plan's instalment could not be collected, after its retries.
PLAN_PAST_DUE = "plan_past_due"
# These ask the patient to pay: pointless once the invoice is paid or void.
ASKS_TO_PAY = (
    PAY_LINK,
    REMINDER,
    ACTION_NEEDED,
    BANK_DEBIT_FAILED,
    BANK_DEBIT_RETURNED,
    PLAN_PAST_DUE,
)
LEASE = timedelta(minutes=2)
MAX_ATTEMPTS = 8


def queue(session: Session, kind: str, invoice: Invoice, key: str) -> bool:
    """In the caller's transaction: email the invoice's patient once per `key`; False when
    there is no address or it was decided before."""
    if not invoice.patient_email:
        return False
    return queue_to(session, kind, key, invoice.patient_email, invoice_id=invoice.id)


def queue_to(
    session: Session,
    kind: str,
    key: str,
    address: str,
    invoice_id: str | None = None,
    ref: str | None = None,
) -> bool:
    """In the caller's transaction: email `address` once per `key` (an email about an
    invoice, or about what `ref` names); False when it was decided before."""
    made = session.execute(
        dialect_insert(session)(EmailMessage)
        .values(
            id=new_id("em"),
            dedupe_key=key,
            kind=kind,
            invoice_id=invoice_id,
            ref=ref,
            to_address=address,
            subject="",
            text_body="",
            html_body="",
            status="pending",
            attempts=0,
            next_attempt_at=utcnow(),
            created_at=utcnow(),
        )
        .on_conflict_do_nothing(index_elements=["dedupe_key"])
        .returning(EmailMessage.id)
    ).scalar_one_or_none()
    if made is not None:
        session.info[PUBLISHED] = True
    return made is not None


def queue_reminders(
    session: Session, days: list[int], now: datetime | None = None, batch: int = 500
) -> int:
    """Remind patients of invoices open `days` after they were made (each reminder once; an
    invoice long open gets only its latest reminder, not every missed one)."""
    now = now or utcnow()
    made = 0
    for day in sorted(days, reverse=True):
        later = [d for d in days if d > day]
        newest = now - timedelta(days=day)
        disputing = exists().where(
            BillDispute.patient_id == Invoice.patient_id, BillDispute.resolved_at.is_(None)
        )
        statement = (
            select(Invoice)
            .where(
                Invoice.status.in_(statuses.PAYABLE),
                Invoice.patient_email.is_not(None),
                Invoice.created_at <= newest,
                ~disputing,  # no payment reminders while the patient disputes a bill
            )
            .order_by(Invoice.created_at, Invoice.id)
        )
        if later:  # old enough for a later reminder: that one is sent instead
            statement = statement.where(Invoice.created_at > now - timedelta(days=min(later)))
        for invoice in session.scalars(statement.limit(batch)):
            if _not_to_be_chased(session, invoice):
                continue
            made += queue(session, REMINDER, invoice, f"reminder:{invoice.id}:{day}")
    session.commit()
    return made


def _not_to_be_chased(session: Session, invoice: Invoice) -> bool:
    """An invoice its booking holds (a group below two, a cancelled place) is not to be
    paid."""
    return holds.is_held(session, invoice)


def due(session: Session, now: datetime | None = None, limit: int = 200) -> list[str]:
    """Emails waiting to be sent, or whose sender went away mid-send."""
    now = now or utcnow()
    return list(
        session.scalars(
            select(EmailMessage.id)
            .where(
                or_(
                    (EmailMessage.status == "pending") & (EmailMessage.next_attempt_at <= now),
                    (EmailMessage.status == "sending") & (EmailMessage.lease_until < now),
                )
            )
            .order_by(EmailMessage.created_at)
            .limit(limit)
        )
    )


@dataclass(frozen=True, slots=True)
class Sending:
    mailer: Mailer
    links: email_content.Links
    statements: bool = True  # STATEMENT_EMAILS: off sends none, even those queued before


def _as_sent(content: email_content.Content) -> email_content.Content:
    return content


@dataclass(frozen=True, slots=True)
class Writer:
    """How an email about no invoice is written when sent (None: no longer owed), and
    what of it is kept afterwards; the service that queues such emails registers one."""

    content: Callable[[Session, Sending, EmailMessage], email_content.Content | None]
    kept: Callable[[email_content.Content], email_content.Content] = _as_sent


WRITERS: dict[str, Writer] = {}  # kind -> its writer


def send(session: Session, sending: Sending, message_id: str) -> str:
    """Send one email if it is still owed; its status afterwards."""
    now = utcnow()
    claimed = session.execute(
        update(EmailMessage)
        .where(
            EmailMessage.id == message_id,
            or_(
                (EmailMessage.status == "pending") & (EmailMessage.next_attempt_at <= now),
                (EmailMessage.status == "sending") & (EmailMessage.lease_until < now),
            ),
        )
        .values(status="sending", lease_until=now + LEASE, attempts=EmailMessage.attempts + 1)
        .returning(EmailMessage.attempts)
    ).scalar_one_or_none()
    session.commit()
    message = session.get(EmailMessage, message_id)
    if claimed is None or message is None:
        return message.status if message else "missing"
    content = _content(session, sending, message)
    if content is None:  # paid, void or written off meanwhile; a link used; unsubscribed
        return _finish(session, message_id, "skipped")
    session.commit()  # a pay link made for it is kept, whatever the mail server says
    try:
        sending.mailer.send(
            Mail(
                to=message.to_address,
                subject=content.subject,
                text=content.text,
                html=content.html,
                message_id=f"<{message.id}@{sending.links.mail_domain}>",
                unsubscribe=content.unsubscribe,
            )
        )
    except OSError as error:
        retry = claimed < MAX_ATTEMPTS
        return _finish(
            session,
            message_id,
            "pending" if retry else "failed",
            error=f"{type(error).__name__}: {error}",
            retry_at=now + timedelta(seconds=30 * 2**claimed) if retry else None,
        )
    if message.kind in WRITERS:  # a sign-in email is kept without its link
        content = WRITERS[message.kind].kept(content)
    return _finish(session, message_id, "sent", content=content)


def _content(
    session: Session, sending: Sending, message: EmailMessage
) -> email_content.Content | None:
    """What the email says now, or None when it is no longer owed."""
    writer = WRITERS.get(message.kind)
    if writer is not None:
        return writer.content(session, sending, message)
    invoice = session.get(Invoice, message.invoice_id) if message.invoice_id else None
    settled = invoice is not None and invoice.status in (*statuses.SETTLED, *statuses.CLOSED)
    if invoice is None or (message.kind in ASKS_TO_PAY and settled):
        return None
    return email_content.render(session, sending.links, message.kind, invoice)


def _finish(
    session: Session,
    message_id: str,
    status: str,
    error: str | None = None,
    retry_at: datetime | None = None,
    content: email_content.Content | None = None,
) -> str:
    values: dict[str, object] = {"status": status, "lease_until": None, "last_error": error}
    if retry_at is not None:
        values["next_attempt_at"] = retry_at
    if status == "sent":
        values["sent_at"] = utcnow()
    if content is not None:
        values |= {"subject": content.subject, "text_body": content.text, "html_body": content.html}
    session.execute(update(EmailMessage).where(EmailMessage.id == message_id).values(**values))
    session.commit()
    return status
