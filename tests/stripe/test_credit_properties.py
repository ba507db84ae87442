"""For any sequence of package purchases, sessions paid with credits (individual or a
group seat), cancellations (in time or late, by either side), expiries and refunds of
unused credits, against the Stripe stand-in, after every step and for every package:

- its half-credits are conserved: available + held + used + refunded + expired is what
  was bought, and none of them is ever negative;
- what its refunds gave back, in our records and at Stripe, never exceeds what was paid,
  and is exactly what was paid once every half-credit has been refunded;
- the movements the patient is shown add up to the balance;
- a quote is refused for lack of credits only when they really are too few.
"""

from __future__ import annotations

import itertools
import os
from datetime import timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select

from billing.adapters import db
from billing.adapters.credit_models import CreditRefund, PatientPackage
from billing.adapters.models import Refund, utcnow
from billing.services.access import keys
from billing.services.packages import credits
from tests.conftest import in_days, in_hours
from tests.stripe.collect import collected_at_stripe

pytestmark = pytest.mark.parametrize("stripe_app", ["sqlite"], indirect=True)

PRICE = 10001  # an amount that does not share evenly: allocation has remainders

buy = st.tuples(st.just("buy"), st.integers(1, 3), st.just(""))
book = st.tuples(
    st.just("book"),
    st.sampled_from(["iv_individual", "im_group"]),
    st.sampled_from(["soon", "later"]),  # soon: a cancellation is late (48 hours' notice)
)
cancel = st.tuples(st.just("cancel"), st.integers(0, 5), st.sampled_from(["patient", "clinic"]))
expire = st.tuples(st.just("expire"), st.integers(0, 3), st.just(""))
refund = st.tuples(st.just("refund"), st.integers(0, 3), st.just(""))
steps = st.lists(st.one_of(buy, book, cancel, expire, refund), min_size=1, max_size=10)


