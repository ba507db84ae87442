"""The pay page's PaymentIntent, and voiding: an invoice has at most one live intent.

The pay page's PaymentIntent is made once per invoice and kept while the patient tries
cards; it is cancelled at Stripe before the invoice is collected another way or voided.
"""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from billing.adapters.models import Invoice, PayLink, Payment, utcnow
from billing.adapters.stripe_gateway import StripeGateway
from billing.domain import policy, statuses
from billing.domain.errors import Conflict
from billing.domain.statuses import AWAITING_PATIENT, FAILED, REQUIRES_ACTION
from billing.services.access import audit
from billing.services.integrations import events
from billing.services.invoicing.invoices import get_invoice
from billing.services.payments import account, patients, refunds
from billing.services.payments.charges import (
    audit_payment,
    cancel_online,
    check_payable,
    collectable_now,
    covering,
    get_payment,
    part_of,
)
from billing.services.payments.received import desk_money

REUSABLE = (AWAITING_PATIENT, REQUIRES_ACTION, FAILED)  # the patient may try again on it
VOID_ATTEMPTS = 3  # a pay page that keeps making intents while we void is refused after this


def start_online_payment(
    session: Session,
    gateway: StripeGateway,
    invoice_id: str,
    amount: int | None = None,
    least: int | None = None,
    bank_accounts: bool = False,
) -> Payment:
    """The invoice's online payment with a client secret for the pay page: for all it
    owes, or the `amount` the patient chose (at least `least`, the clinic's minimum, and
    never more than the balance: 422 otherwise). Made once per amount. By card; with
    `bank_accounts`, also from a US bank account when the invoice is in US dollars.

    A patient whose card was declined tries again on the same PaymentIntent. Refused
    (409) unless the invoice is open with no other charge in flight.
    """
    invoice = get_invoice(session, invoice_id, for_update=True)
    check_payable(session, invoice)
    owed = part_of(invoice, collectable_now(session, invoice).amount, amount, least)
    payment = session.scalars(
        select(Payment)
        .where(
            Payment.invoice_id == invoice.id,
            Payment.method == "online",
            Payment.status.in_(REUSABLE),
        )
        .order_by(Payment.created_at.desc())
    ).first()
    if payment is not None and payment.amount != owed:
        # Part of the invoice was paid another way since this intent was made for the
        # rest (it would now collect too much), or the patient chose another amount.
        # Cancelled at Stripe; a new one is made.
        stale = payment
        session.commit()
        cancel_online(session, gateway, invoice.id)
        invoice = get_invoice(session, invoice_id, for_update=True)
        check_payable(session, invoice)
        owed = part_of(invoice, collectable_now(session, invoice).amount, amount, least)
        payment = None if get_payment(session, stale.id).status == statuses.CANCELED else stale
    if payment is None:
        payment = Payment(
            invoice_id=invoice.id,
            method="online",
            status=AWAITING_PATIENT,
            amount=owed,
            currency=invoice.currency,
        )
        session.add(payment)
        session.flush()
        audit_payment(session, payment, "payment.created")
    session.commit()  # no transaction stays open across the call to Stripe
    if payment.client_secret:
        return payment
    intent = gateway.create_online_intent(
        payment_id=payment.id,
        invoice_ref=invoice.id,
        amount=payment.amount,
        currency=payment.currency,
        bank_accounts=bank_accounts and payment.currency == "usd",
    )
    kept = session.execute(
        update(Payment)
        .where(
            Payment.id == payment.id,
            Payment.status == AWAITING_PATIENT,
            Payment.client_secret.is_(None),
        )
        .values(client_secret=intent.client_secret, stripe_payment_intent_id=intent.id)
        .returning(Payment.id)
    ).scalar_one_or_none()
    session.commit()
    payment = get_payment(session, payment.id)
    session.commit()
    if kept is None and payment.stripe_payment_intent_id != intent.id and intent.id:
        # The invoice was charged or voided while this intent was being made.
        gateway.cancel_payment_intent(intent.id)
        raise Conflict("invoice_not_payable", "This invoice can no longer be paid online.")
    return payment


def link_part_check(amount: int, minimums: dict[str, int]) -> Callable[[Session, Invoice], None]:
    """For a pay link that asks for part of the balance (`amount`): taken as the pay page
    would take it from the patient, at least the clinic's minimum for the currency
    (`minimums`; all of it in a currency with none) and never more than the balance;
    422 otherwise."""

    def check(session: Session, invoice: Invoice) -> None:
        check_payable(session, invoice)
        owed = collectable_now(session, invoice).amount
        part_of(invoice, owed, amount, minimums.get(invoice.currency, owed))

    return check


