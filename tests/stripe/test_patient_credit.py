"""Card money beyond what an invoice owes, against the Stripe stand-in: kept as the
patient's credit by default (and paying their next bill), or refunded to the card when
the clinic says so; a credit note on a bill paid by card gives the difference back; a gift
card's buyer gets back only what is left on it."""

from __future__ import annotations

from datetime import UTC, datetime

from billing.adapters import db
from billing.services.finance.reconciliation import STATUSES
from billing.services.payments import charges as payments
from billing.services.payments import received
from tests.fixtures_stripe import eventually, save_card
from tests.stripe.collect import (
    charge_card_on_file,
    collected_at_stripe,
    ledger_of,
    open_pay_page,
    patient_confirms,
    refunds_of,
)
from tests.stripe.events import deliver, make_event


def invoice(client, staff, invoice_id):
    return client.get(f"/v1/invoices/{invoice_id}", headers=staff).json


def test_money_collected_twice_is_kept_as_credit_and_pays_the_next_bill(
    stripe_client, stripe_app, staff, open_invoice, standin, monkeypatch
):
    first = open_invoice(patient_id="P-9001")
    secret = open_pay_page(stripe_client, staff, first)
    monkeypatch.setattr(payments, "cancel_online", lambda *_args: None)  # the race
    assert charge_card_on_file(stripe_client, staff, first, "desk").status_code == 201
    monkeypatch.undo()
    online_intent = patient_confirms(standin, secret)
    assert online_intent["status"] == "succeeded"
    for _ in range(2):  # delivered twice: kept once
        event = make_event("payment_intent.succeeded", online_intent)
        assert deliver(stripe_client, event).status_code == 200

    total = invoice(stripe_client, staff, first)["total"]
    account = eventually(
        lambda: (
            (found := stripe_client.get("/v1/patients/P-9001/account", headers=staff).json)[
                "balances"
            ]
            and found
        )
    )
    assert account["balances"] == [
        {"currency": "usd", "owed": 0, "credit": total, "balance": -total}
    ]
    after = invoice(stripe_client, staff, first)
    assert (after["status"], after["amount_paid"], after["amount_refunded"]) == ("paid", total, 0)
    assert collected_at_stripe(standin, first) == (2 * total, 0)  # nothing went back
    assert refunds_of(stripe_app, first) == []
    money = ledger_of(stripe_app, first)
    assert (money.paid, money.refunded) == (total, 0)  # charges less what became credit

    # The next bill is paid from the credit, without a card.
    second = open_invoice(card=None, patient_id="P-9001-b")
    moved = stripe_client.post(
        f"/v1/invoices/{second}/payments",
        headers={**staff, "Idempotency-Key": "apply"},
        json={"method": "account_credit"},
    )
    assert (moved.status_code, moved.json["code"]) == (409, "no_credit")  # another patient
    third = open_invoice(card=None, patient_id="P-9001", booking_id="BK-P-9001-next")
    with stripe_app.app_context():
        assert received.apply_all_credit(db.session()) == total
    paid = invoice(stripe_client, staff, third)
    assert (paid["status"], paid["amount_paid"], paid["balance_due"]) == ("paid", total, 0)
    assert collected_at_stripe(standin, third) == (0, 0)
    later = stripe_client.get("/v1/patients/P-9001/account", headers=staff).json
    assert later["balances"][0]["credit"] == 0
    assert [m["kind"] for m in later["movements"]] == ["applied", "overpayment"]

    # Reconciliation lists the two charges, not the moves to and from credit; finance
    # sees the money collected twice as kept, nothing owed back.
    today = datetime.now(UTC).date().isoformat()
    report = stripe_client.get(
        "/v1/reports/reconciliation", query_string={"from": today, "to": today}, headers=staff
    ).json
    rows = [row for name in STATUSES for row in report[name]]
    assert sorted(row["kind"] for row in rows if row["kind"]) == ["charge", "charge"]
    [over] = report["overpayments"]
    assert (over["invoice_id"], over["excess"], over["kept_as_credit"], over["outstanding"]) == (
        first,
        total,
        total,
        0,
    )


def test_a_credit_note_on_a_card_paid_bill_refunds_the_difference_when_the_clinic_refunds(
    stripe_client, stripe_app, staff, open_invoice, standin, monkeypatch
):
    monkeypatch.setitem(stripe_app.config, "OVERPAYMENTS", "refund")
    invoice_id = open_invoice(patient_id="P-9101")
    assert charge_card_on_file(stripe_client, staff, invoice_id, "desk").status_code == 201
    total = invoice(stripe_client, staff, invoice_id)["total"]
    note = stripe_client.post(
        f"/v1/invoices/{invoice_id}/credit-notes",
        headers={**staff, "Idempotency-Key": "cn"},
        json={"amount": 15000, "reason": "session shortened", "approved_by": "Dr. Rivera"},
    )
    assert note.status_code == 201, note.json
    assert (note.json["refunded"], note.json["to_credit"]) == (15000, 0)
    after = eventually(
        lambda: (
            (found := invoice(stripe_client, staff, invoice_id))["amount_paid"] == total and found
        )
    )
    assert (after["status"], after["amount_credited"], after["balance_due"]) == ("paid", 15000, 0)
    assert collected_at_stripe(standin, invoice_id) == (total, 15000)
    assert [(r.kind, r.amount, r.status) for r in refunds_of(stripe_app, invoice_id)] == [
        ("overpayment", 15000, "succeeded")
    ]
    # What is left to refund is what the patient paid for the corrected bill.
    too_much = stripe_client.post(
        f"/v1/invoices/{invoice_id}/refunds",
        headers={**staff, "Idempotency-Key": "r"},
        json={"amount": total - 15000 + 1, "reason": "goodwill"},
    )
    assert too_much.status_code == 422


