"""Paying several bills at once from the portal, against the Stripe stand-in: one
PaymentIntent for the sum, shared out oldest bill first and shown before paying; a part
pays the oldest first; nothing is refunded and no bill is paid beyond what it owed; what no
bill took stays the patient's credit; the desk taking money for a chosen bill cancels the
payment at Stripe first; and another address's payment is not found."""

from __future__ import annotations

import re
import urllib.parse
import urllib.request
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from flask import Flask
from sqlalchemy import select

from billing.adapters import db
from billing.adapters.account_models import BalanceShare
from billing.adapters.models import Invoice, Payment, Refund
from billing.services.payments import account, balance
from tests.fixtures_stripe import SECRET_KEY, eventually, save_card
from tests.stripe.collect import intents_of, patient_confirms, stripe_get
from tests.stripe.test_portal_statements import closing_of, pdf_text, portal_client

EMAIL = "bea@example.org"
PATIENT = "P-BAL"
IV = 50000  # an individual IV session's bill in the seeded price list, in cents


def cash(client: Any, staff: dict[str, str], invoice_id: str, amount: int, key: str) -> Any:
    return client.post(
        f"/v1/invoices/{invoice_id}/payments",
        headers={**staff, "Idempotency-Key": key},
        json={"method": "cash", "amount": amount},
    )


def bills(open_invoice: Callable[..., str], count: int, patient: str = PATIENT) -> list[str]:
    return [
        open_invoice(None, patient_id=patient, booking_id=f"BK-{patient}-{n}", email=EMAIL)
        for n in range(count)
    ]


def invoice(app: Flask, invoice_id: str) -> Invoice:
    with app.app_context():
        found = db.session().get(Invoice, invoice_id)
        assert found is not None
        db.session().expunge(found)
        return found


def review(client: Any, form: dict[str, Any]) -> tuple[Any, str]:
    """The review page for `form`, and the payment it shows (its status URL names it)."""
    home = client.get("/account").get_data(as_text=True)
    csrf = re.search(r'name="csrf" value="([^"]+)"', home)
    assert csrf, home[:500]
    answer = client.post(
        f"/account/patients/{PATIENT}/pay", data={"csrf": csrf.group(1), "currency": "usd", **form}
    )
    found = re.search(r"/account/payments/(pay_[A-Za-z0-9]+)/status", answer.get_data(as_text=True))
    return answer, found.group(1) if found else ""


def secret_of(app: Flask, payment_id: str) -> str:
    with app.app_context():
        return str(db.session().get_one(Payment, payment_id).client_secret)


