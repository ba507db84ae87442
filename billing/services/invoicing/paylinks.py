"""Pay links: a signed, expiring URL that lets a patient pay exactly one invoice."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from billing.adapters.models import Invoice, PayLink, utcnow
from billing.adapters.outbox import EmailMessage
from billing.domain import paylinks, statuses
from billing.domain.errors import Conflict, NotFound, ServiceError
from billing.services import idempotency
from billing.services.access import audit
from billing.services.bookings import holds
from billing.services.idempotency import IdempotencyRequest
from billing.services.integrations import emails
from billing.services.invoicing.invoices import get_invoice


class LinkGone(ServiceError):
    """A link that was ours but no longer works (expired or revoked)."""

    status, title = 410, "Link no longer valid"


@dataclass(frozen=True, slots=True)
class IssuedLink:
    link: PayLink
    token: str
    invoice: Invoice
    emailed: bool = False


def create_pay_link(
    session: Session,
    secret: str,
    invoice_id: str,
    ttl: timedelta,
    request: IdempotencyRequest,
    email: bool = False,
    once: bool = False,
    check: Callable[[Session, Invoice], None] | None = None,
) -> IssuedLink:
    """A new link for an open invoice; a replayed Idempotency-Key returns the same link.
    With `once`, an invoice that has a link already keeps it (and its email): asked for
    by two callers at once (two keys settling one fee), it gets one. `check` may refuse a
    new link, under the invoice's lock (a replay is answered as the first time)."""
    claim = idempotency.claim(session, request, "pay_link")
    if claim.replay_of is not None:
        link = session.get(PayLink, claim.replay_of)
        assert link is not None
        session.commit()
        return _issued(session, secret, link)
    invoice = get_invoice(session, invoice_id, for_update=True)
    if invoice.status not in statuses.UNPAID:
        raise Conflict(
            "invoice_not_payable", f"Invoice {invoice.number} is {invoice.status}, not open."
        )
    holds.check_not_held(session, invoice)
    if check is not None:
        check(session, invoice)
    if once:  # under the invoice's lock: whoever came first made it
        first = session.scalars(
            select(PayLink)
            .where(PayLink.invoice_id == invoice.id)
            .order_by(PayLink.created_at, PayLink.id)
        ).first()
        if first is not None:
            idempotency.complete(session, claim, first.id)
            session.commit()
            return _issued(session, secret, first)
    now = utcnow()
    link = PayLink(invoice_id=invoice.id, created_at=now, expires_at=now + ttl)
    session.add(link)
    session.flush()
    audit.record(
        session,
        "pay_link.created",
        "pay_link",
        link.id,
        invoice_id=invoice.id,
        expires_at=link.expires_at.isoformat(),
    )
    if email:
        emails.queue(session, emails.PAY_LINK, invoice, f"pay_link:{link.id}")
    idempotency.complete(session, claim, link.id)
    session.commit()
    return _issued(session, secret, link)


def _issued(session: Session, secret: str, link: PayLink) -> IssuedLink:
    invoice = get_invoice(session, link.invoice_id)
    emailed = session.scalar(
        select(EmailMessage.id).where(EmailMessage.dedupe_key == f"pay_link:{link.id}")
    )
    token = paylinks.sign(secret, link.id, link.expires_at)
    return IssuedLink(link, token, invoice, emailed is not None)


def open_pay_link(
    session: Session, secrets: Sequence[str], token: str, now: datetime | None = None
) -> Invoice:
    """The invoice behind a token signed by one of `secrets`, or a typed error a patient
    can be shown."""
    now = now or utcnow()
    try:
        claims = paylinks.verify(secrets, token, now)
    except paylinks.ExpiredToken:
        raise LinkGone("pay_link_expired", "This payment link has expired.") from None
    except paylinks.InvalidToken:
        raise NotFound("pay_link_invalid", "This payment link is not valid.") from None
    link = session.get(PayLink, claims.link_id)
    if link is None:
        raise NotFound("pay_link_invalid", "This payment link is not valid.")
    if link.revoked_at is not None:
        raise LinkGone("pay_link_revoked", "This payment link has been withdrawn.")
    return get_invoice(session, link.invoice_id)