def choose_to_save_card(
    session: Session,
    gateway: StripeGateway,
    invoice_id: str,
    consent: str | None,
    ip_address: str | None = None,
    user_agent: str | None = None,
) -> Payment:
    """The patient ticked (`consent`: the words they were shown) or unticked "save this
    card" on the pay page, just before paying: the PaymentIntent keeps the card for
    off-session use, and the consent is stored with the card once the payment succeeds,
    with the address and browser it was given from."""
    invoice = get_invoice(session, invoice_id)
    check_payable(session, invoice)
    payment = session.scalars(
        select(Payment)
        .where(
            Payment.invoice_id == invoice.id,
            Payment.method == "online",
            Payment.status.in_(REUSABLE),
            Payment.stripe_payment_intent_id.is_not(None),
        )
        .order_by(Payment.created_at.desc())
    ).first()
    if payment is None:
        raise Conflict("invoice_not_payable", "This invoice has no payment waiting on this page.")
    return save_card_on(
        session, gateway, payment, invoice.patient_id, consent, ip_address, user_agent
    )


def save_card_on(
    session: Session,
    gateway: StripeGateway,
    payment: Payment,
    patient_id: str,
    consent: str | None,
    ip_address: str | None = None,
    user_agent: str | None = None,
) -> Payment:
    """The patient's choice about saving the card a payment they are about to make in the
    browser is made with (the pay page's, or a payment of the balance), kept by Stripe and
    by us; the consent is stored with the card once the payment succeeds."""
    session.commit()
    customer = None
    if consent:
        customer = patients.ensure_customer(session, gateway, patient_id).stripe_customer_id
    gateway.save_card_with_payment(str(payment.stripe_payment_intent_id), customer)
    session.execute(
        update(Payment)
        .where(Payment.id == payment.id)
        .values(
            save_card_consent=consent,
            save_card_agreed_at=utcnow() if consent else None,
            save_card_ip_address=ip_address if consent else None,
            save_card_user_agent=(user_agent or "")[:500] or None if consent else None,
        )
    )
    audit.record(
        session,
        "payment.save_card_chosen" if consent else "payment.save_card_declined",
        "payment",
        payment.id,
        invoice_id=payment.invoice_id,
        consent_text=consent,
    )
    session.commit()
    return get_payment(session, payment.id)


def void_invoice(
    session: Session, gateway: Callable[[], StripeGateway], invoice_id: str
) -> Invoice:
    """Void an invoice while nothing has been paid (or all that was paid through Stripe has
    been refunded); voiding twice is harmless. What the patient's credit or a gift card
    paid of it becomes the patient's credit; so does money received at the desk when the
    clinic keeps overpayments as credit (otherwise it stays listed as collected on a void
    invoice until it is given back by hand).

    The pay page's PaymentIntent is cancelled at Stripe first, so a page left open can no
    longer collect; if the patient paid first, the invoice is paid and cannot be voided.
    """
    for _ in range(VOID_ATTEMPTS):
        invoice = get_invoice(session, invoice_id, for_update=True)
        if invoice.status == statuses.VOID:
            return invoice
        if invoice.status == statuses.PROCESSING:
            raise Conflict(
                "payment_in_progress", "A payment is in progress; it cannot be voided now."
            )
        if invoice.kind in policy.SOLD and invoice.amount_paid > 0:
            raise Conflict(
                "invoice_paid",
                f"Invoice {invoice.number} sold a {invoice.kind.replace('_', ' ')} and was paid:"
                " refund what is unused of it instead.",
            )
        at_the_desk = invoice.status in statuses.SETTLED and desk_money(session, invoice.id) > 0
        if invoice.status == statuses.PARTIALLY_PAID or at_the_desk:
            if refunds.left_to_refund(session, invoice).amount > 0:
                raise Conflict(
                    "invoice_paid",
                    f"Invoice {invoice.number} has been paid in part; refund that first.",
                )
        elif invoice.status != statuses.OPEN:
            raise Conflict(
                "invoice_paid", f"Invoice {invoice.number} has been paid; refund it instead."
            )
        if not _has_live_intent(session, invoice.id):
            return _void(session, invoice)
        session.commit()
        try:
            cancel_online(session, gateway(), invoice_id)
        except Conflict:
            pass  # the patient got there first: the invoice's status now says how far
    raise Conflict("payment_in_progress", "The pay page keeps starting payments; try again.")


def _has_live_intent(session: Session, invoice_id: str) -> bool:
    return (
        session.scalars(
            select(Payment.id).where(
                covering(invoice_id),
                Payment.stripe_payment_intent_id.is_not(None),
                Payment.status.in_(REUSABLE),
            )
        ).first()
        is not None
    )


def _void(session: Session, invoice: Invoice) -> Invoice:
    invoice.status = statuses.VOID
    invoice.voided_at = utcnow()
    session.execute(  # an intent still being made finds its row cancelled and cancels itself
        update(Payment)
        .where(covering(invoice.id), Payment.status == AWAITING_PATIENT)
        .values(status=statuses.CANCELED, updated_at=invoice.voided_at)
    )
    session.execute(
        update(PayLink)
        .where(PayLink.invoice_id == invoice.id, PayLink.revoked_at.is_(None))
        .values(revoked_at=invoice.voided_at)
    )
    audit.record(session, "invoice.voided", "invoice", invoice.id, number=invoice.number)
    account.keep_what_a_void_invoice_holds(session, invoice)
    events.publish(session, "invoice.voided", "invoice", invoice)
    session.commit()
    return invoice