def test_three_bills_are_paid_with_one_payment_shared_out_oldest_first(
    stripe_client: Any, staff: dict[str, str], open_invoice: Callable[..., str], standin: Any
) -> None:
    app = stripe_client.application
    first, second, third = bills(open_invoice, 3)
    assert cash(stripe_client, staff, second, 10000, "c-2").status_code == 201  # $100 paid
    client = portal_client(app, EMAIL)

    home = client.get("/account").get_data(as_text=True)
    assert "Pay several bills at once" in home
    chooser = client.get(f"/account/patients/{PATIENT}/pay?currency=usd")
    text = chooser.get_data(as_text=True)
    assert chooser.status_code == 200
    for invoice_id in (first, second, third):
        assert f'value="{invoice_id}" checked' in text

    page, payment_id = review(client, {"invoice": [first, second, third]})
    shown = page.get_data(as_text=True)
    assert page.status_code == 200, shown[:800]
    assert "Pay $1,400.00" in shown  # 500 + 400 + 500, shown before paying
    assert shown.index(invoice(app, first).number) < shown.index(invoice(app, third).number)
    assert "$400.00" in shown  # the second bill's share: what it still owes

    status = client.get(f"/account/payments/{payment_id}/status").json
    assert status["payable"] is True
    # The patient ticks "save this card": the form's script sends the session's token.
    save = f"/account/payments/{payment_id}/save-card"
    assert client.post(save, json={"save": True}).status_code == 400  # no token: refused
    csrf = re.search(r'data-csrf="([^"]+)"', shown)
    assert csrf
    saved = client.post(save, json={"save": True}, headers={"X-CSRF-Token": csrf.group(1)})
    assert saved.status_code == 200, saved.get_data(as_text=True)
    paid = patient_confirms(standin, secret_of(app, payment_id))
    assert paid["status"] == "succeeded", paid
    done = client.get(f"/account/payments/{payment_id}/done?payment_intent={paid['id']}")
    said = done.get_data(as_text=True)
    assert "Your payment of $1,400.00 was received" in said, said[:800]

    for invoice_id in (first, second, third):
        assert invoice(app, invoice_id).status == "paid"
        assert invoice(app, invoice_id).balance_due == 0
    with app.app_context():
        session = db.session()
        assert account.credit_of(session, PATIENT, "usd") == 0
        assert session.scalars(select(Refund)).all() == []  # nothing given back
        shares = session.scalars(
            select(BalanceShare)
            .where(BalanceShare.payment_id == payment_id)
            .order_by(BalanceShare.position)
        ).all()
        assert [(s.invoice_id, s.applied) for s in shares] == [
            (first, IV),
            (second, IV - 10000),
            (third, IV),
        ]
    cards = stripe_client.get(f"/v1/patients/{PATIENT}/payment-methods", headers=staff).json
    assert [card["last4"] for card in cards["data"]] == ["4242"]  # kept, with its consent
    # One charge at Stripe, for the sum, on the oldest bill; none on the others.
    charged = [i for i in intents_of(standin, first) if i["status"] == "succeeded"]
    assert [i["amount"] for i in charged] == [140000]
    assert intents_of(standin, third) == []
    # Finance does not see it as money collected twice on the oldest bill.
    from zoneinfo import ZoneInfo

    from billing.services.finance import reconciliation, reports

    with app.app_context():
        today = datetime.now(UTC).date()
        period = reports.day_range(
            today - timedelta(days=1), today + timedelta(days=1), ZoneInfo("UTC")
        )
        assert reconciliation.overpayments(db.session(), period) == []
    # The statement shows the one card payment, named by its bills, and closes at zero.
    text = pdf_text(client.get("/account/statements.pdf"))
    flat = " ".join(text.split())
    numbers = " and ".join(invoice(app, i).number for i in (second, third))
    assert f"invoices {invoice(app, first).number}, {numbers}" in flat, flat
    assert "-$1,400.00" in flat and closing_of(text) == 0
    # Opened again later, the page says the same and pays nothing twice.
    again = client.get(f"/account/payments/{payment_id}/done")
    assert "Your payment of $1,400.00 was received" in again.get_data(as_text=True)
    with app.app_context():
        assert account.credit_of(db.session(), PATIENT, "usd") == 0


def test_a_part_pays_the_oldest_bills_first_and_leaves_the_rest_owed(
    stripe_client: Any, staff: dict[str, str], open_invoice: Callable[..., str], standin: Any
) -> None:
    app = stripe_client.application
    first, second, third = bills(open_invoice, 3)
    client = portal_client(app, EMAIL)
    chosen = {"invoice": [first, second, third]}

    too_much, _ = review(client, {**chosen, "amount": "1500.01"})
    assert too_much.status_code == 422
    assert "more than the bills you chose owe" in too_much.get_data(as_text=True)
    too_little, _ = review(client, {**chosen, "amount": "10.00"})  # the clinic's least is $50
    assert too_little.status_code == 422
    cents_left, _ = review(client, {**chosen, "amount": "1499.75"})  # leaves $0.25 owed
    assert cents_left.status_code == 422
    assert "a few cents" in cents_left.get_data(as_text=True)

    page, payment_id = review(client, {**chosen, "amount": "750.00"})
    shown = page.get_data(as_text=True)
    assert page.status_code == 200, shown[:800]
    assert "Pay $750.00" in shown
    assert intents_of(standin, third) == []  # the third bill is not reached
    paid = patient_confirms(standin, secret_of(app, payment_id))
    client.get(f"/account/payments/{payment_id}/done?payment_intent={paid['id']}")

    assert invoice(app, first).status == "paid"
    assert invoice(app, second).balance_due == 25000  # $250 of it paid
    assert invoice(app, third).balance_due == IV
    with app.app_context():
        assert account.credit_of(db.session(), PATIENT, "usd") == 0


