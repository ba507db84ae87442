"""Gift cards: sold as an invoice the buyer pays, then spent by whoever holds the code, on
any invoice, at the desk or on the pay page (payment method `gift_card`).

The code is shown once, when the card is sold; only its SHA-256 is kept. What is left on
a card is not stored but counted: its amount, less the payments it made and the refunds
of its own invoice to the buyer (those not failed). Both are counted under the lock of
the card's invoice, so of two uses of its last $50 at once one succeeds, and the buyer is
never refunded what was spent.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from billing.adapters.account_models import GiftCard
from billing.adapters.models import Invoice, Payment, utcnow
from billing.domain import policy, statuses
from billing.domain.dates import UTC_ZONE
from billing.domain.errors import Conflict, NotFound, field_error
from billing.domain.money import Money
from billing.services import idempotency
from billing.services.access import audit
from billing.services.idempotency import IdempotencyRequest
from billing.services.integrations import events
from billing.services.invoicing import invoices, ledger
from billing.services.invoicing.invoices import get_invoice

METHOD = "gift_card"
# 12 characters of 32 (no 0/O, 1/I/L): 60 bits, read aloud or typed from a card.
ALPHABET = "ABCDEFGHJKMNPQRSTUVWXYZ23456789"
GROUPS, GROUP = 3, 4


def new_code() -> str:
    """`GC-7KQ2-M9XD-4TWA`."""
    groups = ["".join(secrets.choice(ALPHABET) for _ in range(GROUP)) for _ in range(GROUPS)]
    return "GC-" + "-".join(groups)


def normalised(code: str) -> str:
    """The code as typed, without spaces, dashes, the `GC` prefix or case."""
    plain = "".join(ch for ch in code.upper() if ch.isalnum())
    return plain.removeprefix("GC")


def code_hash(code: str) -> str:
    return hashlib.sha256(normalised(code).encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class GiftCardView:
    card: GiftCard
    invoice: Invoice
    balance: int
    status: str  # awaiting_payment, active, used, expired, refunded
    code: str | None = None  # only in the answer that sold it

    def __getattr__(self, name: str) -> Any:
        """The card's own fields (id, last4, amount, ...), as the API shows them."""
        return getattr(self.card, name)


def sell(
    session: Session,
    body: dict[str, Any],
    request: IdempotencyRequest,
    now: datetime | None = None,
    zone: ZoneInfo = UTC_ZONE,
) -> GiftCardView:
    """A gift card of `amount`, and the invoice its buyer pays; the code is in this answer
    only (a replay of the request answers without it)."""
    now = now or utcnow()
    claim = idempotency.claim(session, request, "gift_card")
    if claim.replay_of is not None:
        card = session.get_one(GiftCard, claim.replay_of)
        session.commit()
        return view(session, card)
    buyer = body["purchaser_patient_id"]
    expires_at = body.get("expires_at")
    if expires_at is not None and expires_at <= now:
        raise field_error("expires_in_past", "expires_at", "A gift card must expire later.")
    code = new_code()
    amount, currency = body["amount"], body["currency"]
    shown = Money(amount, currency).format()
    invoice = invoices.sale_invoice(
        session,
        buyer,
        body,
        policy.GIFT_CARD,
        f"Gift card of {shown} ending {code[-4:]}",
        amount,
        currency,
        now,
        zone,
    )
    card = GiftCard(
        code_hash=code_hash(code),
        last4=code[-4:],
        amount=amount,
        currency=currency,
        purchaser_patient_id=buyer,
        invoice_id=invoice.id,
        expires_at=expires_at,
        created_at=now,
    )
    session.add(card)
    session.flush()
    audit.record(
        session,
        "gift_card.sold",
        "gift_card",
        card.id,
        purchaser_patient_id=buyer,
        invoice_id=invoice.id,
        amount=amount,
        currency=currency,
        last4=card.last4,
    )
    events.publish(session, "invoice.created", "invoice", invoice)
    idempotency.complete(session, claim, card.id)
    session.commit()
    found = view(session, card)
    return GiftCardView(found.card, found.invoice, found.balance, found.status, code)