def test_a_credit_note_on_a_card_paid_bill_keeps_the_difference_as_credit_by_default(
    stripe_client, stripe_app, staff, open_invoice, standin
):
    invoice_id = open_invoice(patient_id="P-9201")
    assert charge_card_on_file(stripe_client, staff, invoice_id, "desk").status_code == 201
    note = stripe_client.post(
        f"/v1/invoices/{invoice_id}/credit-notes",
        headers={**staff, "Idempotency-Key": "cn"},
        json={"amount": 15000, "reason": "session shortened", "approved_by": "Dr. Rivera"},
    )
    assert note.status_code == 201, note.json
    assert (note.json["refunded"], note.json["to_credit"]) == (0, 15000)
    assert note.json["invoice"]["status"] == "paid"
    total = note.json["invoice"]["total"]
    assert collected_at_stripe(standin, invoice_id) == (total, 0)
    account = stripe_client.get("/v1/patients/P-9201/account", headers=staff).json
    assert account["balances"][0]["credit"] == 15000
    # The $150 is the patient's credit now: the card gets back only what the bill holds.
    refund = stripe_client.post(
        f"/v1/invoices/{invoice_id}/refunds",
        headers={**staff, "Idempotency-Key": "r-all"},
        json={"amount": total, "reason": "cancelled"},
    )
    assert (refund.status_code, refund.json["code"]) == (422, "refund_exceeds_paid")
    assert collected_at_stripe(standin, invoice_id) == (total, 0)

    # Asked for, the credit goes back to that card: never more than there is.
    def refund_credit(key: str, amount: int):
        return stripe_client.post(
            "/v1/patients/P-9201/account/refunds",
            headers={**staff, "Idempotency-Key": key},
            json={"amount": amount, "currency": "usd", "reason": "asked for it back"},
        )

    back = refund_credit("rc1", 10000)
    assert back.status_code == 201, back.json
    assert (back.json["status"], back.json["amount"], back.json["invoice_status"]) == (
        "succeeded",
        10000,
        "paid",
    )
    assert refund_credit("rc1", 10000).json["id"] == back.json["id"]  # a replay: the same
    more = refund_credit("rc2", 10000)
    assert (more.status_code, more.json["code"]) == (422, "refund_exceeds_paid")
    assert collected_at_stripe(standin, invoice_id) == (total, 10000)
    account = stripe_client.get("/v1/patients/P-9201/account", headers=staff).json
    assert account["balances"][0]["credit"] == 5000
    assert account["movements"][0]["kind"] == "refunded"
    after = invoice(stripe_client, staff, invoice_id)
    assert (after["status"], after["balance_due"]) == ("paid", 0)


def test_only_what_is_left_on_a_gift_card_goes_back_to_its_buyer(
    stripe_client, stripe_app, staff, open_invoice, standin
):
    sold = stripe_client.post(
        "/v1/gift-cards",
        headers={**staff, "Idempotency-Key": "gift"},
        json={
            "amount": 10000,
            "currency": "usd",
            "purchaser_patient_id": "P-9301",
            "name": "Ines Moreau",
        },
    )
    assert sold.status_code == 201, sold.json
    save_card(stripe_client, staff, standin.url, "P-9301", "pm_card_visa")
    paid = charge_card_on_file(stripe_client, staff, sold.json["invoice_id"], "buy")
    assert paid.status_code == 201, paid.json
    someone = open_invoice(card=None, patient_id="P-9302")
    spent = stripe_client.post(
        f"/v1/invoices/{someone}/payments",
        headers={**staff, "Idempotency-Key": "spend"},
        json={"method": "gift_card", "code": sold.json["code"], "amount": 3000},
    )
    assert spent.status_code == 201, spent.json

    def refund(key: str, amount: int):
        return stripe_client.post(
            f"/v1/invoices/{sold.json['invoice_id']}/refunds",
            headers={**staff, "Idempotency-Key": key},
            json={"amount": amount, "reason": "the gift was not wanted"},
        )

    too_much = refund("r1", 8000)
    assert (too_much.status_code, too_much.json["code"]) == (422, "refund_exceeds_paid")
    assert refund("r2", 7000).status_code == 201
    card = stripe_client.get(f"/v1/gift-cards/{sold.json['code']}", headers=staff).json
    assert (card["balance"], card["status"]) == (0, "refunded")
    assert collected_at_stripe(standin, sold.json["invoice_id"]) == (10000, 7000)
    assert collected_at_stripe(standin, someone) == (0, 0)  # the gift card paid, not a card


