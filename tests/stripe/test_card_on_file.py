"""Charging a card on file against the Stripe stand-in."""

from __future__ import annotations

from tests.fixtures_stripe import SECRET_KEY, eventually


def pay(client, staff, invoice_id, key="pay-1"):
    return client.post(
        f"/v1/invoices/{invoice_id}/payments",
        headers={**staff, "Idempotency-Key": key},
        json={"method": "card_on_file"},
    )


def test_visa_on_file_pays_the_invoice(stripe_client, staff, open_invoice) -> None:
    invoice_id = open_invoice("pm_card_visa")
    response = pay(stripe_client, staff, invoice_id)
    assert response.status_code == 201, response.json
    assert response.json["status"] == "succeeded"
    assert response.json["card_last4"] == "4242"
    invoice = stripe_client.get(f"/v1/invoices/{invoice_id}", headers=staff).json
    assert invoice["status"] == "paid"
    assert invoice["amount_paid"] == invoice["total"] == 50000


def test_declining_card_is_402_and_leaves_the_invoice_open(
    stripe_client, staff, open_invoice
) -> None:
    invoice_id = open_invoice("4000000000000341")
    response = pay(stripe_client, staff, invoice_id)
    assert response.status_code == 402
    assert response.json["code"] == "card_declined"
    assert "declined" in response.json["detail"].lower()
    assert response.json["payment_id"].startswith("pay_")
    invoice = stripe_client.get(f"/v1/invoices/{invoice_id}", headers=staff).json
    assert invoice["status"] == "open"
    assert invoice["amount_paid"] == 0


def test_three_d_secure_waits_for_the_patient(stripe_client, staff, open_invoice, standin) -> None:
    import urllib.parse
    import urllib.request

    invoice_id = open_invoice("4000002760003184")
    response = pay(stripe_client, staff, invoice_id)
    assert response.status_code == 201, response.json
    assert response.json["status"] == "requires_action"
    secret = response.json["next_action"]["client_secret"]
    assert (
        stripe_client.get(f"/v1/invoices/{invoice_id}", headers=staff).json["status"]
        == "processing"
    )

    intent_id = secret.split("_secret_")[0]
    data = urllib.parse.urlencode({"client_secret": secret, "success": "true"}).encode()
    authenticate = urllib.request.Request(
        f"{standin.url}/v1/payment_intents/{intent_id}/_authenticate",
        data=data,
        headers={"Authorization": f"Bearer {SECRET_KEY}"},
    )
    urllib.request.urlopen(authenticate).close()

    def paid():
        return (
            stripe_client.get(f"/v1/invoices/{invoice_id}", headers=staff).json["status"] == "paid"
        )

    eventually(paid)


def test_no_card_on_file_is_a_clear_conflict(stripe_client, staff, open_invoice) -> None:
    invoice_id = open_invoice(card=None)
    response = pay(stripe_client, staff, invoice_id)
    assert response.status_code == 409
    assert response.json["code"] == "no_card_on_file"


def test_paid_invoice_cannot_be_paid_again(stripe_client, staff, open_invoice, proxy) -> None:
    invoice_id = open_invoice("pm_card_visa")
    pay(stripe_client, staff, invoice_id, key="first")
    again = pay(stripe_client, staff, invoice_id, key="second")
    assert again.status_code == 409
    assert again.json["code"] == "invoice_not_payable"
    assert len(proxy.calls("POST", "/v1/payment_intents")) == 1


def test_payment_needs_an_idempotency_key(stripe_client, staff, open_invoice) -> None:
    invoice_id = open_invoice("pm_card_visa")
    response = stripe_client.post(
        f"/v1/invoices/{invoice_id}/payments", headers=staff, json={"method": "card_on_file"}
    )
    assert response.status_code == 400
    assert response.json["code"] == "idempotency_key_required"


def test_saved_cards_show_brand_last4_and_expiry_only(stripe_client, staff, open_invoice) -> None:
    open_invoice("pm_card_visa", patient_id="P-CARDS")
    cards = stripe_client.get("/v1/patients/P-CARDS/payment-methods", headers=staff).json["data"]
    assert len(cards) == 1
    # Of the card itself, never more than brand, last four and expiry; beside it, how it
    # was saved (the patient's consent to later charges, none here) and whether it is HSA/FSA.
    assert set(cards[0]) == {
        *("id", "brand", "last4", "exp_month", "exp_year", "default", "consent", "hsa_fsa")
    }
    assert cards[0]["last4"] == "4242" and cards[0]["default"] is True
    assert cards[0]["consent"] is None and cards[0]["hsa_fsa"] is False


def test_setup_intent_gives_a_client_secret_and_one_customer(
    stripe_client, staff, proxy, open_invoice
) -> None:
    open_invoice(card=None, patient_id="P-SETUP")
    first = stripe_client.post("/v1/patients/P-SETUP/setup-intents", headers=staff)
    second = stripe_client.post("/v1/patients/P-SETUP/setup-intents", headers=staff)
    assert first.status_code == second.status_code == 201
    assert "_secret_" in first.json["client_secret"]
    assert len(proxy.calls("POST", "/v1/customers")) == 1


def test_a_patient_no_quote_names_gets_no_stripe_customer(stripe_client, staff, proxy) -> None:
    for path, body in (
        ("/v1/patients/P-NEVER-SEEN/setup-intents", None),
        ("/v1/patients/P-NEVER-SEEN/payment-methods", {"payment_method": "pm_card_visa"}),
    ):
        answer = stripe_client.post(path, headers=staff, json=body)
        assert (answer.status_code, answer.json["code"]) == (404, "patient_not_found"), path
    assert proxy.calls("POST", "/v1/customers") == []


def test_setup_intents_take_no_body_fields(stripe_client, staff, proxy, open_invoice) -> None:
    open_invoice(card=None, patient_id="P-STRICT")
    answer = stripe_client.post(
        "/v1/patients/P-STRICT/setup-intents", headers=staff, json={"usage": "on_session"}
    )
    assert answer.status_code == 422 and list(answer.json["errors"]) == ["usage"]
    assert proxy.calls("POST", "/v1/customers") == []


def test_a_patient_id_no_booking_could_have_is_refused_before_stripe(
    stripe_client, staff, proxy
) -> None:
    too_long = "P" * 65  # bookings take at most 64 characters, and so does the database
    for method, path, body in (
        ("post", f"/v1/patients/{too_long}/setup-intents", None),
        ("post", f"/v1/patients/{too_long}/payment-methods", {"payment_method": "pm_card_visa"}),
        ("get", f"/v1/patients/{too_long}/payment-methods", None),
        ("post", "/v1/patients/P%201/setup-intents", None),
    ):
        answer = getattr(stripe_client, method)(path, headers=staff, json=body)
        assert answer.status_code == 422, (path, answer.json)
        assert answer.json["code"] == "validation_error"
        assert list(answer.json["errors"]) == ["patient_id"]
    assert proxy.calls("POST", "/v1/customers") == []


def test_nothing_clinical_is_sent_to_stripe(stripe_client, staff, open_invoice, proxy) -> None:
    invoice_id = open_invoice("pm_card_visa")
    pay(stripe_client, staff, invoice_id)
    sent = " ".join(r.body.lower() for r in proxy.requests)
    for word in (
        "iv_individual",
        "im_group",
        "ketamine",
        "infusion",
        "dr. lee",
        "dr.+lee",
        "test patient",
        "test+patient",
    ):
        assert word not in sent, word
    assert "payment_id" in sent  # opaque ids do go
