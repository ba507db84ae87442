"""A patient's account: credit (money that is theirs and owed to no invoice) per currency,
and what they owe.

Credit comes from money paid beyond what an invoice owes (a pay page and the desk that
both collected, a payment on a void invoice, a credit note on a paid bill), when the
clinic keeps overpayments as credit (`OVERPAYMENTS=credit`, the default; `refund` sends
card money back instead). It moves out of the invoice in the ledger (`to_credit`) and into
the account in the same transaction; it is then applied to the patient's oldest open
invoices in that currency, and staff may apply it to any (payment method
`account_credit`), which moves it into that invoice (`from_credit`). Taking credit is one
UPDATE that asks for at least as much as it takes, so it never goes below zero and two
applications of the last of it give one success, on PostgreSQL and SQLite alike.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from flask import current_app, has_app_context
from sqlalchemy import case, func, select, update
from sqlalchemy.orm import Session

from billing.adapters.account_models import AccountBalance, AccountMovement, BalanceShare
from billing.adapters.db import dialect_insert
from billing.adapters.membership_models import Membership
from billing.adapters.models import Invoice, LedgerEntry, Payment, Refund, new_id, utcnow
from billing.adapters.stripe_gateway import StripeGateway
from billing.domain import statuses
from billing.domain.errors import Conflict, field_error
from billing.domain.money import STRIPE_MINIMUM_CHARGE, Money
from billing.services import idempotency
from billing.services.access import audit
from billing.services.idempotency import IdempotencyRequest
from billing.services.invoicing import ledger
from billing.services.invoicing.invoices import get_invoice
from billing.services.payments import credit_requests, overpayments, refunds

CREDIT = "credit"  # OVERPAYMENTS: keep money paid beyond an invoice (or `refund` it)
# Movements: into the account from an invoice, out of it into one.
OVERPAYMENT, CREDIT_NOTE, APPLIED = "overpayment", "credit_note", "applied"
TAKEN_BACK = "taken_back"  # credit from money that never arrived (a check that bounced)
GOODWILL = "goodwill"  # credit staff granted (a long wait, a service recovery): no money


def keeps_overpayments() -> bool:
    """Whether money paid beyond an invoice stays with the patient as credit (the
    clinic's OVERPAYMENTS setting; `credit` outside an app too)."""
    if not has_app_context():
        return True
    return bool(current_app.config.get("OVERPAYMENTS", CREDIT) == CREDIT)


def credit_of(session: Session, patient_id: str, currency: str) -> int:
    found = session.scalar(
        select(AccountBalance.credit).where(
            AccountBalance.patient_id == patient_id, AccountBalance.currency == currency
        )
    )
    return int(found or 0)


def card_credit_of(session: Session, patient_id: str, currency: str) -> int:
    """The patient's credit that card money paid: all of it but the goodwill."""
    found = session.execute(
        select(AccountBalance.credit, AccountBalance.goodwill).where(
            AccountBalance.patient_id == patient_id, AccountBalance.currency == currency
        )
    ).first()
    return max(0, int(found[0]) - int(found[1])) if found is not None else 0


def _movement(
    invoice: Invoice | None,
    amount: int,
    kind: str,
    note: str,
    payment_id: str | None = None,
    adjustment_id: str | None = None,
    refund_id: str | None = None,
    patient: tuple[str, str] | None = None,
    approved_by: str | None = None,
) -> AccountMovement:
    """One signed change of the invoice's patient's credit, naming what caused it; or,
    caused by no invoice (goodwill), of the `patient` (id, currency)."""
    if patient is None:
        assert invoice is not None, "a movement names its invoice, or else its patient"
        patient = (invoice.patient_id, invoice.currency)
    patient_id, currency = patient
    return AccountMovement(
        id=new_id("mv"),
        patient_id=patient_id,
        currency=currency,
        amount=amount,
        kind=kind,
        invoice_id=invoice.id if invoice is not None else None,
        approved_by=approved_by,
        payment_id=payment_id,
        adjustment_id=adjustment_id,
        refund_id=refund_id,
        note=note[:500],
        created_at=utcnow(),
    )


def move_to_credit(
    session: Session,
    invoice: Invoice,
    amount: int,
    kind: str,
    note: str,
    payment_id: str | None = None,
    adjustment_id: str | None = None,
    refund_id: str | None = None,
) -> AccountMovement:
    """In the caller's transaction (the invoice locked): `amount` of what was paid on the
    invoice leaves it (ledger `to_credit`) and becomes the patient's credit. As much of it
    as the patient's credit had paid on the invoice goes back as credit no card paid
    (credit paid there may have been goodwill), never refunded to a card; a refund of
    credit that failed (`restored`) comes back as it was."""
    movement = _movement(invoice, amount, kind, note, payment_id, adjustment_id, refund_id)
    session.add(movement)
    kept = 0 if kind == RESTORED else min(amount, credit_paid(session, invoice.id))
    _add_credit(session, invoice.patient_id, invoice.currency, amount, kept)
    ledger.record(session, invoice, ledger.TO_CREDIT, amount, movement.id)
    audit.record(
        session,
        "credit.added",
        "patient",
        invoice.patient_id,
        amount=amount,
        currency=invoice.currency,
        invoice_id=invoice.id,
        kind=kind,
        movement_id=movement.id,
    )
    return movement


def grant_goodwill(
    session: Session,
    patient_id: str,
    currency: str,
    amount: int,
    reason: str,
    approved_by: str,
    request: IdempotencyRequest,
) -> AccountMovement:
    """Credit that staff grant a patient (a service recovery), with its reason and who
    approved it: it pays their next bills like any credit, is never refunded to a card
    (no money paid it), and the journal posts it as a cost (Goodwill Credits) owed to the
    patient (Patient Credit Balances)."""
    claim = idempotency.claim(session, request, "goodwill")
    if claim.replay_of is not None:
        session.commit()
        return session.get_one(AccountMovement, claim.replay_of)
    known = session.scalar(
        select(Invoice.id).where(Invoice.patient_id == patient_id, Invoice.currency == currency)
    )
    if known is None:
        raise Conflict(
            "patient_not_billed",
            f"Patient {patient_id} has no invoice in {currency.upper()}: goodwill credit is "
            "for patients the clinic bills in that currency.",
        )
    movement = _movement(
        None,
        amount,
        GOODWILL,
        reason,
        patient=(patient_id, currency),
        approved_by=approved_by[:200],
    )
    session.add(movement)
    _add_credit(session, patient_id, currency, amount, kept=amount)
    audit.record(
        session,
        "credit.granted",
        "patient",
        patient_id,
        amount=amount,
        currency=currency,
        movement_id=movement.id,
        reason=reason,
        approved_by=approved_by,
    )
    idempotency.complete(session, claim, movement.id)
    session.commit()
    return movement


def _add_credit(
    session: Session, patient_id: str, currency: str, amount: int, kept: int = 0
) -> None:
    """`amount` more of the patient's credit in `currency` (its row made on first use), of
    which `kept` is never refunded to a card (no card paid it)."""
    insert = dialect_insert(session)
    session.execute(
        insert(AccountBalance)
        .values(
            patient_id=patient_id,
            currency=currency,
            credit=amount,
            goodwill=kept,
            updated_at=utcnow(),
        )
        .on_conflict_do_update(
            index_elements=["patient_id", "currency"],
            set_={
                "credit": AccountBalance.credit + amount,
                "goodwill": AccountBalance.goodwill + kept,
                "updated_at": utcnow(),
            },
        )
    )


def credit_paid(session: Session, invoice_id: str) -> int:
    """What the patient's credit paid on the invoice that may have been goodwill: all the
    credit paid there, less the shares of payments of the balance (card money that went
    through credit on its way from the first bill to this one)."""
    paid = session.scalar(
        select(func.coalesce(func.sum(LedgerEntry.amount), 0)).where(
            LedgerEntry.invoice_id == invoice_id, LedgerEntry.kind == ledger.FROM_CREDIT
        )
    )
    shared = session.scalar(
        select(func.coalesce(func.sum(BalanceShare.applied), 0)).where(
            BalanceShare.invoice_id == invoice_id, BalanceShare.position > 0
        )
    )
    return max(0, int(paid or 0) - int(shared or 0))


def keep_excess(session: Session, invoice: Invoice, payment: Payment) -> int:
    """After `payment`'s money reached the ledger (the invoice locked): what it collected
    beyond what the invoice owes becomes the patient's credit. How much moved."""
    amount = min(overpayments.excess(session, invoice).amount, payment.amount)
    if amount <= 0:
        return 0
    move_to_credit(
        session,
        invoice,
        amount,
        OVERPAYMENT,
        f"Paid beyond invoice {invoice.number} ({invoice.status}); kept as credit.",
        payment_id=payment.id,
    )
    return amount


def keep_what_a_void_invoice_holds(session: Session, invoice: Invoice) -> int:
    """In the caller's transaction, as the invoice is voided: what it still holds becomes
    the patient's credit: all of it when the clinic keeps overpayments as credit, else
    what credit and gift cards paid (cash is then given back by hand). How much."""
    held = ledger.held(session, invoice.id)  # Stripe's part was refunded before a void
    if not keeps_overpayments():
        not_cash = session.scalar(
            select(func.coalesce(func.sum(LedgerEntry.amount), 0)).where(
                LedgerEntry.invoice_id == invoice.id,
                LedgerEntry.kind.in_((ledger.FROM_CREDIT, ledger.GIFT_CARD)),
            )
        )
        held = min(held, int(not_cash or 0))
    if held <= 0:
        return 0
    move_to_credit(
        session,
        invoice,
        held,
        OVERPAYMENT,
        f"Paid on invoice {invoice.number}, which was cancelled; kept as credit.",
    )
    return held


def take_back(session: Session, invoice: Invoice, payment_id: str) -> int:
    """In the caller's transaction, after a reversal (a check that bounced) left the
    invoice holding less than nothing, because what the check paid had already become
    the patient's credit: that credit is taken back into the invoice, as much as is left
    of it. What could not be (already spent) is in the audit trail for finance; how much."""
    short = -ledger.held(session, invoice.id)
    if short <= 0:
        return 0
    back = min(short, credit_of(session, invoice.patient_id, invoice.currency))
    if back > 0 and take(session, invoice.patient_id, invoice.currency, back):
        movement = _movement(
            invoice,
            -back,
            TAKEN_BACK,
            f"Payment {payment_id} on invoice {invoice.number} never arrived.",
            payment_id=payment_id,
        )
        session.add(movement)
        ledger.record(session, invoice, ledger.FROM_CREDIT, back, movement.id)
        short -= back
    if short > 0:
        audit.record(
            session,
            "credit.short",
            "patient",
            invoice.patient_id,
            amount=short,
            currency=invoice.currency,
            invoice_id=invoice.id,
            payment_id=payment_id,
            reason="the credit it became was spent before the payment was reversed",
        )
    return short


def take(
    session: Session, patient_id: str, currency: str, amount: int, for_a_card: bool = False
) -> bool:
    """Take `amount` of the patient's credit, if they have that much: one conditional
    UPDATE, so two takers of the last of it cannot both succeed. Bills spend the credit
    no card paid (goodwill) first; a refund to a card (`for_a_card`) takes only the rest."""
    balance = AccountBalance
    enough = balance.credit - balance.goodwill if for_a_card else balance.credit
    goodwill_left = (
        balance.goodwill
        if for_a_card
        else case((balance.goodwill > amount, balance.goodwill - amount), else_=0)
    )
    taken = session.execute(
        update(balance)
        .where(balance.patient_id == patient_id, balance.currency == currency, enough >= amount)
        .values(credit=balance.credit - amount, goodwill=goodwill_left, updated_at=utcnow())
        .returning(balance.patient_id)
    ).scalar_one_or_none()
    return taken is not None


def use_credit(
    session: Session,
    invoice: Invoice,
    amount: int | None,
    collectable: int,
    card_money: bool = False,
) -> int:
    """In the caller's transaction, under the invoice's lock: take what of the patient's
    credit pays the invoice now (`amount`, by default as much as it and `collectable`
    allow); with `card_money`, of the part a card paid only (a payment of several bills
    on its way from the first to the next), leaving goodwill as it was. Refused when
    there is none, or less than asked."""
    credit = credit_of(session, invoice.patient_id, invoice.currency)
    if credit <= 0:
        raise Conflict(
            "no_credit", f"Patient {invoice.patient_id} has no credit in {invoice.currency}."
        )
    if amount is None:
        amount = min(credit, collectable)
    if amount > credit:
        raise field_error(
            "amount_exceeds_credit",
            "amount",
            f"Patient {invoice.patient_id} has {credit} {invoice.currency} of credit.",
        )
    if not take(session, invoice.patient_id, invoice.currency, amount, for_a_card=card_money):
        raise Conflict("no_credit", "The patient's credit was used meanwhile; ask again.")
    return amount


def record_applied(session: Session, invoice: Invoice, payment: Payment) -> None:
    """The movement out of the account for a payment of method `account_credit`."""
    note = f"Applied to invoice {invoice.number}."
    session.add(_movement(invoice, -payment.amount, APPLIED, note, payment_id=payment.id))


def automatic_part(collectable: int, credit: int, currency: str) -> int:
    """What credit pays of `collectable` on its own: all it can, but never leaving less
    owed than a card can pay (Stripe's minimum) unless it leaves nothing."""
    amount = min(collectable, credit)
    least = STRIPE_MINIMUM_CHARGE.get(currency, 0)
    if 0 < collectable - amount < least:
        amount = collectable - least
    return max(amount, 0)


@dataclass(frozen=True, slots=True)
class AccountView:
    patient_id: str
    balances: list[dict[str, object]]
    open_invoices: list[Invoice]
    movements: list[AccountMovement]
    memberships: list[Membership]


def account(session: Session, patient_id: str, movements: int = 100) -> AccountView:
    """What the patient owes and holds, per currency: open invoices with their balance
    due, credit, the latest movements of credit (newest first), and the memberships not
    cancelled."""
    invoices = session.scalars(
        select(Invoice)
        .where(
            Invoice.patient_id == patient_id,
            Invoice.status.in_(statuses.UNPAID),
        )
        .order_by(Invoice.scheduled_at, Invoice.created_at)
    ).all()
    credits = session.scalars(
        select(AccountBalance).where(AccountBalance.patient_id == patient_id)
    ).all()
    moved = session.scalars(
        select(AccountMovement)
        .where(AccountMovement.patient_id == patient_id)
        .order_by(AccountMovement.created_at.desc(), AccountMovement.id)
        .limit(movements)
    ).all()
    currencies = sorted({i.currency for i in invoices} | {c.currency for c in credits})
    balances: list[dict[str, object]] = []
    for currency in currencies:
        owed = Money.sum(
            [Money(i.balance_due, currency) for i in invoices if i.currency == currency], currency
        )
        credit = Money.sum(
            [Money(c.credit, currency) for c in credits if c.currency == currency], currency
        )
        balances.append(
            {
                "currency": currency,
                "owed": owed.amount,
                "credit": credit.amount,
                "balance": (owed - credit).amount,
            }
        )
    members = session.scalars(
        select(Membership)
        .where(Membership.patient_id == patient_id, Membership.status != "cancelled")
        .order_by(Membership.created_at)
    ).all()
    session.commit()
    return AccountView(patient_id, balances, list(invoices), list(moved), list(members))


REFUNDED = "refunded"  # credit given back to the card it came from
RESTORED = "restored"  # ... and back, when that refund failed


def refund_credit(
    session: Session,
    gateway: StripeGateway,
    patient_id: str,
    currency: str,
    amount: int,
    reason: str,
    request: IdempotencyRequest,
) -> Refund:
    """Give `amount` of the patient's credit back to a card it came from: a card payment
    of an invoice whose overpayment or credit note made the credit, never more than that
    invoice gave to credit nor than the payment can still give back. The credit moves
    back into that invoice and goes out as its refund (kind `overpayment`), so the invoice
    reads as before; a refund that fails, now or later, puts the credit back in the
    transaction that marks it failed."""
    claim = idempotency.claim(session, request, "refund")
    if claim.replay_of is not None:
        session.commit()
        return refunds.replayed(session, gateway, claim.replay_of)
    chosen = _refund_source(session, patient_id, currency, amount)
    invoice = get_invoice(session, chosen.invoice_id, for_update=True)
    source = session.get_one(Payment, chosen.id)
    # Counted again under the lock: a refund of the same credit meanwhile took its share.
    if _card_can_take(session, patient_id, currency, source) < amount:
        raise Conflict("refund_in_progress", "Another refund used this card's share; ask again.")
    if not take(session, patient_id, currency, amount, for_a_card=True):
        raise Conflict(
            "no_credit",
            f"Patient {patient_id} has less than {amount} {currency} of credit a card paid "
            "(goodwill credit is never refunded).",
        )
    refund = Refund(
        invoice_id=invoice.id,
        payment_id=source.id,
        amount=amount,
        currency=currency,
        reason=reason,
        kind=overpayments.OVERPAYMENT,
        status=statuses.PENDING,
    )
    session.add(refund)
    session.flush()
    movement = _movement(
        invoice,
        -amount,
        REFUNDED,
        f"Refunded to the card that paid invoice {invoice.number}: {reason}",
        payment_id=source.id,
        refund_id=refund.id,
    )
    session.add(movement)
    ledger.record(session, invoice, ledger.FROM_CREDIT, amount, movement.id)
    refunds.audit_refund(session, refund, "refund.created", reason=reason, of="credit")
    credit_requests.refunded(session, patient_id, currency, refund.id)  # a patient's ask answered
    idempotency.complete(session, claim, refund.id)
    session.commit()
    return refunds.outcome(refunds.send(session, gateway, refund.id))


def restore_refunded_credit(session: Session, refund: Refund) -> None:
    """In the transaction that marks `refund` failed: if it gave back the patient's
    credit, that credit comes back, once."""
    if refund.kind != overpayments.OVERPAYMENT:
        return
    given = session.scalar(
        select(AccountMovement).where(
            AccountMovement.refund_id == refund.id, AccountMovement.kind == REFUNDED
        )
    )
    back = session.scalar(
        select(AccountMovement.id).where(
            AccountMovement.refund_id == refund.id, AccountMovement.kind == RESTORED
        )
    )
    if given is None or back is not None:
        return
    invoice = get_invoice(session, refund.invoice_id, for_update=True)
    move_to_credit(
        session,
        invoice,
        refund.amount,
        RESTORED,
        f"Refund {refund.id} of credit failed; the credit is kept.",
        payment_id=refund.payment_id,
        refund_id=refund.id,
    )
    credit_requests.reopened(session, refund.id)  # the patient's ask is not answered after all


refunds.ON_FAILED.append(restore_refunded_credit)


def _gave_to_credit(patient_id: str, currency: str) -> Any:
    """Per invoice, what its money made of the patient's credit and is still credit to
    refund to its cards: overpayments and credit notes, less what was refunded from it
    (back when that failed) or taken back (a check that bounced)."""
    return (
        select(
            AccountMovement.invoice_id,
            func.sum(AccountMovement.amount).label("left"),
        )
        .where(
            AccountMovement.patient_id == patient_id,
            AccountMovement.currency == currency,
            AccountMovement.kind.in_((OVERPAYMENT, CREDIT_NOTE, REFUNDED, RESTORED, TAKEN_BACK)),
        )
        .group_by(AccountMovement.invoice_id)
        .subquery()
    )


def _card_can_take(session: Session, patient_id: str, currency: str, payment: Payment) -> int:
    gave = _gave_to_credit(patient_id, currency)
    left = session.scalar(select(gave.c.left).where(gave.c.invoice_id == payment.invoice_id))
    return min(int(left or 0), refunds.refundable(session, payment).amount)


def _refund_source(session: Session, patient_id: str, currency: str, amount: int) -> Payment:
    """The newest card payment that can give `amount` of the patient's credit back."""
    gave = _gave_to_credit(patient_id, currency)
    candidates = session.scalars(
        select(Payment)
        .join(gave, gave.c.invoice_id == Payment.invoice_id)
        .where(
            Payment.method.in_(refunds.STRIPE_METHODS),
            Payment.status == statuses.SUCCEEDED,
            gave.c.left > 0,
        )
        .order_by(Payment.paid_at.desc(), Payment.id)
    ).all()
    most = 0
    for payment in candidates:
        can = _card_can_take(session, patient_id, currency, payment)
        if can >= amount:
            return payment
        most = max(most, can)
    raise field_error(
        "refund_exceeds_paid",
        "amount",
        f"At most {most} {currency} of the patient's credit can go back to one card at a time"
        " (credit from cash or a gift card is not refunded to a card).",
    )
