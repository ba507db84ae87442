"""A patient asks for their account credit back from the portal: a request for staff,
never a refund by itself. Refunding the credit answers it; declining it keeps the credit;
another family's patient is a 404; a patient without credit is told so."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from tests.stripe.test_portal_cards import csrf_of
from tests.stripe.test_portal_statements import portal_client


def credit_from_a_card(
    client: Any, staff: dict[str, str], open_invoice: Callable[..., str], patient: str, email: str
) -> str:
    """A bill paid by card, then lowered by a credit note: the difference is credit."""
    invoice = open_invoice(
        "pm_card_visa", patient_id=patient, booking_id=f"BK-{patient}", email=email
    )
    for url, key, body in (
        (f"/v1/invoices/{invoice}/payments", f"pay-{patient}", {"method": "card_on_file"}),
        (
            f"/v1/invoices/{invoice}/credit-notes",
            f"note-{patient}",
            {"amount": 8000, "reason": "shortened", "approved_by": "M. Chen"},
        ),
    ):
        answer = client.post(url, json=body, headers={**staff, "Idempotency-Key": key})
        assert answer.status_code == 201, answer.json
    return invoice


def test_asking_for_credit_back_makes_one_request_that_a_refund_answers(
    stripe_client: Any, staff: dict[str, str], open_invoice: Callable[..., str]
) -> None:
    client, app = stripe_client, stripe_client.application
    credit_from_a_card(client, staff, open_invoice, "P-RITA", "rita@example.org")
    account = client.get("/v1/patients/P-RITA/account", headers=staff).json
    assert account["balances"][0]["credit"] == 8000

    portal = portal_client(app, "rita@example.org")
    home = portal.get("/account")
    assert "Ask for your credit of $80.00 back" in home.get_data(as_text=True)
    csrf = csrf_of(home)
    for _ in range(2):  # asked twice: one request
        asked = portal.post(
            "/account/patients/P-RITA/credit-refund-request", data={"csrf": csrf, "currency": "usd"}
        )
        assert asked.status_code == 200 and "Request sent" in asked.get_data(as_text=True)
    assert "You asked for your credit back on" in portal.get("/account").get_data(as_text=True)
    waiting = client.get("/v1/credit-refund-requests?status=open", headers=staff).json["data"]
    assert [(r["patient_id"], r["amount"], r["status"]) for r in waiting] == [
        ("P-RITA", 8000, "open")
    ]
    # Nothing was refunded by asking.
    assert (
        client.get("/v1/patients/P-RITA/account", headers=staff).json["balances"][0]["credit"]
        == 8000
    )

    refund = client.post(
        "/v1/patients/P-RITA/account/refunds",
        json={"amount": 8000, "currency": "usd", "reason": "asked in the portal"},
        headers={**staff, "Idempotency-Key": "rita-credit"},
    )
    assert refund.status_code == 201, refund.json
    [answered] = client.get("/v1/credit-refund-requests", headers=staff).json["data"]
    assert (answered["status"], answered["refund_id"]) == ("refunded", refund.json["id"])
    assert client.get("/v1/credit-refund-requests?status=open", headers=staff).json["data"] == []


def test_a_declined_request_keeps_the_credit_and_other_patients_are_404(
    stripe_client: Any, staff: dict[str, str], open_invoice: Callable[..., str]
) -> None:
    client, app = stripe_client, stripe_client.application
    credit_from_a_card(client, staff, open_invoice, "P-SAUL", "saul@example.org")
    open_invoice(None, patient_id="P-NOCREDIT", booking_id="BK-NC", email="nina@example.org")
    portal = portal_client(app, "saul@example.org")
    csrf = csrf_of(portal.get("/account"))
    portal.post(
        "/account/patients/P-SAUL/credit-refund-request", data={"csrf": csrf, "currency": "usd"}
    )
    [request] = client.get("/v1/credit-refund-requests?status=open", headers=staff).json["data"]
    declined = client.post(
        f"/v1/credit-refund-requests/{request['id']}/decline",
        json={"note": "the credit pays the next session"},
        headers=staff,
    )
    assert declined.status_code == 200 and declined.json["status"] == "declined"
    again = client.post(
        f"/v1/credit-refund-requests/{request['id']}/decline", json={"note": "again"}, headers=staff
    )
    assert again.status_code == 409 and again.json["code"] == "refund_request_closed"
    assert (
        client.get("/v1/patients/P-SAUL/account", headers=staff).json["balances"][0]["credit"]
        == 8000
    )

    other = portal.post(
        "/account/patients/P-NOCREDIT/credit-refund-request", data={"csrf": csrf, "currency": "usd"}
    )
    assert other.status_code == 404
    nina = portal_client(app, "nina@example.org")
    none = nina.post(
        "/account/patients/P-NOCREDIT/credit-refund-request",
        data={"csrf": csrf_of(nina.get("/account")), "currency": "usd"},
    )
    assert none.status_code == 409 and "no credit" in none.get_data(as_text=True)

    # Asked again after the answer: staff page through both, oldest first.
    portal.post(
        "/account/patients/P-SAUL/credit-refund-request", data={"csrf": csrf, "currency": "usd"}
    )
    first = client.get("/v1/credit-refund-requests?limit=1", headers=staff).json
    assert [r["status"] for r in first["data"]] == ["declined"] and first["has_more"] is True
    after = first["data"][0]["id"]
    rest = client.get(f"/v1/credit-refund-requests?starting_after={after}", headers=staff).json
    assert [r["status"] for r in rest["data"]] == ["open"] and rest["has_more"] is False
    gone = client.get(f"/v1/credit-refund-requests?starting_after=crq_{'0' * 24}", headers=staff)
    assert gone.status_code == 404
