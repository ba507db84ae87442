"""Saving a card on file the way Stripe asks for cards charged later: set up with the
bank through a SetupIntent (confirmed in the patient's browser, or here for a PaymentMethod
Stripe.js made), never attached directly; the consent kept as Stripe's customer acceptance."""

from __future__ import annotations

import json
import urllib.parse
import urllib.request
from typing import Any

from tests.fixtures_stripe import authenticate_setup, card_payment_method

CONSENT = {
    "text": "Save this card for future visits and fees at Example Clinic.",
    "agreed_at": "2026-12-05T10:00:00+00:00",
    "ip_address": "203.0.113.7",
    "user_agent": "Mozilla/5.0 (Linux; Android 15)",
}


def browser_confirms_setup(standin: Any, client_secret: str, number: str) -> dict[str, Any]:
    """What Stripe.js does with a SetupIntent's client secret and the card typed in."""
    setup_id = client_secret.split("_secret_")[0]
    form = {
        "key": "pk_test_billing",
        "client_secret": client_secret,
        "payment_method_data[type]": "card",
        "payment_method_data[card][number]": number,
        "payment_method_data[card][exp_month]": "12",
        "payment_method_data[card][exp_year]": "2034",
        "payment_method_data[card][cvc]": "123",
    }
    request = urllib.request.Request(
        f"{standin.url}/v1/setup_intents/{setup_id}/confirm",
        data=urllib.parse.urlencode(form).encode(),
    )
    with urllib.request.urlopen(request, timeout=10) as answer:
        return dict(json.loads(answer.read()))


def charge(client: Any, staff: dict[str, str], invoice_id: str) -> Any:
    return client.post(
        f"/v1/invoices/{invoice_id}/payments",
        headers={**staff, "Idempotency-Key": f"charge-{invoice_id}"},
        json={"method": "card_on_file"},
    )


def test_a_card_set_up_in_the_patients_browser_becomes_the_card_on_file_with_its_acceptance(
    stripe_client, staff, open_invoice, standin, proxy
) -> None:
    invoice_id = open_invoice(card=None, patient_id="P-SETUP-1")
    started = stripe_client.post("/v1/patients/P-SETUP-1/setup-intents", headers=staff)
    assert started.status_code == 201, started.json
    assert started.json["setup_intent"].startswith("seti_")
    confirmed = browser_confirms_setup(standin, started.json["client_secret"], "4242424242424242")
    assert confirmed["status"] == "succeeded"

    saved = stripe_client.post(
        "/v1/patients/P-SETUP-1/payment-methods",
        headers=staff,
        json={"setup_intent": started.json["setup_intent"], "consent": CONSENT},
    )
    assert saved.status_code == 201, saved.json
    assert saved.json["last4"] == "4242" and saved.json["default"] is True
    assert saved.json["consent"] == {
        "text": CONSENT["text"],
        "agreed_at": CONSENT["agreed_at"],
        "ip_address": CONSENT["ip_address"],
        "user_agent": CONSENT["user_agent"],
        "invoice_id": None,
        "setup_intent": started.json["setup_intent"],
        "max_per_charge": None,  # no limits set
        "max_per_year": None,
        "expires_on": None,
    }
    assert proxy.calls("POST", "/v1/payment_methods/" + saved.json["id"] + "/attach") == []
    paid = charge(stripe_client, staff, invoice_id)
    assert (paid.status_code, paid.json["status"]) == (201, "succeeded")


def test_a_card_the_bank_must_confirm_is_saved_once_confirmed_then_charged_without_asking(
    stripe_client, staff, open_invoice, standin
) -> None:
    invoice_id = open_invoice(card=None, patient_id="P-SETUP-2")
    method = card_payment_method(standin.url, "4000002500003155")
    asked = stripe_client.post(
        "/v1/patients/P-SETUP-2/payment-methods", headers=staff, json={"payment_method": method}
    )
    assert asked.status_code == 402
    assert asked.json["code"] == "authentication_required"
    assert "_secret_" in asked.json["client_secret"]
    listed = stripe_client.get("/v1/patients/P-SETUP-2/payment-methods", headers=staff).json
    assert listed["data"] == []  # nothing saved until the patient confirms

    authenticate_setup(standin.url, asked.json["setup_intent"], asked.json["client_secret"])
    saved = stripe_client.post(
        "/v1/patients/P-SETUP-2/payment-methods",
        headers=staff,
        json={"setup_intent": asked.json["setup_intent"]},
    )
    assert saved.status_code == 201, saved.json
    # Set up for later use, this test card needs no more authentication off-session.
    paid = charge(stripe_client, staff, invoice_id)
    assert (paid.status_code, paid.json["status"]) == (201, "succeeded")


def test_a_card_declined_when_set_up_is_402_and_nothing_is_saved(
    stripe_client, staff, standin, open_invoice
) -> None:
    open_invoice(card=None, patient_id="P-SETUP-3")
    method = card_payment_method(standin.url, "4000000000000002")
    refused = stripe_client.post(
        "/v1/patients/P-SETUP-3/payment-methods", headers=staff, json={"payment_method": method}
    )
    assert (refused.status_code, refused.json["code"]) == (402, "card_declined")
    listed = stripe_client.get("/v1/patients/P-SETUP-3/payment-methods", headers=staff).json
    assert listed["data"] == []


def test_a_setup_intent_of_another_patient_or_not_finished_is_refused(
    stripe_client, staff, standin, open_invoice
) -> None:
    open_invoice(card=None, patient_id="P-SETUP-4")
    open_invoice(card=None, patient_id="P-SETUP-5")
    other = stripe_client.post("/v1/patients/P-SETUP-4/setup-intents", headers=staff).json
    browser_confirms_setup(standin, other["client_secret"], "4242424242424242")
    stolen = stripe_client.post(
        "/v1/patients/P-SETUP-5/payment-methods",
        headers=staff,
        json={"setup_intent": other["setup_intent"]},
    )
    assert (stolen.status_code, stolen.json["code"]) == (404, "setup_intent_not_found")

    unfinished = stripe_client.post("/v1/patients/P-SETUP-5/setup-intents", headers=staff).json
    early = stripe_client.post(
        "/v1/patients/P-SETUP-5/payment-methods",
        headers=staff,
        json={"setup_intent": unfinished["setup_intent"]},
    )
    assert (early.status_code, early.json["code"]) == (409, "setup_intent_not_succeeded")


def test_a_card_is_named_by_its_setup_intent_or_its_payment_method_never_both(
    stripe_client, staff, proxy
) -> None:
    for body, field in (
        ({}, "setup_intent"),
        ({"setup_intent": "seti_a", "payment_method": "pm_card_visa"}, "setup_intent"),
        ({"setup_intent": "pi_not_a_setup"}, "setup_intent"),
        (
            {"payment_method": "pm_card_visa", "consent": {**CONSENT, "ip_address": "x"}},
            "consent.ip_address",
        ),
    ):
        answer = stripe_client.post(
            "/v1/patients/P-SETUP-6/payment-methods", headers=staff, json=body
        )
        assert answer.status_code == 422, (body, answer.json)
        assert list(answer.json["errors"]) == [field], answer.json
    assert proxy.calls("POST", "/v1/setup_intents") == []
