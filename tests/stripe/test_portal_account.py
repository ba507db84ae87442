"""What the portal's account page shows beside bills, against the Stripe stand-in: a
payment plan's next instalment, a package's credits left, Good Faith Estimates (their PDF
downloadable, another patient's a 404)."""

from __future__ import annotations

import io
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from pypdf import PdfReader

from billing.adapters import db
from billing.domain.dates import clinic_date
from billing.services.access import keys
from tests.conftest import in_days
from tests.stripe.plans import make_plan
from tests.stripe.test_portal_statements import portal_client

EMAIL = "ines@example.org"


def test_the_account_shows_plans_packages_and_estimates(
    stripe_client: Any, staff: dict[str, str], open_invoice: Callable[..., str]
) -> None:
    client = stripe_client
    planned = open_invoice("pm_card_visa", patient_id="P-INES", booking_id="BK-I1", email=EMAIL)
    today = datetime.now(UTC).date()
    make_plan(client, staff, planned, instalments=4, interval="month", first_at=today.isoformat())

    with client.application.app_context():
        _, plain = keys.create_key(db.session(), "catalogue", ["catalog:write"])
    made = client.post(
        "/v1/catalog/packages",
        headers={"Authorization": f"Bearer {plain}"},
        json={
            "code": "SIX",
            "name": "Induction series",
            "iv_credits": 6,
            "amount": 270000,
            "currency": "usd",
            "valid_days": 180,
        },
    )
    assert made.status_code == 201, made.json
    sold = client.post(
        "/v1/patients/P-INES/packages", headers=staff, json={"code": "SIX", "name": "Ines Vidal"}
    ).json
    paid = client.post(
        f"/v1/invoices/{sold['invoice_id']}/payments",
        headers={**staff, "Idempotency-Key": "ines-package"},
        json={"method": "cash"},
    )
    assert paid.status_code == 201, paid.json

    def estimate_for(patient: str, email: str, booking: str) -> str:
        quote = client.post(
            "/v1/quotes",
            headers=staff,
            json={
                "booking_id": booking,
                "session_type": "iv_individual",
                "scheduled_at": in_days(20),
                "currency": "usd",
                "patients": [{"patient_id": patient, "name": "Someone", "email": email}],
            },
        ).json
        issued = client.post(
            f"/v1/quotes/{quote['id']}/estimate", headers=staff, json={"patient_id": patient}
        )
        assert issued.status_code == 201, issued.json
        return str(issued.json["id"])

    mine = estimate_for("P-INES", EMAIL, "BK-I2")
    theirs = estimate_for("P-ELSE", "else@example.org", "BK-E1")
    open_invoice(None, patient_id="P-ELSE", booking_id="BK-E2", email="else@example.org")

    portal = portal_client(client.application, EMAIL)
    text = portal.get("/account").get_data(as_text=True)
    assert f"Payment plan: next $125.00 on {clinic_date(today)}" in text
    assert "Induction series" in text and "6 of 6 IV credits left" in text
    assert "Good Faith Estimates" in text and f"/account/estimates/{mine}.pdf" in text
    pdf = portal.get(f"/account/estimates/{mine}.pdf")
    assert pdf.status_code == 200 and pdf.mimetype == "application/pdf"
    words = "".join(page.extract_text() for page in PdfReader(io.BytesIO(pdf.data)).pages)
    assert "Good Faith Estimate" in words and "$500.00" in words
    assert portal.get(f"/account/estimates/{theirs}.pdf").status_code == 404
    assert portal.get("/account/estimates/est_nothing.pdf").status_code == 404