def test_the_desk_taking_money_for_a_chosen_bill_cancels_the_payment_at_stripe_first(
    stripe_client: Any, staff: dict[str, str], open_invoice: Callable[..., str], standin: Any
) -> None:
    app = stripe_client.application
    first, second = bills(open_invoice, 2)
    client = portal_client(app, EMAIL)
    _, payment_id = review(client, {"invoice": [first, second]})
    assert payment_id

    # The patient walks in and pays the second bill in cash while the page is open.
    assert cash(stripe_client, staff, second, IV, "walk-in").status_code == 201
    with app.app_context():
        intent_id = db.session().get_one(Payment, payment_id).stripe_payment_intent_id
    assert stripe_get(standin, f"/v1/payment_intents/{intent_id}")["status"] == "canceled"
    status = client.get(f"/account/payments/{payment_id}/status").json
    assert status["payable"] is False and "changed" in status["message"]
    # Asked again, a payment for what is owed now: the first bill only.
    page, again = review(client, {"invoice": [first]})
    assert again != payment_id and "Pay $500.00" in page.get_data(as_text=True)


def test_once_the_patient_has_paid_the_desk_is_told_and_every_chosen_bill_is_paid(
    stripe_client: Any, staff: dict[str, str], open_invoice: Callable[..., str], standin: Any
) -> None:
    app = stripe_client.application
    first, second = bills(open_invoice, 2)
    client = portal_client(app, EMAIL)
    _, payment_id = review(client, {"invoice": [first, second]})
    patient_confirms(standin, secret_of(app, payment_id))

    # Before any webhook or page has told us, the desk tries to take cash for the second.
    answer = cash(stripe_client, staff, second, IV, "too-late")
    assert answer.status_code == 409, answer.json
    eventually(lambda: invoice(app, second).status == "paid")
    assert invoice(app, first).status == "paid"
    with app.app_context():
        assert account.credit_of(db.session(), PATIENT, "usd") == 0


def test_a_bill_paid_another_way_before_the_share_reaches_it_leaves_that_share_as_credit(
    stripe_client: Any, staff: dict[str, str], open_invoice: Callable[..., str], standin: Any
) -> None:
    app = stripe_client.application
    first, second = bills(open_invoice, 2)
    client = portal_client(app, EMAIL)
    _, payment_id = review(client, {"invoice": [first, second]})
    with app.app_context():  # the credit will not be applied before the cash comes in
        session = db.session()
        session.query(BalanceShare).filter(BalanceShare.position == 1).delete()
        session.commit()
    patient_confirms(standin, secret_of(app, payment_id))
    eventually(lambda: invoice(app, first).status == "paid")
    assert cash(stripe_client, staff, second, IV, "cash").status_code == 201
    with app.app_context():
        session = db.session()
        session.add(BalanceShare(payment_id=payment_id, invoice_id=second, position=1, amount=IV))
        session.commit()
        balance.allocate_all(session, None)
        assert account.credit_of(session, PATIENT, "usd") == IV  # the patient's, to ask back
        share = session.scalars(select(BalanceShare).where(BalanceShare.invoice_id == second)).one()
        assert share.applied == 0 and share.done_at is not None
    assert invoice(app, second).amount_paid == IV  # paid once, by the cash


def test_another_addresss_bills_and_payments_are_not_found(
    stripe_client: Any, staff: dict[str, str], open_invoice: Callable[..., str], standin: Any
) -> None:
    app = stripe_client.application
    first, second = bills(open_invoice, 2)
    other = open_invoice(None, patient_id="P-OTHER", booking_id="BK-OTHER", email="x@example.org")
    client = portal_client(app, EMAIL)
    _, payment_id = review(client, {"invoice": [first, second]})
    stranger = portal_client(app, "x@example.org")
    assert stranger.get(f"/account/payments/{payment_id}/status").status_code == 404
    assert stranger.get(f"/account/payments/{payment_id}/done").status_code == 404
    assert stranger.get(f"/account/patients/{PATIENT}/pay?currency=usd").status_code == 404
    mixed, _ = review(client, {"invoice": [first, other]})
    assert mixed.status_code == 422  # a bill of another patient cannot be chosen
    assert invoice(app, other).status == "open"