def test_any_sequence_keeps_credits_and_their_money_right(
    stripe_app: Any, stripe_client: Any, standin: Any
) -> None:
    client = stripe_client
    with stripe_app.app_context():
        _, plain = keys.create_key(
            db.session(),
            "desk",
            [
                "catalog:write",
                "quotes:write",
                "invoices:read",
                "invoices:write",
                "payments:write",
                "refunds:write",
                "bookings:write",
            ],
        )
    desk = {"Authorization": f"Bearer {plain}"}
    for size in (1, 2, 3):
        made = client.post(
            "/v1/catalog/packages",
            headers=desk,
            json={
                "code": f"PK{size}",
                "name": f"{size} infusions",
                "iv_credits": size,
                "amount": PRICE * size,
                "currency": "usd",
                "valid_days": 90,
            },
        )
        assert made.status_code == 201, made.json
    examples = itertools.count()

    @settings(
        max_examples=int(os.environ.get("CREDIT_EXAMPLES", "15")),
        deadline=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    )
    @given(changes=steps)
    def run(changes: list[tuple[Any, ...]]) -> None:
        n = next(examples)
        patient = f"P-CR-{n}"
        client.post(  # the clinic knows the patient (a quote) before a card is saved
            "/v1/quotes",
            headers=desk,
            json={
                "booking_id": f"BK-CR-{n}-first",
                "session_type": "iv_individual",
                "scheduled_at": in_days(30),
                "currency": "usd",
                "patients": [{"patient_id": patient, "name": "Pat"}],
            },
        )
        client.post(
            f"/v1/patients/{patient}/payment-methods",
            headers=desk,
            json={"payment_method": "pm_card_visa"},
        )
        packages: list[str] = []
        bookings: list[str] = []
        for step, (kind, what, how) in enumerate(changes):
            key = {**desk, "Idempotency-Key": f"cr-{n}-{step}"}
            if kind == "buy":
                sold = client.post(
                    f"/v1/patients/{patient}/packages",
                    headers=desk,
                    json={"code": f"PK{what}", "name": "Pat"},
                ).json
                paid = client.post(
                    f"/v1/invoices/{sold['invoice_id']}/payments",
                    headers=key,
                    json={"method": "card_on_file"},
                )
                assert paid.status_code == 201 and paid.json["status"] == "succeeded", paid.json
                packages.append(sold["id"])
            elif kind == "book":
                before = _available(client, desk, patient)
                booking_id = f"BK-CR-{n}-{step}"
                others = [{"patient_id": f"P-CR-{n}-cash", "name": "Cash", "prior_iv_sessions": 1}]
                made = client.post(
                    "/v1/quotes",
                    headers=desk,
                    json={
                        "booking_id": booking_id,
                        "session_type": what,
                        "scheduled_at": in_hours(5) if how == "soon" else in_days(9),
                        "currency": "usd",
                        "patients": [
                            {
                                "patient_id": patient,
                                "name": "Pat",
                                "prior_iv_sessions": 1,
                                "pay_with": "credits",
                            },
                            *(others if what == "im_group" else []),
                        ],
                    },
                )
                needed = 1.0 if what == "iv_individual" else 0.5
                if made.status_code == 409:
                    assert made.json["code"] == "insufficient_credits"
                    assert before < needed, (before, needed)
                    continue
                assert made.status_code == 201 and before >= needed, made.json
                invoiced = client.post(
                    "/v1/invoices", headers=desk, json={"quote_id": made.json["id"]}
                )
                assert invoiced.status_code == 201, invoiced.json
                bookings.append(booking_id)
            elif kind == "cancel" and bookings:
                client.post(
                    f"/v1/bookings/{bookings[what % len(bookings)]}/cancellations",
                    headers=key,
                    json={"by": how, "patient_id": patient},
                )  # a second cancellation of the same place is refused: fine
            elif kind == "expire" and packages:
                with stripe_app.app_context():
                    session = db.session()
                    ended = session.get(PatientPackage, packages[what % len(packages)])
                    assert ended is not None
                    ended.expires_at = utcnow() - timedelta(seconds=1)
                    session.commit()
            elif kind == "refund" and packages:
                package_id = packages[what % len(packages)]
                answer = client.post(
                    f"/v1/patients/{patient}/packages/{package_id}/refunds",
                    headers=key,
                    json={"reason": "no longer needed"},
                )
                assert answer.status_code in (201, 409), answer.json
                if answer.status_code == 409:
                    assert answer.json["code"] == "no_unused_credits"
            _check(stripe_app, client, desk, standin, patient)

    run()


def _available(client: Any, desk: dict[str, str], patient: str) -> float:
    return float(client.get(f"/v1/patients/{patient}/credits", headers=desk).json["available"])


def _check(app: Any, client: Any, desk: dict[str, str], standin: Any, patient: str) -> None:
    shown = client.get(f"/v1/patients/{patient}/credits", headers=desk)
    assert shown.status_code == 200, shown.json
    assert sum(m["credits"] for m in shown.json["movements"]) == shown.json["available"]
    with app.app_context():
        session = db.session()
        made = credits.statement(session, patient)
        for held in made.packages:
            package, balance = held.package, held.balance
            parts = (balance.available, balance.reserved, balance.used, balance.refunded)
            assert min(*parts, balance.expired) >= 0, balance
            assert sum(parts) + balance.expired == package.half_credits, balance
            given_back = int(
                session.scalar(
                    select(func.coalesce(func.sum(CreditRefund.amount), 0))
                    .join(Refund, Refund.id == CreditRefund.refund_id)
                    .where(
                        CreditRefund.patient_package_id == package.id,
                        Refund.status == "succeeded",
                    )
                )
                or 0
            )
            paid, refunded = collected_at_stripe(standin, package.invoice_id)
            assert paid == package.amount
            assert refunded == given_back <= paid
            if balance.refunded == package.half_credits:
                assert refunded == paid