def find(session: Session, code: str) -> GiftCard:
    card = session.scalar(select(GiftCard).where(GiftCard.code_hash == code_hash(code)))
    if card is None:
        raise NotFound("gift_card_not_found", "No gift card has that code.")
    return card


def of_invoice(session: Session, invoice_id: str) -> GiftCard:
    """The gift card an invoice of kind gift_card sold."""
    return session.scalars(select(GiftCard).where(GiftCard.invoice_id == invoice_id)).one()


def view(session: Session, card: GiftCard) -> GiftCardView:
    invoice = get_invoice(session, card.invoice_id)
    left = balance(session, card)
    return GiftCardView(card, invoice, left, _status(card, invoice, left))


def balance(session: Session, card: GiftCard) -> int:
    """What is left on the card: its value (once paid for: no more than its invoice still
    holds, after refunds to its buyer, those in flight too, and disputes) less what it
    paid."""
    spent = session.scalar(
        select(func.coalesce(func.sum(Payment.amount), 0)).where(
            Payment.method == METHOD,
            Payment.reference == card.id,
            Payment.status == statuses.SUCCEEDED,
        )
    )
    sold = session.scalar(select(Invoice.status).where(Invoice.id == card.invoice_id))
    value = card.amount
    if sold in statuses.SETTLED:
        value = min(value, ledger.held(session, card.invoice_id))
    return value - int(spent or 0)


def _status(card: GiftCard, invoice: Invoice, left: int) -> str:
    if invoice.status not in statuses.SETTLED:
        return "awaiting_payment"
    if invoice.status == statuses.REFUNDED or (left <= 0 and invoice.amount_refunded > 0):
        return "refunded"
    if left <= 0:
        return "used"
    if card.expires_at is not None and card.expires_at <= utcnow():
        return "expired"
    return "active"


def check_code(session: Session, code: str | None) -> None:
    """Before anything else is done for it: refuse a code no card has, or a card that
    cannot pay now (checked again under the lock when it is used)."""
    card = find(session, _given(code))
    found = view(session, card)
    session.rollback()
    _refuse(card, found.status)


def use(
    session: Session, invoice: Invoice, code: str | None, amount: int | None, owed: int
) -> tuple[GiftCard, int]:
    """In the caller's transaction, `invoice` locked: the card, and what of it pays the
    invoice now (`amount`, by default as much as it has up to `owed`), its own invoice
    locked so that no other use or refund counts the same money. Refused when the card
    cannot pay that."""
    given = _given(code)
    if invoice.kind == policy.GIFT_CARD:
        raise Conflict("gift_card_not_applicable", "A gift card cannot pay for a gift card.")
    card = find(session, given)
    if card.currency != invoice.currency:
        raise Conflict(
            "gift_card_not_applicable",
            f"The gift card is in {card.currency}; invoice {invoice.number} in {invoice.currency}.",
        )
    sold = get_invoice(session, card.invoice_id, for_update=True)
    left = balance(session, card)
    _refuse(card, _status(card, sold, left))
    if amount is None:
        return card, min(left, owed)
    if amount > left:
        raise field_error("amount_exceeds_gift_card", "amount", f"The gift card has {left} left.")
    return card, amount


def _given(code: str | None) -> str:
    if not code:
        raise field_error("code_required", "code", "Give the gift card's code.")
    return code


def _refuse(card: GiftCard, status: str) -> None:
    """409 for a card that cannot pay: not paid for, expired, or nothing left on it."""
    if status == "awaiting_payment":
        raise Conflict("gift_card_not_paid", "The gift card has not been paid for yet.")
    if status == "expired":
        raise Conflict("gift_card_expired", f"The gift card expired on {card.expires_at:%Y-%m-%d}.")
    if status in ("used", "refunded"):
        raise Conflict("gift_card_used", "Nothing is left on the gift card.")
