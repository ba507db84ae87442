"""Patients' billing profiles on SQLite and PostgreSQL: clinical staff set a date of
birth, an address and a payer class under scopes of their own; bad input is a 422 naming
the field; each change is in the audit trail and none is an event; and a Medicaid patient
is charged no missed-appointment or late-cancellation fee, the exemption recorded on the
booking's place."""

from __future__ import annotations

import json
from typing import Any

import pytest
from sqlalchemy import select

from billing.adapters import db
from billing.adapters.models import AuditEvent
from billing.adapters.outbox import Event
from tests.api.test_bookings import NEW, Desk
from tests.conftest import in_hours


@pytest.fixture
def clinical(make_key: Any) -> dict[str, str]:
    return make_key("clinical:write")


def put(client: Any, headers: dict[str, str], body: dict[str, Any], patient: str = "P-1001") -> Any:
    return client.put(f"/v1/patients/{patient}/profile", json=body, headers=headers)


def test_clinical_staff_set_a_profile_that_is_audited_and_never_an_event(
    app: Any, client: Any, clinical: dict[str, str], make_key: Any
) -> None:
    body = {
        "date_of_birth": "1984-07-02",
        "address": {
            "line1": "12 Elm St",
            "city": "Springfield",
            "state": "CA",
            "postal_code": "90001",
        },
        "payer_class": "commercial",
    }
    made = put(client, clinical, body)
    assert made.status_code == 200, made.json
    assert made.json["address"] == {
        "line1": "12 Elm St",
        "line2": None,
        "city": "Springfield",
        "state": "CA",
        "postal_code": "90001",
        "country": "US",
    }
    read = client.get("/v1/patients/P-1001/profile", headers=make_key("clinical:read")).json
    assert (read["date_of_birth"], read["payer_class"]) == ("1984-07-02", "commercial")
    assert (
        client.get("/v1/patients/P-1001/profile", headers=make_key("invoices:read")).status_code
        == 403
    )
    assert client.get("/v1/patients/P-2/profile", headers=clinical).status_code == 404

    changed = put(client, clinical, {**body, "payer_class": "medicaid"})
    assert changed.json["payer_class"] == "medicaid"
    with app.app_context():
        session = db.session()
        trail = session.scalars(
            select(AuditEvent).where(AuditEvent.object_id == "P-1001").order_by(AuditEvent.id)
        ).all()
        assert [e.action for e in trail][-2:] == ["patient.profile_set", "patient.profile_changed"]
        # Which fields changed, never their values: the trail is read outside clinical staff.
        assert json.loads(trail[-1].details) == {
            "fields": "payer_class",
            "payer_class": "medicaid",
        }
        assert "1984-07-02" not in trail[-2].details and "Elm" not in trail[-2].details
        published = " ".join(e.data for e in session.scalars(select(Event)))
        assert "1984-07-02" not in published and "Elm" not in published


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"date_of_birth": "2999-01-01"}, "date_of_birth"),
        ({"date_of_birth": "not a date"}, "date_of_birth"),
        ({"payer_class": "cash"}, "payer_class"),
        ({"address": {"line1": "1 A St", "postal_code": "1"}}, "address.city"),
        (
            {"address": {"line1": "1 A St", "city": "X", "postal_code": "1", "country": "usa"}},
            "address.country",
        ),
        ({"ssn": "123-45-6789"}, "ssn"),
    ],
)
def test_bad_profiles_are_422_naming_the_field(
    client: Any, clinical: dict[str, str], body: dict[str, Any], field: str
) -> None:
    answer = put(client, clinical, body)
    assert answer.status_code == 422, answer.json
    assert field in answer.json["errors"]


@pytest.fixture
def desk(client: Any, make_key: Any) -> Desk:
    desk = Desk(
        client,
        make_key(
            "quotes:write", "invoices:write", "invoices:read", "bookings:write", "catalog:write"
        ),
    )
    assert (
        desk.price(
            notice_hours=24, late_cancellation_fee={"percent": 50}, no_show_fee={"amount": 7500}
        ).status_code
        == 201
    )
    return desk


@pytest.mark.parametrize(
    ("payer_class", "charged"),
    [("medicaid", False), ("self_pay", True), ("medicare", True), ("commercial", True)],
)
def test_a_no_show_fee_is_charged_unless_the_payer_class_is_exempt(
    client: Any, clinical: dict[str, str], desk: Desk, payer_class: str, charged: bool
) -> None:
    patient = NEW["patient_id"]
    assert put(client, clinical, {"payer_class": payer_class}, patient).status_code == 200
    desk.book("BK-FEE", "iv_individual", in_hours(-1), NEW)
    missed = desk.mark("BK-FEE", **{patient: "no_show"})
    assert missed.status_code == 200, missed.json
    (place,) = missed.json["patients"]
    assert (len(missed.json["fees"]) == 1) is charged
    assert (place["fee_invoice_id"] is not None) is charged
    if charged:
        assert place["fee_exempt_reason"] is None
    else:  # recorded on the booking's place
        assert "coverage exempts" in place["fee_exempt_reason"]  # never which coverage


def test_a_medicaid_patient_is_charged_no_late_cancellation_fee(
    client: Any, clinical: dict[str, str], desk: Desk
) -> None:
    patient = NEW["patient_id"]
    put(client, clinical, {"payer_class": "medicaid"}, patient)
    desk.book("BK-LATE", "iv_individual", in_hours(3), NEW)
    cancelled = desk.cancel("BK-LATE", by="patient")
    assert cancelled.status_code == 200, cancelled.json
    assert cancelled.json["fees"] == []
    assert "coverage exempts" in cancelled.json["patients"][0]["fee_exempt_reason"]