def test_a_balance_payment_is_refunded_bill_by_bill_and_never_beyond_its_charge(
    stripe_client: Any, staff: dict[str, str], open_invoice: Callable[..., str], standin: Any
) -> None:
    """The first bill gives back what it took; a bill its credit paid gets a credit note,
    and that credit (card money, not goodwill) goes back to the same card; Stripe never
    refunds more than it charged."""
    app = stripe_client.application
    first, second, third = bills(open_invoice, 3)
    client = portal_client(app, EMAIL)
    _, payment_id = review(client, {"invoice": [first, second, third]})
    paid = patient_confirms(standin, secret_of(app, payment_id))
    client.get(f"/account/payments/{payment_id}/done?payment_intent={paid['id']}")
    assert invoice(app, third).status == "paid"

    def post(url: str, key: str, body: dict[str, Any]) -> Any:
        return stripe_client.post(url, json=body, headers={**staff, "Idempotency-Key": key})

    whole = post(f"/v1/invoices/{first}/refunds", "r-1", {"reason": "cancelled", "amount": IV})
    assert whole.status_code == 201, whole.json
    beyond = post(f"/v1/invoices/{first}/refunds", "r-2", {"reason": "again", "amount": 100})
    assert beyond.status_code in (409, 422), beyond.json  # the first bill gave all it held
    note = post(
        f"/v1/invoices/{third}/credit-notes",
        "n-3",
        {"amount": IV, "reason": "session not given", "approved_by": "Dr. M"},
    )
    assert note.status_code == 201, note.json
    with app.app_context():
        assert account.credit_of(db.session(), PATIENT, "usd") == IV
    back = post(
        f"/v1/patients/{PATIENT}/account/refunds",
        "cr-1",
        {"amount": IV, "currency": "usd", "reason": "asked for"},
    )
    assert back.status_code == 201, back.json

    def refunded() -> int:
        listed = stripe_get(standin, f"/v1/refunds?payment_intent={paid['id']}&limit=100")
        return sum(r["amount"] for r in listed["data"] if r["status"] == "succeeded")

    eventually(lambda: refunded() == 2 * IV)
    assert stripe_get(standin, f"/v1/payment_intents/{paid['id']}")["amount"] == 3 * IV
    assert invoice(app, second).status == "paid"  # untouched
    with app.app_context():
        assert account.credit_of(db.session(), PATIENT, "usd") == 0


def test_a_saved_card_pays_at_once_or_after_the_bank_asks_and_a_decline_charges_nothing(
    stripe_client: Any, staff: dict[str, str], open_invoice: Callable[..., str], standin: Any
) -> None:
    app = stripe_client.application
    first, second = bills(open_invoice, 2)
    client = portal_client(app, EMAIL)

    def saved(number: str) -> str:
        card = save_card(stripe_client, staff, standin.url, PATIENT, number)
        return str(card["id"])

    def pay_with(card: str) -> Any:
        page, payment_id = review(client, {"invoice": [first, second]})
        text = page.get_data(as_text=True)
        assert f'value="{card}"' in text and "Pay $1,000.00 with this card" in text
        csrf = re.search(r'name="csrf" value="([^"]+)"', text)
        assert csrf
        return client.post(
            f"/account/payments/{payment_id}/saved-card", data={"csrf": csrf.group(1), "card": card}
        )

    declined = pay_with(saved("4000000000000341"))
    assert declined.status_code == 402 and "Nothing was charged" in declined.get_data(as_text=True)
    assert invoice(app, first).status == "open"

    asks = pay_with(saved("4000002760003184"))  # a card whose bank asks every time
    text = asks.get_data(as_text=True)
    assert asks.status_code == 200 and "Confirm payment of $1,000.00" in text, text[:600]
    secret = re.search(r'data-client-secret="([^"]+)"', text)
    back = re.search(r'data-return-url="([^"]+)"', text)
    assert secret and back
    intent_id = secret.group(1).split("_secret_")[0]
    confirm = urllib.request.Request(
        f"{standin.url}/v1/payment_intents/{intent_id}/_authenticate",
        data=urllib.parse.urlencode({"client_secret": secret.group(1), "success": "true"}).encode(),
        headers={"Authorization": f"Bearer {SECRET_KEY}"},
    )
    urllib.request.urlopen(confirm, timeout=5).close()
    done = client.get(f"{back.group(1)}?payment_intent={intent_id}")
    assert "Your payment of $1,000.00 was received" in done.get_data(as_text=True)
    assert invoice(app, first).status == "paid" and invoice(app, second).status == "paid"
    with app.app_context():
        assert account.credit_of(db.session(), PATIENT, "usd") == 0


