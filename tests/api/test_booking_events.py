"""A booking's changes are heard by other systems: cancelling a place or a booking, and
marking attendance, each publish one event per call (a replay of its Idempotency-Key
publishes nothing more), with the booking's id and every patient's status."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from flask.testing import FlaskClient

from tests.conftest import in_days, in_hours
from tests.integrations.feed import wait_until_settled

ANA = {"patient_id": "P-1001", "name": "Ana Ruiz", "prior_iv_sessions": 2}
BEN = {"patient_id": "P-1002", "name": "Ben Okafor", "prior_iv_sessions": 1}


class Desk:
    """The front desk's calls on one booking, and the feed a booking system reads."""

    def __init__(self, client: FlaskClient, make_key: Callable[..., dict[str, str]]) -> None:
        self.client = client
        self.headers = make_key("quotes:write", "invoices:write", "invoices:read", "bookings:write")
        self.reader = make_key("events:read")

    def book(self, booking_id: str, when: str) -> None:
        quote = self.client.post(
            "/v1/quotes",
            json={
                "booking_id": booking_id,
                "session_type": "im_group",
                "scheduled_at": when,
                "currency": "usd",
                "patients": [ANA, BEN],
            },
            headers=self.headers,
        )
        assert quote.status_code == 201, quote.json
        invoiced = self.client.post(
            "/v1/invoices", json={"quote_id": quote.json["id"]}, headers=self.headers
        )
        assert invoiced.status_code == 201, invoiced.json

    def cancel(self, booking_id: str, key: str, **body: Any) -> Any:
        return self.client.post(
            f"/v1/bookings/{booking_id}/cancellations",
            json=body,
            headers={**self.headers, "Idempotency-Key": key},
        )

    def mark(self, booking_id: str, key: str, **marks: str) -> Any:
        patients = [{"patient_id": p, "status": s} for p, s in marks.items()]
        return self.client.post(
            f"/v1/bookings/{booking_id}/attendance",
            json={"patients": patients},
            headers={**self.headers, "Idempotency-Key": key},
        )

    def booking(self, booking_id: str) -> dict[str, Any]:
        shown = self.client.get(f"/v1/bookings/{booking_id}", headers=self.headers)
        assert shown.status_code == 200, shown.json
        return dict(shown.json)

    def events(self, event_type: str) -> list[dict[str, Any]]:
        wait_until_settled(self.client.application)
        answer = self.client.get(
            "/v1/events", query_string={"type": event_type, "limit": 500}, headers=self.reader
        )
        assert answer.status_code == 200, answer.json
        return list(answer.json["data"])


@pytest.fixture
def desk(client: FlaskClient, make_key: Callable[..., dict[str, str]]) -> Desk:
    return Desk(client, make_key)


def in_events(patients: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The places as events show them: less why a fee was not charged (it says something
    of the patient's coverage)."""
    return [{k: v for k, v in place.items() if k != "fee_exempt_reason"} for place in patients]


def statuses(booking: dict[str, Any]) -> dict[str, tuple[Any, ...]]:
    """Each patient's attendance and cancellation, by patient id."""
    return {
        seat["patient_id"]: (seat["attendance"], seat["cancelled_by"], seat["cancelled_at"])
        for seat in booking["patients"]
    }


def test_each_cancellation_is_one_booking_cancelled_event_with_the_patients_statuses(
    desk: Desk,
) -> None:
    """A place cancelled, then the rest of the booking: two events, each showing the
    booking as it stood right after that cancellation; replays and a refused cancellation
    publish nothing."""
    desk.book("BK-EV-1", in_days(5))

    ben_left = desk.cancel("BK-EV-1", "cancel-ben", by="patient", patient_id="P-1002")
    assert ben_left.status_code == 200, ben_left.json
    assert desk.cancel("BK-EV-1", "cancel-ben", by="patient", patient_id="P-1002").json == (
        ben_left.json
    )
    (first,) = desk.events("booking.cancelled")
    shown = first["data"]["object"]
    assert shown["booking_id"] == "BK-EV-1" and shown["state"] == "below_minimum"
    assert shown["patients"] == in_events(ben_left.json["patients"])
    assert statuses(shown)["P-1001"] == (None, None, None)
    assert statuses(shown)["P-1002"][:2] == (None, "patient")

    rest = desk.cancel("BK-EV-1", "cancel-rest", by="clinic")
    assert rest.status_code == 200, rest.json
    assert desk.cancel("BK-EV-1", "cancel-rest", by="clinic").status_code == 200
    refused = desk.cancel("BK-EV-1", "cancel-again", by="clinic")
    assert refused.status_code == 409 and refused.json["code"] == "already_cancelled"

    events = desk.events("booking.cancelled")
    assert len(events) == 2 and events[0]["id"] == first["id"]
    second = events[1]["data"]["object"]
    assert second["booking_id"] == "BK-EV-1" and second["state"] == "cancelled"
    assert second["patients"] == in_events(desk.booking("BK-EV-1")["patients"])
    assert statuses(second)["P-1001"][:2] == (None, "clinic")
    assert statuses(second)["P-1002"] == statuses(shown)["P-1002"]  # cancelled once, earlier


def test_each_attendance_call_is_one_booking_attendance_marked_event_with_the_statuses(
    desk: Desk,
) -> None:
    """Marking, replaying the same key, then correcting one patient: two events, the
    second with the corrected status."""
    desk.book("BK-EV-2", in_hours(-1))

    marked = desk.mark("BK-EV-2", "mark-1", **{"P-1001": "attended", "P-1002": "no_show"})
    assert marked.status_code == 200, marked.json
    replayed = desk.mark("BK-EV-2", "mark-1", **{"P-1001": "attended", "P-1002": "no_show"})
    assert replayed.status_code == 200 and replayed.json == marked.json
    (first,) = desk.events("booking.attendance_marked")
    shown = first["data"]["object"]
    assert shown["booking_id"] == "BK-EV-2"
    assert shown["patients"] == in_events(marked.json["patients"])
    assert {p: s[0] for p, s in statuses(shown).items()} == {
        "P-1001": "attended",
        "P-1002": "no_show",
    }

    corrected = desk.mark("BK-EV-2", "mark-2", **{"P-1002": "attended"})
    assert corrected.status_code == 200, corrected.json
    events = desk.events("booking.attendance_marked")
    assert len(events) == 2 and events[0]["id"] == first["id"]
    second = events[1]["data"]["object"]
    assert second["booking_id"] == "BK-EV-2"
    assert second["patients"] == in_events(desk.booking("BK-EV-2")["patients"])
    assert {p: s[0] for p, s in statuses(second).items()} == {
        "P-1001": "attended",
        "P-1002": "attended",
    }
    assert desk.events("booking.cancelled") == []  # marking attendance cancels nothing
