"""For any sequence of cancellations, attendance marks and corrections on a group booking,
against the Stripe stand-in, the money is right after every step:

- a patient never pays more than their line plus at most one fee, and no fee is more
  than the line it comes from;
- no invoice is refunded more than it was paid, at Stripe or in our ledger;
- a booking left with fewer than 2 live patients is never charged at the group price.
"""

from __future__ import annotations

import itertools
import os
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from billing.adapters import db
from billing.domain.errors import ServiceError
from billing.services.access import keys
from billing.services.bookings import lifecycle
from billing.services.idempotency import IdempotencyRequest
from billing.web.api.bookings import settings as lifecycle_settings
from tests.stripe.collect import collected_at_stripe

pytestmark = pytest.mark.parametrize("stripe_app", ["sqlite"], indirect=True)

CONSENT = {
    "text": "Save this card for future visits and fees at Example Clinic.",
    "agreed_at": "2026-11-30T17:00:00+00:00",
}
PATIENTS = 3
LINE = 25000  # P / 2

cancel = st.tuples(
    st.just("cancel"),
    st.one_of(st.none(), st.integers(0, PATIENTS - 1)),
    st.sampled_from(["patient", "clinic"]),
)
mark = st.tuples(
    st.just("mark"), st.integers(0, PATIENTS - 1), st.sampled_from(["attended", "no_show"])
)
charge = st.tuples(st.just("charge"), st.integers(0, PATIENTS - 1), st.just(""))
steps = st.lists(st.one_of(cancel, mark, charge), min_size=1, max_size=8)
setups = st.tuples(
    st.lists(st.booleans(), min_size=PATIENTS, max_size=PATIENTS),  # paid before the day
    st.lists(st.booleans(), min_size=PATIENTS, max_size=PATIENTS),  # card saved with consent
)


def test_any_sequence_of_changes_keeps_the_money_right(
    stripe_app: Any, stripe_client: Any, standin: Any
) -> None:
    with stripe_app.app_context():
        key, plain = keys.create_key(
            db.session(),
            "desk",
            [
                "quotes:write",
                "invoices:read",
                "invoices:write",
                "payments:write",
                "bookings:write",
                "refunds:write",
            ],
        )
        key_id = key.id
    desk = {"Authorization": f"Bearer {plain}"}
    examples = itertools.count()

    @settings(
        max_examples=int(os.environ.get("BOOKING_EXAMPLES", "20")),
        deadline=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    )
    @given(setup=setups, changes=steps)
    def run(setup: tuple[list[bool], list[bool]], changes: list[tuple[Any, ...]]) -> None:
        n = next(examples)
        booking_id = f"BK-PROP-{n}"
        patients = [f"P-PROP-{n}-{i}" for i in range(PATIENTS)]
        paid_before, consented = setup
        # An hour away: cancellations are late (48 hours' notice); attendance is marked
        # once the session has started, ten minutes in.
        start = datetime.now(UTC).replace(microsecond=0) + timedelta(hours=1)
        quote = stripe_client.post(
            "/v1/quotes",
            headers=desk,
            json={
                "booking_id": booking_id,
                "session_type": "im_group",
                "scheduled_at": start.isoformat(),
                "currency": "usd",
                "patients": [
                    {"patient_id": p, "name": "Pat", "prior_iv_sessions": 1} for p in patients
                ],
            },
        ).json
        invoices = stripe_client.post(
            "/v1/invoices", headers=desk, json={"quote_id": quote["id"]}
        ).json["data"]
        by_patient = {invoice["patient_id"]: invoice["id"] for invoice in invoices}
        for index, patient in enumerate(patients):
            saved = {"consent": CONSENT} if consented[index] else {}
            stripe_client.post(
                f"/v1/patients/{patient}/payment-methods",
                headers=desk,
                json={"payment_method": "pm_card_visa", **saved},
            )
            if paid_before[index]:
                _charge(stripe_client, desk, by_patient[patient], f"pay-{n}-{index}")

        for step, (kind, who, what) in enumerate(changes):
            request = IdempotencyRequest(key_id, f"prop-{n}-{step}", f"prop-{n}-{step}")
            with stripe_app.app_context():
                session = db.session()
                try:
                    if kind == "cancel":
                        body = {"by": what}
                        if who is not None:
                            body["patient_id"] = patients[who]
                        lifecycle.cancel(session, lifecycle_settings(), booking_id, body, request)
                    elif kind == "mark":
                        lifecycle.mark_attendance(
                            session,
                            lifecycle_settings(),
                            booking_id,
                            [{"patient_id": patients[who], "status": what}],
                            request,
                            now=start + timedelta(minutes=10),
                        )
                except ServiceError:
                    session.rollback()  # refused (already cancelled, marked, ...): fine
            if kind == "charge":
                _charge(stripe_client, desk, by_patient[patients[who]], f"late-{n}-{step}")
            _check(stripe_client, desk, standin, booking_id)

    run()


def _charge(client: Any, desk: dict[str, str], invoice_id: str, key: str) -> Any:
    return client.post(
        f"/v1/invoices/{invoice_id}/payments",
        headers={**desk, "Idempotency-Key": key},
        json={"method": "card_on_file"},
    )


def _check(client: Any, desk: dict[str, str], standin: Any, booking_id: str) -> None:
    booking = client.get(f"/v1/bookings/{booking_id}", headers=desk).json
    every = booking["invoices"] + booking["fees"]
    for invoice in every:
        assert 0 <= invoice["amount_refunded"] <= invoice["amount_paid"], invoice
        assert collected_at_stripe(standin, invoice["id"]) == (
            invoice["amount_paid"],
            invoice["amount_refunded"],
        ), invoice
    for fee in booking["fees"]:
        assert fee["total"] <= LINE
    for patient in {invoice["patient_id"] for invoice in every}:
        mine = [invoice for invoice in every if invoice["patient_id"] == patient]
        net = sum(invoice["amount_paid"] - invoice["amount_refunded"] for invoice in mine)
        standing_fees = [
            fee
            for fee in booking["fees"]
            if fee["patient_id"] == patient and fee["status"] not in ("void", "refunded")
        ]
        assert len(standing_fees) <= 1, standing_fees
        assert net <= LINE + sum(fee["total"] for fee in standing_fees), mine
    live = [seat for seat in booking["patients"] if seat["cancelled_at"] is None]
    if len(live) < 2:
        assert booking["state"] in ("below_minimum", "cancelled")
        current = {seat["invoice_id"] for seat in booking["patients"]}
        for invoice in booking["invoices"]:
            if invoice["id"] in current:
                # Held: what stands paid was paid before the group shrank, never after.
                charged = client.post(
                    f"/v1/invoices/{invoice['id']}/payments",
                    headers={**desk, "Idempotency-Key": f"held-{invoice['id']}-{len(live)}"},
                    json={"method": "card_on_file"},
                )
                assert charged.status_code == 409, charged.json
