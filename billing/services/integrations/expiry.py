"""Expiry, every quarter hour: quotes that lapsed without an invoice are announced
(`quote.expired`), and a pay link that ran out stands its PaymentIntent down at Stripe
when it was the invoice's last live link, so no page left open can collect on it."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import exists, select
from sqlalchemy.orm import Session

from billing.adapters.models import Invoice, PayLink, Quote, utcnow
from billing.adapters.stripe_gateway import StripeGateway
from billing.domain import statuses
from billing.domain.errors import Conflict
from billing.services.integrations import events
from billing.services.payments.charges import cancel_online


@dataclass(frozen=True, slots=True)
class Expired:
    quotes: int
    links: int


def expire(session: Session, gateway: StripeGateway | None, batch: int = 500) -> Expired:
    now = utcnow()
    quotes = list(
        session.scalars(
            select(Quote)
            .where(Quote.expires_at < now, Quote.expired_at.is_(None))
            .with_for_update(skip_locked=True)
            .limit(batch)
        )
    )
    invoiced = set(
        session.scalars(
            select(Invoice.quote_id).where(Invoice.quote_id.in_([q.id for q in quotes]))
        )
    )
    for quote in quotes:
        quote.expired_at = now
        if quote.id not in invoiced:
            events.publish(session, "quote.expired", "quote", quote)
    links = list(
        session.scalars(
            select(PayLink)
            .where(
                PayLink.expires_at < now,
                PayLink.expired_at.is_(None),
                PayLink.revoked_at.is_(None),
            )
            .limit(batch)
        )
    )
    for link in links:
        link.expired_at = now
    session.commit()
    for invoice_id in {link.invoice_id for link in links}:
        _stand_down(session, gateway, invoice_id)
    return Expired(len(quotes) - len(invoiced), len(links))


def _stand_down(session: Session, gateway: StripeGateway | None, invoice_id: str) -> None:
    """Cancel the pay page's PaymentIntent of an open invoice with no live link left."""
    now = utcnow()
    live = session.scalar(
        select(
            exists().where(
                PayLink.invoice_id == invoice_id,
                PayLink.revoked_at.is_(None),
                PayLink.expires_at > now,
            )
        )
    )
    invoice = session.get(Invoice, invoice_id)
    session.commit()
    if live or gateway is None or invoice is None or invoice.status != statuses.OPEN:
        return
    try:
        cancel_online(session, gateway, invoice_id)
    except Conflict:
        pass  # the patient paid (or is paying) just now: nothing to stand down