def test_credit_refunded_to_a_card_comes_back_when_stripe_reports_the_refund_failed(
    stripe_client, stripe_app, staff, open_invoice, standin, proxy
):
    """The call refunding credit was lost; Stripe then says that refund failed (the card
    was closed): the credit is the patient's again, once, and the bill reads as before."""
    from tests.stripe.test_untested_paths import (
        charge_refunded,
        refund_at_stripe,
        stripe_side,
    )

    invoice_id = open_invoice(patient_id="P-9401")
    assert charge_card_on_file(stripe_client, staff, invoice_id, "desk").status_code == 201
    note = stripe_client.post(
        f"/v1/invoices/{invoice_id}/credit-notes",
        headers={**staff, "Idempotency-Key": "cn"},
        json={"amount": 10000, "reason": "shortened", "approved_by": "Dr. Rivera"},
    )
    assert note.status_code == 201, note.json
    proxy.fault = "down"
    try:
        lost = stripe_client.post(
            "/v1/patients/P-9401/account/refunds",
            headers={**staff, "Idempotency-Key": "rc"},
            json={"amount": 10000, "currency": "usd", "reason": "asked for it back"},
        )
    finally:
        proxy.fault = None
    assert lost.status_code == 503, lost.json
    account = stripe_client.get("/v1/patients/P-9401/account", headers=staff).json
    assert account["balances"][0]["credit"] == 0  # on its way to the card, or so it seems
    (ours,) = refunds_of(stripe_app, invoice_id)

    side = stripe_side(stripe_app, invoice_id, 10000)
    failed = refund_at_stripe(side, ours.id, 10000, "failed")
    for _ in range(2):  # told twice: the credit comes back once
        assert deliver(stripe_client, charge_refunded(side, failed)).status_code == 200
    account = stripe_client.get("/v1/patients/P-9401/account", headers=staff).json
    assert account["balances"][0]["credit"] == 10000
    assert [m["kind"] for m in account["movements"]][:2] == ["restored", "refunded"]
    bill = invoice(stripe_client, staff, invoice_id)
    assert (bill["status"], bill["balance_due"], bill["amount_refunded"]) == ("paid", 0, 0)


def test_goodwill_credit_never_reaches_a_card(
    stripe_client, stripe_app, staff, open_invoice, standin
):
    def post(path, key, body):
        return stripe_client.post(path, headers={**staff, "Idempotency-Key": key}, json=body)

    def ask_for_credit_back(key):
        body = {"amount": 10000, "currency": "usd", "reason": "asked"}
        return post("/v1/patients/P-9301/account/refunds", key, body)

    note = {"amount": 10000, "reason": "shortened", "approved_by": "Dr. Rivera"}
    first = open_invoice(patient_id="P-9301")
    assert charge_card_on_file(stripe_client, staff, first, "c1").status_code == 201
    assert post(f"/v1/invoices/{first}/credit-notes", "n1", note).status_code == 201
    # That card money's credit pays the next bill; then the clinic grants goodwill.
    second = open_invoice(card=None, patient_id="P-9301", booking_id="BK-P-9301-2")
    with stripe_app.app_context():
        assert received.apply_all_credit(db.session()) == 10000
    grant = {"amount": 10000, "currency": "usd", "reason": "late", "approved_by": "M. Chen"}
    assert post("/v1/patients/P-9301/account/credits", "g1", grant).status_code == 201
    refused = ask_for_credit_back("r1")
    assert (refused.status_code, refused.json["code"]) == (409, "no_credit")
    assert collected_at_stripe(standin, first) == (50000, 0)

    # Goodwill pays part of a bill, a card the rest; a credit note on it gives the
    # goodwill back as goodwill, not to the card.
    third = open_invoice(card=None, patient_id="P-9301", booking_id="BK-P-9301-3")
    used = post(f"/v1/invoices/{third}/payments", "a1", {"method": "account_credit"})
    assert (used.status_code, used.json["amount"]) == (201, 10000)
    assert charge_card_on_file(stripe_client, staff, third, "c2").status_code == 201
    assert post(f"/v1/invoices/{third}/credit-notes", "n2", note).status_code == 201
    refused = ask_for_credit_back("r2")
    assert (refused.status_code, refused.json["code"]) == (409, "no_credit")
    assert collected_at_stripe(standin, third) == (40000, 0)
    account = stripe_client.get("/v1/patients/P-9301/account", headers=staff).json
    assert account["balances"][0]["credit"] == 10000  # still the patient's, for a bill
    assert second and invoice(stripe_client, staff, second)["amount_paid"] == 10000
