"""Paying several of a patient's bills in one payment, from the portal.

The patient chooses bills (every open one by default) and how much (all they owe on them,
or a part, where the clinic takes parts): the money is shared out oldest bill first (by
date of service), and the shares are shown before paying. Each bill takes at most what it
owes, and a part leaves the last bill it reaches owing nothing or enough for a card to pay.

It is one PaymentIntent, made on the oldest chosen bill (method `balance`) for the sum,
with its shares stored beside it. While it can still be paid, every chosen bill counts it
as its pay page's (`charges.covering`): the desk, a card on file or a void cancels it at
Stripe first. When it succeeds the money enters the ledger on the oldest bill, and what
goes beyond that bill becomes the patient's credit, always (never refunded, whatever
`OVERPAYMENTS` says); that credit then pays the other chosen bills in order
(`allocate`), each share once (an idempotency key per share), from the webhook, the page
the patient returns to, or the minute job, whichever comes first. A bill paid another way
meanwhile takes nothing, and its share stays the patient's credit: what was paid always
equals what the bills took plus the credit left.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from billing.adapters.account_models import AccountMovement, BalanceShare
from billing.adapters.booking_models import CardConsent
from billing.adapters.models import Invoice, Patient, Payment, utcnow
from billing.adapters.stripe_gateway import Intent, StripeGateway
from billing.domain import statuses
from billing.domain.errors import Conflict, ServiceError, field_error
from billing.domain.money import STRIPE_MINIMUM_CHARGE, Money
from billing.services.access import keys
from billing.services.bookings import holds
from billing.services.idempotency import IdempotencyRequest
from billing.services.invoicing.invoices import get_invoice
from billing.services.payments import account, received
from billing.services.payments.charges import (
    BALANCE,
    SUCCEEDED,
    apply_intent,
    audit_payment,
    cancel_online,
    card_for_receipt,
    check_payable,
    check_remainder,
    collectable_now,
    get_payment,
    resolve,
)
from billing.services.payments.online import REUSABLE, save_card_on

log = logging.getLogger("billing.payments")

PAID, ON_ITS_WAY, NOT_CHARGED = "paid", "on_its_way", "not_charged"
# A share that cannot be applied this long after the payment is left as the patient's
# credit (which then pays their oldest bills, as any credit does).
GIVE_UP_AFTER = timedelta(days=1)


@dataclass(frozen=True, slots=True)
class Share:
    """What a payment of the balance pays of one bill (`takes`), of what it owes now."""

    invoice: Invoice
    owed: int
    takes: int


def owing(session: Session, patient_id: str, currency: str) -> list[tuple[Invoice, int]]:
    """The patient's bills in `currency` that may be paid now, oldest first (by date of
    service), each with what may be collected on it now (less what a charge in flight may
    still collect)."""
    bills = session.scalars(
        select(Invoice)
        .where(
            Invoice.patient_id == patient_id,
            Invoice.currency == currency,
            Invoice.status.in_(statuses.PAYABLE),
        )
        .order_by(Invoice.scheduled_at, Invoice.created_at, Invoice.id)
    ).all()
    found = []
    for invoice in bills:
        if holds.is_held(session, invoice):
            continue
        owed = collectable_now(session, invoice).amount
        if owed > 0:
            found.append((invoice, owed))
    return found


def share_out(
    session: Session,
    patient_id: str,
    currency: str,
    chosen: Sequence[str] | None = None,
    amount: int | None = None,
    least: int | None = None,
) -> list[Share]:
    """What paying `amount` (by default all that is owed on them) of the `chosen` bills
    (by default every bill that may be paid now) pays of each, oldest first; bills it
    does not reach are left out. A part is taken only where the clinic takes parts
    (`least`, its minimum; None: all of it), and never leaves the last bill it reaches
    owing less than a card can pay. 422 otherwise, naming the field."""
    bills = owing(session, patient_id, currency)
    if chosen is not None:
        known = {invoice.id for invoice, _ in bills}
        unknown = [invoice_id for invoice_id in chosen if invoice_id not in known]
        if unknown:
            raise field_error(
                "invoice_not_payable",
                "invoices",
                f"Choose among the bills that can be paid now; {len(unknown)} chosen cannot be.",
            )
        bills = [(invoice, owed) for invoice, owed in bills if invoice.id in set(chosen)]
    if not bills:
        raise field_error("nothing_to_pay", "invoices", "Nothing chosen can be paid now.")
    total = sum(owed for _, owed in bills)
    amount = total if amount is None else amount
    if amount > total:
        raise field_error(
            "amount_exceeds_balance",
            "amount",
            f"At most {Money(total, currency)} is owed on the bills chosen.",
        )
    if amount != total:
        if least is None:
            raise field_error(
                "part_not_taken",
                "amount",
                f"Pay all {Money(total, currency)} of the bills chosen, or choose fewer bills.",
            )
        floor = max(least, STRIPE_MINIMUM_CHARGE.get(currency, 0))
        if amount < floor:
            raise field_error(
                "amount_too_small",
                "amount",
                f"Pay at least {Money(floor, currency)}, or all {Money(total, currency)}.",
            )
    shares, left = [], amount
    for invoice, owed in bills:
        takes = min(owed, left)
        if takes <= 0:
            break
        check_remainder(invoice, owed, takes)
        shares.append(Share(invoice, owed, takes))
        left -= takes
    return shares


def start(
    session: Session,
    gateway: StripeGateway,
    patient_id: str,
    currency: str,
    chosen: Sequence[str] | None = None,
    amount: int | None = None,
    least: int | None = None,
) -> Payment:
    """The payment of the shares `share_out` gives, with a client secret for the card
    form: the patient's waiting one if it is for the same shares, else a new one. Every
    other way the patient's browser could pay these bills (their pay pages, an earlier
    payment of the balance) is cancelled at Stripe first; 409 if one was just paid or is
    being processed."""
    shares = share_out(session, patient_id, currency, chosen, amount, least)
    waiting = _waiting(session, patient_id)
    session.commit()
    for payment in waiting:
        if _same(session, payment, shares) and payment.client_secret:
            return payment
    for payment in waiting:  # another choice: the patient pays this one instead
        _cancel(session, gateway, payment)
    for share in shares:
        cancel_online(session, gateway, share.invoice.id)
    payment = _record(session, shares, patient_id, currency, chosen, amount, least)
    intent = gateway.create_online_intent(
        payment_id=payment.id,
        invoice_ref=payment.invoice_id,
        amount=payment.amount,
        currency=currency,
        bank_accounts=False,
    )
    return _keep(session, gateway, payment, intent)


def _record(
    session: Session,
    shares: list[Share],
    patient_id: str,
    currency: str,
    chosen: Sequence[str] | None,
    amount: int | None,
    least: int | None,
    status: str = statuses.AWAITING_PATIENT,
    card: tuple[str, str] | None = None,
) -> Payment:
    """The payment of `shares`, on the first bill, and its shares: committed before Stripe
    is called, with every bill locked (in id order) while what they owe is checked again,
    so nothing else collects on one meanwhile. 409 when what is owed changed since the
    shares were worked out. With `card` (customer, saved card), what it is charged to."""
    for invoice_id in sorted(share.invoice.id for share in shares):
        get_invoice(session, invoice_id, for_update=True)
    first = get_invoice(session, shares[0].invoice.id)
    check_payable(session, first)
    again = share_out(session, patient_id, currency, chosen, amount, least)
    if [(s.invoice.id, s.takes) for s in again] != [(s.invoice.id, s.takes) for s in shares]:
        raise Conflict("balance_changed", "What is owed changed just now; look again.")
    payment = Payment(
        invoice_id=first.id,
        method=BALANCE,
        status=status,
        amount=sum(share.takes for share in shares),
        currency=currency,
        stripe_customer_id=card[0] if card else None,
        stripe_payment_method_id=card[1] if card else None,
        source="card" if card else None,
    )
    session.add(payment)
    session.flush()
    for position, share in enumerate(shares):
        session.add(
            BalanceShare(
                payment_id=payment.id,
                invoice_id=share.invoice.id,
                position=position,
                amount=share.takes,
            )
        )
    audit_payment(session, payment, "payment.created")
    session.commit()  # no transaction stays open across the call to Stripe
    return payment


def _keep(session: Session, gateway: StripeGateway, payment: Payment, intent: Intent) -> Payment:
    """The PaymentIntent made for the payment, kept with it; cancelled at Stripe (409) if
    a bill was paid or cancelled while it was being made."""
    kept = session.execute(
        update(Payment)
        .where(
            Payment.id == payment.id,
            Payment.status == statuses.AWAITING_PATIENT,
            Payment.client_secret.is_(None),
        )
        .values(client_secret=intent.client_secret, stripe_payment_intent_id=intent.id)
        .returning(Payment.id)
    ).scalar_one_or_none()
    session.commit()
    if kept is None:  # a bill was paid or cancelled while the intent was being made
        if intent.id:
            gateway.cancel_payment_intent(intent.id)
        raise Conflict("balance_changed", "A bill changed just now; look again.")
    return get_payment(session, payment.id)


def pay_with_saved_card(
    session: Session,
    gateway: StripeGateway,
    payment_id: str,
    payment_method_id: str,
    least: int | None = None,
) -> Payment:
    """The patient chose one of their saved cards instead of typing one: the payment
    waiting for the card form is claimed (one request wins; a second click or tab gets
    409) and cancelled at Stripe, then the same shares are charged to that card at once,
    the patient on the page (their bank may ask them to confirm it: `requires_action`,
    with a client secret for Stripe.js). 409 unless the card is theirs and saved."""
    waiting = get_payment(session, payment_id)
    patient = session.scalars(
        select(Patient)
        .join(Invoice, Invoice.patient_id == Patient.patient_id)
        .where(Invoice.id == waiting.invoice_id)
    ).one()
    consent = session.get(CardConsent, payment_method_id)
    if (
        consent is None
        or consent.removed_at is not None
        or consent.patient_id != patient.patient_id
        or not patient.stripe_customer_id
    ):
        raise Conflict("no_card_on_file", "That card is not one of your saved cards.")
    customer_id = str(patient.stripe_customer_id)
    chosen = [row.invoice_id for row in shares_of(session, waiting.id)]
    claimed = session.execute(
        update(Payment)
        .where(
            Payment.id == waiting.id,
            Payment.status.in_(REUSABLE),
            Payment.stripe_payment_intent_id.is_not(None),
        )
        .values(status=statuses.CANCELED, updated_at=utcnow())
        .returning(Payment.id)
    ).scalar_one_or_none()
    session.commit()
    if claimed is None:
        raise Conflict(
            "payment_in_progress",
            "This payment was already made or replaced: look at your account before paying.",
        )
    intent = gateway.cancel_payment_intent(str(waiting.stripe_payment_intent_id))
    apply_intent(session, gateway, waiting.id, intent)
    if intent.status == "succeeded":  # paid with the card form in another tab meanwhile
        allocate(session, gateway, waiting.id)
        raise Conflict("invoice_not_payable", "These bills were just paid.")
    if intent.status != "canceled":
        raise Conflict("payment_in_progress", "A payment of these bills is being processed.")
    shares = share_out(session, patient.patient_id, waiting.currency, chosen, waiting.amount, least)
    payment = _record(
        session,
        shares,
        patient.patient_id,
        waiting.currency,
        chosen,
        waiting.amount,
        least,
        status=statuses.PENDING,  # in flight: found by recovery if the answer is lost
        card=(customer_id, payment_method_id),
    )
    try:
        intent = gateway.charge_saved_card(
            payment_id=payment.id,
            invoice_ref=payment.invoice_id,
            amount=payment.amount,
            currency=payment.currency,
            customer_id=customer_id,
            payment_method_id=payment_method_id,
        )
    except ServiceError as error:
        if error.outcome_unknown:  # recovery sends it again with the same key
            session.execute(
                update(Payment)
                .where(Payment.id == payment.id)
                .values(status=statuses.UNKNOWN, updated_at=utcnow())
            )
            session.commit()
            raise
        intent = Intent(
            id=None,
            status="failed",
            amount=payment.amount,
            currency=payment.currency,
            failure_code=error.code,
            failure_message=error.detail,
        )
    # Applied whatever happened meanwhile: money collected on a bill voided since is
    # kept as credit, never lost.
    card = card_for_receipt(gateway, payment, intent)
    payment = apply_intent(session, gateway, payment.id, intent, card)
    if payment.status == SUCCEEDED:
        allocate(session, gateway, payment.id)
    elif payment.status == statuses.FAILED and payment.stripe_payment_intent_id:
        # Declined: its PaymentIntent waits for another card that will never come.
        _cancel(session, gateway, payment, quietly=True)
    return get_payment(session, payment.id)


def _cancel(
    session: Session, gateway: StripeGateway, payment: Payment, quietly: bool = False
) -> None:
    """Cancel one payment of the balance's PaymentIntent at Stripe and record what Stripe
    says: 409 when it was just paid or is being processed (unless `quietly`)."""
    try:
        intent = gateway.cancel_payment_intent(str(payment.stripe_payment_intent_id))
    except ServiceError as error:
        if quietly:
            log.warning("balance payment %s not cancelled: %s", payment.id, error.detail)
            return
        raise
    apply_intent(session, gateway, payment.id, intent)
    if quietly:
        return
    if intent.status == "succeeded":
        allocate(session, gateway, payment.id)
        raise Conflict("balance_changed", "An earlier payment of these bills was just made.")
    if intent.status != "canceled":
        raise Conflict("payment_in_progress", "A payment of these bills is being processed.")


def choose_to_save_card(
    session: Session,
    gateway: StripeGateway,
    payment_id: str,
    consent: str | None,
    ip_address: str | None = None,
    user_agent: str | None = None,
) -> Payment:
    """The patient ticked (`consent`: the words they were shown) or unticked "save this
    card" just before paying the balance: as on a pay page. 409 once it cannot be paid."""
    payment = get_payment(session, payment_id)
    if payment.status not in REUSABLE or not payment.stripe_payment_intent_id:
        raise Conflict("invoice_not_payable", "This payment can no longer be made.")
    patient_id = get_invoice(session, payment.invoice_id).patient_id
    return save_card_on(session, gateway, payment, patient_id, consent, ip_address, user_agent)


