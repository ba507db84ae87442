"""Partial and split payments against the Stripe stand-in: part by the card on file, the
rest by another way; the pay page charging only what is left; refunds never more than
each payment collected; many partial charges at once never beyond the total."""

from __future__ import annotations

import re
import threading
from typing import Any

import requests
from flask import Flask

from tests.fixtures_stripe import eventually
from tests.stripe.collect import intents_of, open_pay_page, patient_confirms, pay_link
from tests.stripe.test_untested_paths import invoice_of, key


def charge(client: Any, staff: dict[str, str], invoice_id: str, idem: str, **body: Any) -> Any:
    return client.post(
        f"/v1/invoices/{invoice_id}/payments",
        json={"method": "card_on_file", **body},
        headers={**staff, "Idempotency-Key": idem},
    )


def intents(standin: Any, invoice_id: str) -> list[tuple[int, str]]:
    """The PaymentIntents Stripe holds for the invoice: (amount, status), smallest first."""
    return sorted((i["amount"], i["status"]) for i in intents_of(standin, invoice_id))


def money(client: Any, staff: dict[str, str], invoice_id: str) -> tuple[str, int, int]:
    now = invoice_of(client, staff, invoice_id)
    return now["status"], now["amount_paid"], now["balance_due"]


def test_part_by_card_then_the_rest_by_card_and_refunds_per_payment(
    stripe_client: Any, staff: dict[str, str], open_invoice: Any, standin: Any
) -> None:
    invoice_id = open_invoice("pm_card_visa")
    first = charge(stripe_client, staff, invoice_id, "part-1", amount=20000)
    assert first.status_code == 201 and first.json["status"] == "succeeded", first.json
    assert first.json["amount"] == 20000 and first.json["invoice_status"] == "partially_paid"
    assert money(stripe_client, staff, invoice_id) == ("partially_paid", 20000, 30000)
    small = charge(stripe_client, staff, invoice_id, "part-x", amount=30)
    assert small.status_code == 422 and small.json["code"] == "amount_too_small"
    beyond = charge(stripe_client, staff, invoice_id, "part-y", amount=30001)
    assert beyond.status_code == 422 and beyond.json["code"] == "amount_exceeds_balance"

    rest = charge(stripe_client, staff, invoice_id, "part-2")  # by default, the balance
    assert rest.status_code == 201 and rest.json["amount"] == 30000, rest.json
    assert money(stripe_client, staff, invoice_id) == ("paid", 50000, 0)
    assert intents(standin, invoice_id) == [(20000, "succeeded"), (30000, "succeeded")]

    def refund(amount: int, idem: str) -> Any:
        return stripe_client.post(
            f"/v1/invoices/{invoice_id}/refunds",
            json={"amount": amount, "reason": "shorter session"},
            headers={**staff, "Idempotency-Key": idem},
        )

    # Each refund goes back to one card, never more than that payment collected.
    too_much = refund(35000, "r1")
    assert too_much.status_code == 422 and too_much.json["code"] == "refund_exceeds_paid"
    assert refund(30000, "r2").status_code == 201
    assert refund(20000, "r3").status_code == 201
    assert invoice_of(stripe_client, staff, invoice_id)["status"] == "refunded"
    assert refund(1, "r4").status_code == 422  # nothing left on either card


def test_cash_and_a_card_split_an_invoice_and_the_cash_is_not_refunded_through_stripe(
    stripe_app: Flask, stripe_client: Any, staff: dict[str, str], open_invoice: Any
) -> None:
    desk = {**staff, **key(stripe_app, "payments:record")}
    invoice_id = open_invoice("pm_card_visa")
    cash = stripe_client.post(
        f"/v1/invoices/{invoice_id}/payments",
        json={"method": "cash", "amount": 20000},
        headers={**desk, "Idempotency-Key": "cash"},
    )
    assert cash.status_code == 201, cash.json
    card = charge(stripe_client, staff, invoice_id, "card")
    assert (card.status_code, card.json["amount"]) == (201, 30000)
    assert money(stripe_client, staff, invoice_id) == ("paid", 50000, 0)

    refund = stripe_client.post(
        f"/v1/invoices/{invoice_id}/refunds",
        json={"amount": 30001, "reason": "goodwill"},
        headers={**staff, "Idempotency-Key": "rf-1"},
    )
    assert refund.status_code == 422  # the card paid 30000; the cash is not Stripe's

    cash_only = open_invoice(None)
    stripe_client.post(
        f"/v1/invoices/{cash_only}/payments",
        json={"method": "cash"},
        headers={**desk, "Idempotency-Key": "cash-all"},
    )
    refused = stripe_client.post(
        f"/v1/invoices/{cash_only}/refunds",
        json={"amount": 1000, "reason": "goodwill"},
        headers={**staff, "Idempotency-Key": "rf-2"},
    )
    assert refused.status_code == 409 and refused.json["code"] == "refund_outside_stripe"