def test_a_saved_card_pays_both_bills_at_once(
    stripe_client: Any, staff: dict[str, str], open_invoice: Callable[..., str], standin: Any
) -> None:
    app = stripe_client.application
    first, second = bills(open_invoice, 2)
    card = save_card(stripe_client, staff, standin.url, PATIENT, "pm_card_visa")["id"]
    client = portal_client(app, EMAIL)
    page, payment_id = review(client, {"invoice": [first, second]})
    csrf = re.search(r'name="csrf" value="([^"]+)"', page.get_data(as_text=True))
    assert csrf
    open_invoice(None, patient_id="P-OTHER", booking_id="BK-OTHER", email="x@example.org")
    stranger = portal_client(app, "x@example.org")
    home = stranger.get("/account").get_data(as_text=True)
    theirs = re.search(r'name="csrf" value="([^"]+)"', home)
    assert theirs
    form = {"csrf": theirs.group(1), "card": card}
    assert stranger.post(f"/account/payments/{payment_id}/saved-card", data=form).status_code == 404
    paid = client.post(
        f"/account/payments/{payment_id}/saved-card", data={"csrf": csrf.group(1), "card": card}
    )
    assert paid.status_code == 303, paid.get_data(as_text=True)[:500]
    said = client.get(paid.headers["Location"]).get_data(as_text=True)
    assert "Your payment of $1,000.00 was received" in said
    assert invoice(app, first).status == "paid" and invoice(app, second).status == "paid"
    # The card form's PaymentIntent was cancelled: one charge at Stripe, none waiting.
    states = sorted(i["status"] for i in intents_of(standin, first))
    assert states == ["canceled", "succeeded"]


def test_a_second_click_on_a_saved_card_charges_nothing_more(
    stripe_client: Any, staff: dict[str, str], open_invoice: Callable[..., str], standin: Any
) -> None:
    app = stripe_client.application
    first, second = bills(open_invoice, 2)
    card = save_card(stripe_client, staff, standin.url, PATIENT, "pm_card_visa")["id"]
    client = portal_client(app, EMAIL)
    page, payment_id = review(client, {"invoice": [first, second]})
    csrf = re.search(r'name="csrf" value="([^"]+)"', page.get_data(as_text=True))
    assert csrf
    form = {"csrf": csrf.group(1), "card": card}
    once = client.post(f"/account/payments/{payment_id}/saved-card", data=form)
    again = client.post(f"/account/payments/{payment_id}/saved-card", data=form)
    assert once.status_code == 303 and again.status_code == 409
    assert "Your account shows what was paid" in again.get_data(as_text=True)
    assert "Nothing was charged" not in again.get_data(as_text=True)
    charged = [i for i in intents_of(standin, first) if i["status"] == "succeeded"]
    assert [i["amount"] for i in charged] == [2 * IV]
    assert invoice(app, second).status == "paid"


def test_a_saved_card_charge_whose_answer_was_lost_is_asked_again_never_sent_twice(
    stripe_client: Any, staff: dict[str, str], open_invoice: Callable[..., str], standin: Any
) -> None:
    """Recovery re-sends the same create with the same key, and Stripe answers with the
    charge it made."""
    from datetime import timedelta

    from sqlalchemy import update

    from billing.adapters.models import utcnow
    from billing.services.payments import recovery

    app = stripe_client.application
    first, second = bills(open_invoice, 2)
    card = save_card(stripe_client, staff, standin.url, PATIENT, "pm_card_visa")["id"]
    client = portal_client(app, EMAIL)
    page, payment_id = review(client, {"invoice": [first, second]})
    csrf = re.search(r'name="csrf" value="([^"]+)"', page.get_data(as_text=True))
    assert csrf
    paid = client.post(
        f"/account/payments/{payment_id}/saved-card", data={"csrf": csrf.group(1), "card": card}
    )
    charged_id = paid.headers["Location"].split("/")[3]
    with app.app_context():  # as if we never heard back from Stripe
        session = db.session()
        intent_id = session.get_one(Payment, charged_id).stripe_payment_intent_id
        session.execute(
            update(Payment)
            .where(Payment.id == charged_id)
            .values(status="unknown", stripe_payment_intent_id=None, updated_at=utcnow())
        )
        session.commit()
        recovery.reconcile_pending(session, app.extensions["billing.stripe"], timedelta(0))
        again = db.session().get_one(Payment, charged_id)
        assert (again.status, again.stripe_payment_intent_id) == ("succeeded", intent_id)
    charged = [i for i in intents_of(standin, first) if i["status"] == "succeeded"]
    assert [i["id"] for i in charged] == [intent_id]  # the same charge, not a second
    with app.app_context():
        assert account.credit_of(db.session(), PATIENT, "usd") == 0