def _waiting(session: Session, patient_id: str) -> list[Payment]:
    """The patient's payments of the balance that their browser may still pay."""
    return list(
        session.scalars(
            select(Payment)
            .join(Invoice, Invoice.id == Payment.invoice_id)
            .where(
                Invoice.patient_id == patient_id,
                Payment.method == BALANCE,
                Payment.status.in_(REUSABLE),
                Payment.stripe_payment_intent_id.is_not(None),  # else nothing can pay it
            )
            .order_by(Payment.created_at.desc())
        )
    )


def _same(session: Session, payment: Payment, shares: list[Share]) -> bool:
    planned = [(row.invoice_id, row.amount) for row in shares_of(session, payment.id)]
    return planned == [(share.invoice.id, share.takes) for share in shares]


def shares_of(session: Session, payment_id: str) -> list[BalanceShare]:
    return list(
        session.scalars(
            select(BalanceShare)
            .where(BalanceShare.payment_id == payment_id)
            .order_by(BalanceShare.position)
            .execution_options(populate_existing=True)
        )
    )


def allocate(session: Session, gateway: StripeGateway | None, payment_id: str) -> int:
    """A payment of the balance that succeeded pays its bills, oldest first: the first
    through its charge (what went beyond it became credit), each next one from that
    credit, as much as it still owes and the payment has left. Each share once, however
    often it runs; what no bill took stays the patient's credit. How much the credit paid
    now."""
    payment = get_payment(session, payment_id)
    session.commit()
    if payment.method != BALANCE or payment.status != SUCCEEDED:
        return 0
    applied_now = 0
    for row in shares_of(session, payment.id):
        session.commit()
        if row.done_at is not None:
            continue
        if row.position == 0:
            _done(session, row, payment.amount - _moved_to_credit(session, payment.id), None)
            continue
        left = payment.amount - _applied(session, payment.id)
        try:
            paid = _pay_from_credit(session, gateway, payment, row, left) if left > 0 else None
        except ServiceError as error:
            session.rollback()
            if utcnow() - (payment.paid_at or payment.created_at) < GIVE_UP_AFTER:
                # It passes (Stripe busy while the bill's pay page stands aside, a hold):
                # this share and the later ones wait for the minute job, in order.
                log.info("balance share %s waits: %s", row.id, error.detail)
                break
            log.warning("balance share %s given up: %s; it stays credit", row.id, error.detail)
            paid = None
        _done(session, row, paid.amount if paid else 0, paid.id if paid else None)
        applied_now += paid.amount if paid else 0
    return applied_now