def test_the_pay_page_charges_only_what_is_left_after_cash(
    stripe_app: Flask, stripe_client: Any, staff: dict[str, str], open_invoice: Any, standin: Any
) -> None:
    """The patient opened the pay page for all of it; then paid part in cash at the desk.
    The page's next visit cancels the stale PaymentIntent and asks for the rest."""
    desk = {**staff, **key(stripe_app, "payments:record")}
    invoice_id = open_invoice(None)
    open_pay_page(stripe_client, staff, invoice_id)
    assert intents(standin, invoice_id) == [(50000, "requires_payment_method")]
    cash = stripe_client.post(
        f"/v1/invoices/{invoice_id}/payments",
        json={"method": "cash", "amount": 20000},
        headers={**desk, "Idempotency-Key": "cash"},
    )
    assert cash.status_code == 201, cash.json

    secret = open_pay_page(stripe_client, staff, invoice_id)  # the patient comes back
    assert intents(standin, invoice_id) == [
        (30000, "requires_payment_method"),
        (50000, "canceled"),
    ]
    confirmed = patient_confirms(standin, secret)
    assert confirmed.get("status") == "succeeded", confirmed
    eventually(lambda: money(stripe_client, staff, invoice_id) == ("paid", 50000, 0))


def test_many_partial_charges_at_once_never_collect_beyond_the_total(
    stripe_app: Flask, stripe_client: Any, staff: dict[str, str], open_invoice: Any, standin: Any
) -> None:
    """Eight charges of 20000 on an invoice of 50000, all at once, over HTTP: whatever
    wins, Stripe never holds more than the invoice's total."""
    invoice_id = open_invoice("pm_card_visa")
    base = stripe_app.config["LIVE_URL"]
    barrier = threading.Barrier(8)
    answers: list[int] = []

    def one(n: int) -> None:
        barrier.wait()
        answer = requests.post(
            f"{base}/v1/invoices/{invoice_id}/payments",
            json={"method": "card_on_file", "amount": 20000},
            headers={**staff, "Idempotency-Key": f"many-{n}"},
            timeout=60,
        )
        answers.append(answer.status_code)

    threads = [threading.Thread(target=one, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=90)
    collected = sum(a for a, s in intents(standin, invoice_id) if s == "succeeded")
    assert collected <= 50000 and answers.count(201) * 20000 == collected, answers
    assert set(answers) <= {201, 409, 422}, answers
    status, paid, due = money(stripe_client, staff, invoice_id)
    assert (paid, due) == (collected, 50000 - collected)
    assert status == ("paid" if collected == 50000 else "partially_paid")


def test_a_pay_link_for_part_opens_asking_for_that_part_within_the_clinics_rules(
    stripe_client: Any, staff: dict[str, str], open_invoice: Any, standin: Any
) -> None:
    invoice_id = open_invoice(None)

    def link(amount: int, idem: str) -> Any:
        return stripe_client.post(
            f"/v1/invoices/{invoice_id}/payments",
            json={"method": "online", "amount": amount},
            headers={**staff, "Idempotency-Key": idem},
        )

    below = link(4999, "l1")  # PAY_PAGE_MINIMUMS: $50.00 at least
    assert below.status_code == 422 and below.json["code"] == "amount_too_small"
    assert "amount" in below.json["errors"]
    beyond = link(50001, "l2")
    assert beyond.status_code == 422 and beyond.json["code"] == "amount_exceeds_balance"

    made = link(12500, "l3")
    assert made.status_code == 201, made.json
    assert made.json["amount"] == 12500 and made.json["pay_url"].endswith("?amount=125.00")
    page = stripe_client.get("/" + made.json["pay_url"].split("/", 3)[3])
    assert page.status_code == 200 and b"Pay $125.00" in page.data
    assert b"submitted=1&amp;amount=125.00" in page.data  # back from the bank: the same part
    assert intents(standin, invoice_id) == [(12500, "requires_payment_method")]

    # The patient changes it to all of it: that intent is cancelled, one for all is made.
    path = "/" + made.json["pay_url"].split("/", 3)[3].split("?")[0]
    whole = stripe_client.get(path, query_string={"amount": "500"})
    assert whole.status_code == 200 and b"Pay $500.00" in whole.data
    assert sorted(intents(standin, invoice_id)) == [
        (12500, "canceled"),
        (50000, "requires_payment_method"),
    ]
    # Nonsense or too much is said on the page, which asks for the balance.
    for typed in ("12,50.x", "-5", "600", "49.99", "1e3", "0.001"):
        odd = stripe_client.get(path, query_string={"amount": typed})
        assert odd.status_code == 200 and b"Enter an amount of at least $50.00" in odd.data, typed
        assert b"Pay $500.00" in odd.data
    assert len(intents(standin, invoice_id)) == 2  # nothing more made at Stripe


def test_cash_after_the_patient_just_paid_online_is_refused_and_the_payment_counted(
    stripe_app: Flask, stripe_client: Any, staff: dict[str, str], open_invoice: Any, standin: Any
) -> None:
    """The patient paid on the pay page a moment ago; Stripe's webhook is not here yet.
    The desk's cash would collect twice: the pay page's intent is asked first."""
    desk = key(stripe_app, "payments:record")
    invoice_id = open_invoice(None)
    secret = open_pay_page(stripe_client, staff, invoice_id)
    assert patient_confirms(standin, secret).get("status") == "succeeded"
    cash = stripe_client.post(
        f"/v1/invoices/{invoice_id}/payments",
        json={"method": "cash", "amount": 10000},
        headers={**desk, "Idempotency-Key": "cash-late"},
    )
    assert cash.status_code == 409 and cash.json["code"] == "invoice_not_payable", cash.json
    assert money(stripe_client, staff, invoice_id) == ("paid", 50000, 0)  # counted at once


def test_the_receipt_lists_each_part_and_what_is_still_owed(
    stripe_app: Flask, stripe_client: Any, staff: dict[str, str], open_invoice: Any
) -> None:
    import io

    from pypdf import PdfReader

    desk = key(stripe_app, "payments:record")
    invoice_id = open_invoice("pm_card_visa")

    def receipt() -> str:
        answer = stripe_client.get(f"/v1/invoices/{invoice_id}/receipt.pdf", headers=staff)
        assert answer.status_code == 200, answer.json
        return "".join(p.extract_text() for p in PdfReader(io.BytesIO(answer.data)).pages)

    assert charge(stripe_client, staff, invoice_id, "hsa", amount=20000).status_code == 201
    text = receipt()  # paid in part: a receipt for what was paid, and the balance
    assert "Balance due" in text and "$300.00" in text and "Visa ending 4242" in text
    link = pay_link(stripe_client, staff, invoice_id)
    check = stripe_client.post(
        f"/v1/invoices/{invoice_id}/payments",
        json={"method": "check", "reference": "1042"},
        headers={**desk, "Idempotency-Key": "check"},
    )
    assert check.status_code == 201, check.json
    text = receipt()
    assert "Balance due" not in text
    assert "Payments" in text and "Check 1042" in text and "$200.00" in text
    page = stripe_client.get(link + "/receipt")
    assert b"Check 1042" in page.data and b"Visa ending 4242" in page.data


def test_a_page_opened_for_another_amount_after_the_patient_paid_shows_the_receipt(
    stripe_client: Any, staff: dict[str, str], open_invoice: Any, standin: Any
) -> None:
    """The patient paid all of it; Stripe's webhook is not here yet; the page is opened
    again asking for a part. Its old PaymentIntent is found paid: the receipt, no error."""
    invoice_id = open_invoice(None)
    path = pay_link(stripe_client, staff, invoice_id)
    secret = open_pay_page(stripe_client, staff, invoice_id)
    assert patient_confirms(standin, secret).get("status") == "succeeded"
    again = stripe_client.get(path, query_string={"amount": "100"})
    assert again.status_code == 200, again.data[:500]
    assert b"Paid" in again.data and b"Pay $100.00" not in again.data
    assert money(stripe_client, staff, invoice_id) == ("paid", 50000, 0)


def test_a_pay_link_for_part_replayed_after_it_was_paid_answers_as_the_first_time(
    stripe_client: Any, staff: dict[str, str], open_invoice: Any, standin: Any
) -> None:
    invoice_id = open_invoice(None)
    body = {"method": "online", "amount": 30000}
    headers = {**staff, "Idempotency-Key": "part-link"}
    made = stripe_client.post(f"/v1/invoices/{invoice_id}/payments", json=body, headers=headers)
    assert made.status_code == 201, made.json
    page = stripe_client.get("/" + made.json["pay_url"].split("/", 3)[3])  # the patient
    assert b"Pay $300.00" in page.data
    secret = re.search(rb'data-client-secret="([^"]+)"', page.data)
    assert secret is not None
    assert patient_confirms(standin, secret.group(1).decode()).get("status") == "succeeded"
    eventually(lambda: money(stripe_client, staff, invoice_id) == ("partially_paid", 30000, 20000))
    again = stripe_client.post(f"/v1/invoices/{invoice_id}/payments", json=body, headers=headers)
    assert again.status_code == 201, again.json
    assert (again.json["pay_url"], again.json["amount"]) == (made.json["pay_url"], 30000)