def test_while_a_saved_card_is_charged_for_several_bills_nothing_else_collects_them(
    stripe_client: Any, staff: dict[str, str], open_invoice: Callable[..., str]
) -> None:
    """The desk, the card on file and the bill's own pay page wait for its outcome."""
    from tests.stripe.collect import charge_card_on_file, pay_link

    app = stripe_client.application
    first, second = bills(open_invoice, 2)
    save_card(stripe_client, staff, "", PATIENT, "pm_card_visa")
    with app.app_context():  # being charged now: no PaymentIntent known yet
        session = db.session()
        charging = Payment(
            invoice_id=first, method="balance", status="pending", amount=2 * IV, currency="usd"
        )
        session.add(charging)
        session.flush()
        for position, invoice_id in enumerate((first, second)):
            session.add(
                BalanceShare(
                    payment_id=charging.id, invoice_id=invoice_id, position=position, amount=IV
                )
            )
        session.commit()
    desk = cash(stripe_client, staff, second, IV, "desk")
    assert desk.status_code == 409 and desk.json["code"] == "payment_in_progress", desk.json
    card = charge_card_on_file(stripe_client, staff, second, "cof")
    assert card.status_code == 409 and card.json["code"] == "payment_in_progress", card.json
    status = stripe_client.get(pay_link(stripe_client, staff, second) + "/status").json
    assert status["payable"] is False
    assert invoice(app, second).amount_paid == 0


def test_goodwill_credit_is_left_as_it_was_by_a_payment_of_several_bills(
    stripe_client: Any, staff: dict[str, str], open_invoice: Callable[..., str], standin: Any
) -> None:
    from billing.adapters.account_models import AccountBalance

    app = stripe_client.application
    first, second = bills(open_invoice, 2)
    granted = stripe_client.post(
        f"/v1/patients/{PATIENT}/account/credits",
        headers={**staff, "Idempotency-Key": "gw"},
        json={"amount": 5000, "currency": "usd", "reason": "a long wait", "approved_by": "M"},
    )
    assert granted.status_code == 201, granted.json
    client = portal_client(app, EMAIL)
    _, payment_id = review(client, {"invoice": [first, second]})
    paid = patient_confirms(standin, secret_of(app, payment_id))
    client.get(f"/account/payments/{payment_id}/done?payment_intent={paid['id']}")
    assert invoice(app, second).status == "paid"
    with app.app_context():
        row = db.session().get_one(AccountBalance, (PATIENT, "usd"))
        assert (row.credit, row.goodwill) == (5000, 5000)  # still goodwill: never to a card
    receipt = stripe_client.get(f"/v1/invoices/{second}/receipt.pdf", headers=staff)
    text = pdf_text(receipt)
    assert "paid with other bills" in text and "Account credit" not in text


def test_odd_input_to_the_pages_is_a_clear_page_never_a_500(
    stripe_client: Any, staff: dict[str, str], open_invoice: Callable[..., str]
) -> None:
    app = stripe_client.application
    first, second = bills(open_invoice, 2)
    client = portal_client(app, EMAIL)
    assert client.get(f"/account/patients/{PATIENT}/pay?currency=abc").status_code == 404
    home = client.get("/account").get_data(as_text=True)
    csrf = re.search(r'name="csrf" value="([^"]+)"', home)
    assert csrf
    form = {"csrf": csrf.group(1), "currency": "abc", "invoice": [first], "amount": "5"}
    assert client.post(f"/account/patients/{PATIENT}/pay", data=form).status_code == 404
    _, payment_id = review(client, {"invoice": [first, second]})
    odd = client.get(f"/account/payments/{payment_id}/done?submitted=%C2%B2")
    assert odd.status_code == 200