def _pay_from_credit(
    session: Session,
    gateway: StripeGateway | None,
    payment: Payment,
    row: BalanceShare,
    left: int,
) -> Payment | None:
    """As much of `left` as the bill owes now, from the card money of the patient's
    credit (their goodwill credit stays as it was); None when the bill owes nothing now
    (paid or cancelled meanwhile: the share stays credit). A failure that may pass
    raises."""
    invoice = get_invoice(session, row.invoice_id)
    credit = account.card_credit_of(session, invoice.patient_id, invoice.currency)
    owed = collectable_now(session, invoice).amount if invoice.status in statuses.PAYABLE else 0
    part = account.automatic_part(owed, min(left, credit), invoice.currency)
    key = f"balance-share:{row.id}"
    request = IdempotencyRequest(keys.system_key_id(session), key, key)
    session.commit()
    if part <= 0:
        return None
    return received.record_payment(
        session,
        gateway,
        row.invoice_id,
        received.CREDIT_METHOD,
        part,
        shared_by(payment),  # what the bill's receipt says paid it
        None,
        request,
        card_money=True,
    )


SHARED_BY = "Card, with other bills: "  # a share's reference, as receipts show it


def shared_by(payment: Payment) -> str:
    """How a share paid its bill, in the patient's words: the card of the payment."""
    if payment.card_last4:
        card = f"{(payment.card_brand or 'card').title()} ending {payment.card_last4}"
    else:
        card = "card"
    return (SHARED_BY + card)[:100]


