"""For any set of bills (some partly paid in cash), any choice of them and any amount the
patient types, a payment of the balance from the portal, against the Stripe stand-in:
is refused with the field named, or pays the chosen bills oldest first as it showed before
paying; never pays a bill beyond what it owed; and what the bills took plus the credit
left equals what the card paid, which is what Stripe charged. Bills not chosen are left as
they were."""

from __future__ import annotations

import itertools
import os
import re
from collections.abc import Callable
from typing import Any

from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from billing.adapters import db
from billing.adapters.account_models import BalanceShare
from billing.adapters.models import Invoice, Payment
from billing.services.payments import account
from tests.stripe.collect import patient_confirms, stripe_get
from tests.stripe.test_portal_balance import cash, portal_client

EXAMPLES = itertools.count()
bills_drawn = st.lists(st.integers(0, 95), min_size=1, max_size=4)  # per cent paid in cash


@settings(
    max_examples=int(os.environ.get("BALANCE_EXAMPLES", "8")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(
    paid_in_cash=bills_drawn,
    chosen_mask=st.integers(1, 15),
    share=st.one_of(st.none(), st.integers(1, 99)),  # None: all of it
)
def test_a_balance_payment_pays_each_chosen_bill_at_most_what_it_owed(
    stripe_client: Any,
    staff: dict[str, str],
    open_invoice: Callable[..., str],
    standin: Any,
    paid_in_cash: list[int],
    chosen_mask: int,
    share: int | None,
) -> None:
    app = stripe_client.application
    app.config["PORTAL_ADDRESS_LIMIT"] = "100000 per hour"  # every example signs in anew
    number = next(EXAMPLES)
    patient, email = f"P-BP{number}", f"balance{number}@example.org"
    bills = [
        open_invoice(None, patient_id=patient, booking_id=f"BK-BP{number}-{n}", email=email)
        for n in range(len(paid_in_cash))
    ]
    for n, (invoice_id, part) in enumerate(zip(bills, paid_in_cash, strict=True)):
        if part:
            answer = cash(stripe_client, staff, invoice_id, 500 * part, f"c-{number}-{n}")
            assert answer.status_code == 201, answer.json
    chosen = [b for n, b in enumerate(bills) if chosen_mask & (1 << n)] or bills[:1]
    with app.app_context():
        before = {
            i.id: (i.amount_paid, i.balance_due)
            for i in db.session().scalars(select(Invoice).where(Invoice.id.in_(bills)))
        }
    owed = sum(before[b][1] for b in chosen)
    amount = None if share is None else owed * share // 100

    client = portal_client(app, email)
    csrf = re.search(r'name="csrf" value="([^"]+)"', client.get("/account").get_data(as_text=True))
    assert csrf
    form: dict[str, Any] = {"csrf": csrf.group(1), "currency": "usd", "invoice": chosen}
    if amount is not None:
        form["amount"] = f"{amount / 100:.2f}"
    page = client.post(f"/account/patients/{patient}/pay", data=form)
    text = page.get_data(as_text=True)
    if page.status_code == 422:  # below the clinic's least part, or cents left on a bill
        assert amount is not None and 0 < amount < owed, text[:500]
        assert 'role="alert"' in text
        event("refused")
        return
    assert page.status_code == 200, text[:800]
    payment_id = re.search(r"/account/payments/(pay_[A-Za-z0-9]+)/status", text)
    assert payment_id
    with app.app_context():
        payment = db.session().get_one(Payment, payment_id.group(1))
        secret, paying = str(payment.client_secret), payment.amount
    assert paying == (owed if amount is None else amount)
    paid = patient_confirms(standin, secret)
    assert paid["status"] == "succeeded", paid
    done = client.get(f"/account/payments/{payment_id.group(1)}/done?payment_intent={paid['id']}")
    assert "was received" in done.get_data(as_text=True)
    event("paid all" if amount is None else "paid a part")

    assert stripe_get(standin, f"/v1/payment_intents/{paid['id']}")["amount"] == paying
    with app.app_context():
        session = db.session()
        after = {i.id: i for i in session.scalars(select(Invoice).where(Invoice.id.in_(bills)))}
        shares = session.scalars(
            select(BalanceShare)
            .where(BalanceShare.payment_id == payment_id.group(1))
            .order_by(BalanceShare.position)
        ).all()
        took = {s.invoice_id: int(s.applied or 0) for s in shares}
        for invoice_id in bills:
            invoice = after[invoice_id]
            assert invoice.amount_paid <= invoice.total  # never beyond the bill
            assert invoice.amount_paid == before[invoice_id][0] + took.get(invoice_id, 0)
            if invoice_id not in chosen:
                assert invoice_id not in took
        assert all(s.done_at is not None and s.applied == s.amount for s in shares)
        # Oldest first: only the last bill reached may be left owing.
        reached = [s.invoice_id for s in shares]
        assert reached == [b for b in chosen][: len(reached)]
        assert all(after[b].balance_due == 0 for b in reached[:-1])
        credit = account.credit_of(session, patient, "usd")
        assert sum(took.values()) + credit == paying