def _done(
    session: Session, row: BalanceShare, applied: int, applied_payment_id: str | None
) -> None:
    session.execute(
        update(BalanceShare)
        .where(BalanceShare.id == row.id, BalanceShare.done_at.is_(None))
        .values(applied=applied, applied_payment_id=applied_payment_id, done_at=utcnow())
    )
    session.commit()


def _moved_to_credit(session: Session, payment_id: str) -> int:
    moved = session.scalar(
        select(func.coalesce(func.sum(AccountMovement.amount), 0)).where(
            AccountMovement.payment_id == payment_id,
            AccountMovement.kind == account.OVERPAYMENT,
        )
    )
    return int(moved or 0)


def _applied(session: Session, payment_id: str) -> int:
    done = session.scalar(
        select(func.coalesce(func.sum(BalanceShare.applied), 0)).where(
            BalanceShare.payment_id == payment_id, BalanceShare.done_at.is_not(None)
        )
    )
    return int(done or 0)


def allocate_all(session: Session, gateway: StripeGateway | None) -> int:
    """The minute job: every payment of a balance that succeeded and whose shares are not
    all applied yet (its webhook's run stopped half way) finishes; how much credit paid."""
    unfinished = session.scalars(
        select(BalanceShare.payment_id)
        .join(Payment, Payment.id == BalanceShare.payment_id)
        .where(BalanceShare.done_at.is_(None), Payment.status == SUCCEEDED)
        .distinct()
    ).all()
    session.commit()
    total = 0
    for payment_id in unfinished:
        try:
            total += allocate(session, gateway, payment_id)
        except Exception:  # one payment's trouble never stops the others, nor the credit job
            session.rollback()
            log.exception("balance payment %s not shared out yet", payment_id)
    return total


def outcome(
    session: Session, gateway: StripeGateway, patient_ids: Sequence[str], intent_id: str
) -> tuple[str, Payment] | None:
    """What became of the payment of the balance whose PaymentIntent the patient's browser
    just confirmed (asking Stripe when our webhook has not told us), shared out once it
    succeeded; None when it is no payment of these patients'."""
    payment = session.scalars(
        select(Payment)
        .join(Invoice, Invoice.id == Payment.invoice_id)
        .where(
            Payment.stripe_payment_intent_id == intent_id,
            Payment.method == BALANCE,
            Invoice.patient_id.in_(list(patient_ids)),
        )
    ).first()
    session.commit()
    if payment is None:
        return None
    if payment.status != SUCCEEDED:
        try:
            payment = resolve(session, gateway, payment.id)
        except ServiceError as error:
            log.warning("balance payment %s not checked with Stripe: %s", payment.id, error)
            return ON_ITS_WAY, payment
    if payment.status == SUCCEEDED:
        allocate(session, gateway, payment.id)
        return PAID, payment
    if payment.status in (statuses.PROCESSING, statuses.PENDING, statuses.UNKNOWN):
        return ON_ITS_WAY, payment
    return NOT_CHARGED, payment
