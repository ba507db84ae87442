"""Good Faith Estimates on SQLite and PostgreSQL: what they say (JSON and the PDF a patient
keeps), when they were due, bills $400 or more above them, and disputes of a bill."""

from __future__ import annotations

import io
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from pypdf import PdfReader

from billing.adapters import db
from billing.adapters.models import utcnow
from billing.domain.money import Money
from billing.services.integrations import emails
from tests.api.test_bookings import ANA, BEN, NEW, Desk
from tests.conftest import in_days

OUTPUT = Path(__file__).resolve().parents[2] / "test-output" / "estimates"


@pytest.fixture
def headers(make_key):
    return make_key(
        "quotes:write",
        "invoices:write",
        "invoices:read",
        "catalog:write",
        "bookings:write",
        "payments:write",
        "reports:read",
    )


@pytest.fixture
def desk(client, headers) -> Desk:
    return Desk(client, headers)


def quote(desk: Desk, booking_id: str, session_type: str, *patients: dict, days: int = 20) -> Any:
    response = desk.client.post(
        "/v1/quotes",
        json={
            "booking_id": booking_id,
            "session_type": session_type,
            "scheduled_at": in_days(days),
            "currency": "usd",
            "patients": list(patients),
        },
        headers=desk.headers,
    )
    assert response.status_code == 201, response.json
    return response.json


def estimate(desk: Desk, quote_id: str, **body: Any) -> Any:
    """Issue the estimate (POST); the answer is the estimate, issued once."""
    return desk.client.post(f"/v1/quotes/{quote_id}/estimate", json=body, headers=desk.headers)


def test_an_estimate_says_what_the_rule_asks_and_is_kept_as_given(desk) -> None:
    made = quote(desk, "BK-E", "iv_individual", NEW)
    first = estimate(desk, made["id"])
    assert first.status_code == 201, first.json
    body = first.json
    assert body["patient"] == {"patient_id": "P-3001", "name": "Cleo New", "date_of_birth": None}
    assert body["provider"]["name"] == "Example Clinic"
    assert body["provider"]["tax_id"] and body["provider"]["address"]
    (item,) = body["items"]
    assert item["description"] == "Individual IV ketamine session"
    assert "96365 IV infusion, initial hour" in item["codes"]
    assert item["amount"] == body["total"] == 50000
    assert body["dispute_threshold"] == 40000
    assert "$400" in body["notice"] and "www.cms.gov/nosurprises" in body["notice"]
    assert body["due_by"] is not None and body["on_time"] is True  # booked 20 days ahead
    again = estimate(desk, made["id"]).json
    assert (again["id"], again["issued_at"]) == (body["id"], body["issued_at"])


def test_reading_an_estimate_never_issues_one(desk, app) -> None:
    """A GET (or HEAD) reads the estimate issued; it never issues one or writes a row."""
    from sqlalchemy import func, select

    from billing.adapters.estimate_models import Estimate
    from billing.adapters.models import AuditEvent

    made = quote(desk, "BK-READ", "iv_individual", NEW)
    path = f"/v1/quotes/{made['id']}/estimate"

    def rows() -> tuple[int, int]:
        with app.app_context():
            issued = select(func.count()).where(AuditEvent.action == "estimate.issued")
            return (
                db.session().scalar(select(func.count()).select_from(Estimate)) or 0,
                db.session().scalar(issued) or 0,
            )

    for method in ("GET", "HEAD"):
        unread = desk.client.open(path, method=method, headers=desk.headers)
        assert unread.status_code == 404
    assert desk.client.get(path, headers=desk.headers).json["code"] == "estimate_not_found"
    assert rows() == (0, 0)
    issued = estimate(desk, made["id"]).json
    assert desk.client.get(path, headers=desk.headers).json["id"] == issued["id"]
    assert desk.client.head(path, headers=desk.headers).status_code == 200
    assert rows() == (1, 1)


def test_a_group_estimate_is_for_one_named_patient(desk) -> None:
    made = quote(desk, "BK-G", "im_group", ANA, BEN)
    unnamed = estimate(desk, made["id"])
    assert unnamed.status_code == 422 and unnamed.json["code"] == "patient_required"
    assert "patient_id" in unnamed.json["errors"]
    stranger = estimate(desk, made["id"], patient_id="P-9")
    assert stranger.status_code == 422 and stranger.json["code"] == "patient_not_in_quote"
    ben = estimate(desk, made["id"], patient_id="P-1002").json
    assert ben["patient"]["name"] == "Ben Okafor" and ben["total"] == 25000


def test_a_course_is_estimated_as_its_sessions(desk) -> None:
    made = quote(desk, "BK-C", "iv_individual", NEW)
    course = estimate(desk, made["id"], sessions=6, months=3).json
    (item,) = course["items"]
    assert item["quantity"] == 6 and item["unit_amount"] == 50000
    assert course["total"] == item["amount"] == 300000
    assert "course of 6 sessions over 3 months" in item["description"]
    refused = estimate(desk, made["id"], sessions=6)
    assert refused.status_code == 422 and "months" in refused.json["errors"]
    too_long = estimate(desk, made["id"], sessions=6, months=13)
    assert too_long.status_code == 422 and "months" in too_long.json["errors"]
    missing = desk.client.post("/v1/quotes/qt_nope/estimate", json={}, headers=desk.headers)
    assert missing.status_code == 404 and missing.json["code"] == "quote_not_found"


def test_the_estimate_pdf_reads_as_a_patient_needs_it(desk) -> None:
    made = quote(desk, "BK-P", "iv_individual", NEW)
    assert estimate(desk, made["id"]).status_code == 201
    answer = desk.client.get(
        f"/v1/quotes/{made['id']}/estimate",
        headers={**desk.headers, "Accept": "application/pdf"},
    )
    assert answer.status_code == 200 and answer.mimetype == "application/pdf"
    assert "good-faith-estimate-est_" in answer.headers["Content-Disposition"]
    text = "".join(page.extract_text() for page in PdfReader(io.BytesIO(answer.data)).pages)
    text = " ".join(text.split())  # lines wrap where the page ends them
    for expected in (
        "Good Faith Estimate",
        "Example Clinic",
        "Tax id:",
        "Cleo New",
        "Scheduled for",
        "Date of this estimate",
        "Individual IV ketamine session",
        "J3490 ketamine HCl",
        "Total expected charges",
        "$500.00",
        "$400 or more above",
        "www.cms.gov/nosurprises",
        "will not adversely affect the quality of the care",  # 45 CFR 149.610(c)
        "may differ from this estimate",
        "schedule separately are not included",
        "Date of birth",
        "Convening provider",
        "Diagnosis codes",
    ):
        assert expected in text, expected
    same = desk.client.get(f"/v1/quotes/{made['id']}/estimate?format=pdf", headers=desk.headers)
    assert same.mimetype == "application/pdf"


def test_bills_400_or_more_above_the_estimate_are_reported(desk) -> None:
    small = quote(desk, "BK-SMALL", "iv_individual", ANA)
    estimate(desk, small["id"])
    big = quote(desk, "BK-BIG", "iv_individual", NEW)
    estimate(desk, big["id"], sessions=2, months=1)  # a course of two sessions: 100000
    asked = estimate(
        desk, big["id"], sessions=2, months=1, requested="true", requested_at=utcnow().isoformat()
    )
    assert asked.status_code == 201, asked.json  # a second estimate for the same bills
    for made in (small, big):
        desk.client.post("/v1/invoices", json={"quote_id": made["id"]}, headers=desk.headers)
    # The clinic's price rises by 450.00 and the course's second session is booked at it.
    assert desk.price(95000).status_code == 201
    second = quote(desk, "BK-BIG-2", "iv_individual", NEW, days=27)
    desk.client.post("/v1/invoices", json={"quote_id": second["id"]}, headers=desk.headers)

    report = desk.client.get("/v1/reports/estimate-variance", headers=desk.headers)
    assert report.status_code == 200, report.json
    usd = report.json["currencies"]["usd"]
    assert usd["threshold"] == 40000
    # One row per patient and bills, from the newest estimate for them (the one asked for).
    assert [(p["patient_id"], p["estimated"], p["billed"], p["over"]) for p in usd["patients"]] == [
        ("P-3001", 100000, 145000, 45000)
    ]
    assert usd["patients"][0]["estimate_id"] == asked.json["id"]


def test_a_requote_that_raises_the_price_is_given_an_updated_estimate_not_a_variance(
    app, desk
) -> None:
    big = quote(desk, "BK-RISE", "iv_individual", NEW)
    estimate(desk, big["id"])
    desk.client.post("/v1/invoices", json={"quote_id": big["id"]}, headers=desk.headers)
    assert desk.price(95000).status_code == 201
    requoted = quote(desk, "BK-RISE", "iv_individual", NEW)
    desk.client.post("/v1/invoices", json={"quote_id": requoted["id"]}, headers=desk.headers)
    update_estimates(app)
    updated = desk.client.get(f"/v1/quotes/{requoted['id']}/estimate", headers=desk.headers)
    assert updated.json["total"] == 95000  # the patient was told before the visit
    report = desk.client.get("/v1/reports/estimate-variance", headers=desk.headers)
    assert report.json["currencies"]["usd"]["patients"] == []


def test_no_payment_reminders_while_the_patient_disputes_a_bill(app, desk) -> None:
    (invoice,) = desk.book("BK-D", "iv_individual", in_days(20), ANA)

    def reminders_in_a_week() -> int:
        with app.app_context():
            return emails.queue_reminders(db.session(), [3], now=utcnow() + timedelta(days=4))

    opened = desk.client.post(
        f"/v1/invoices/{invoice['id']}/bill-disputes",
        json={"status": "open", "note": "Billed for a session I cancelled"},
        headers=desk.headers,
    )
    assert opened.status_code == 200, opened.json
    assert opened.json["resolved_at"] is None
    assert reminders_in_a_week() == 0
    resolved = desk.client.post(
        f"/v1/invoices/{invoice['id']}/bill-disputes",
        json={"status": "resolved"},
        headers=desk.headers,
    )
    assert resolved.json["resolved_at"] is not None
    assert reminders_in_a_week() == 1
    nothing = desk.client.post(
        f"/v1/invoices/{invoice['id']}/bill-disputes",
        json={"status": "resolved"},
        headers=desk.headers,
    )
    assert nothing.status_code == 409 and nothing.json["code"] == "no_open_dispute"


def test_a_held_invoice_gets_no_reminders(app, desk) -> None:
    desk.book("BK-G", "im_group", in_days(20), ANA, BEN)
    desk.cancel("BK-G", by="patient", patient_id="P-1002")
    with app.app_context():
        assert emails.queue_reminders(db.session(), [3], now=utcnow() + timedelta(days=4)) == 0


def test_a_course_repeats_the_sliding_scale_but_a_promotion_only_once(desk) -> None:
    now = datetime.now(UTC)
    desk.client.post(
        "/v1/catalog/promotions",
        json={
            "code": "FIRST",
            "amount_off": 10000,
            "currency": "usd",
            "starts_at": (now - timedelta(days=1)).isoformat(),
            "ends_at": (now + timedelta(days=9)).isoformat(),
        },
        headers=desk.headers,
    )
    made = desk.client.post(
        "/v1/quotes",
        json={
            "booking_id": "BK-COURSE",
            "session_type": "iv_individual",
            "scheduled_at": in_days(20),
            "currency": "usd",
            "promotion_code": "FIRST",
            "patients": [
                {**NEW, "discount": {"percent": 20, "reason": "hardship", "approved_by": "Jo"}}
            ],
        },
        headers=desk.headers,
    ).json
    course = estimate(desk, made["id"], sessions=6, months=2).json
    series, promo = course["items"]
    assert (series["quantity"], series["unit_amount"]) == (6, 40000)  # 500.00 less 20%
    assert promo["amount"] == -10000 and "once" in promo["description"]
    assert course["total"] == 6 * 40000 - 10000


def test_a_late_answer_to_a_patients_request_is_recorded_as_late(desk) -> None:
    made = quote(desk, "BK-LATE", "iv_individual", NEW)
    asked = (datetime.now(UTC) - timedelta(days=7)).isoformat()
    late = estimate(desk, made["id"], requested="true", requested_at=asked).json
    assert late["requested"] is True and late["on_time"] is False
    plain = estimate(desk, made["id"]).json
    assert plain["id"] != late["id"] and plain["on_time"] is True
    future = estimate(desk, made["id"], requested="true", requested_at=in_days(1))
    assert future.status_code == 422 and future.json["code"] == "requested_at_in_future"


def test_a_long_line_wraps_within_its_column_and_never_covers_its_amount(desk) -> None:
    """A course with a sliding-scale discount has the longest description an estimate
    prints: rendered, its words stay left of the amounts and on the page, and each amount
    reads whole (pages also saved as images in test-output/estimates/)."""
    import pypdfium2 as pdfium

    made = desk.client.post(
        "/v1/quotes",
        json={
            "booking_id": "BK-WRAP",
            "session_type": "iv_individual",
            "scheduled_at": in_days(20),
            "currency": "usd",
            "patients": [
                {
                    **NEW,
                    "discount": {
                        "percent": 20,
                        "reason": "sliding scale for household income below the local threshold",
                        "approved_by": "Jo",
                    },
                }
            ],
        },
        headers=desk.headers,
    ).json
    course = estimate(desk, made["id"], sessions=6, months=3).json
    (item,) = course["items"]
    assert len(item["description"]) > 90, item["description"]  # longer than a line
    pdf = desk.client.get(
        f"/v1/quotes/{made['id']}/estimate?format=pdf&sessions=6&months=3", headers=desk.headers
    )
    assert pdf.mimetype == "application/pdf", pdf.get_data(as_text=True)[:300]
    document = pdfium.PdfDocument(pdf.data)
    OUTPUT.mkdir(parents=True, exist_ok=True)
    amount = Money(item["amount"], "usd").format()
    found_amount = False
    for number in range(len(document)):
        page = document[number]
        width, height = page.get_size()
        page.render(scale=2).to_pil().save(OUTPUT / f"long-line-{number + 1}.png")
        text = page.get_textpage()
        column = 10 / 25.4 * 72 + 150 / 25.4 * 72  # the amounts' column starts here
        top = _box_of(text, "Expected items and services")[1]  # the table: below its
        bottom = _box_of(text, "Total expected charges")[1] - 2  # heading, to its total
        amounts = text.get_text_bounded(left=column, bottom=bottom, right=width, top=top)
        # Only amounts stand in the amounts' column: no word of a description ran there.
        assert re.fullmatch(r"[\s$\d,.\-−]*", amounts), amounts
        found_amount = found_amount or amount in amounts.split()
        for index in range(text.count_chars()):
            left, bottom, right, top = text.get_charbox(index)
            assert 0 <= left and right <= width and 0 <= bottom and top <= height
    assert found_amount, amount


def _box_of(text: Any, words: str) -> tuple[float, float, float, float]:
    """Where `words` first stand on the page (left, bottom, right, top, in points)."""
    found = text.search(words).get_next()
    assert found is not None, words
    return tuple(text.get_charbox(found[0]))  # type: ignore[return-value]


def test_an_estimate_keeps_the_date_of_birth_npi_and_diagnoses_known_when_given(
    app, desk, make_key
) -> None:
    from billing.adapters.clinical_models import Provider, VisitRecord

    app.config["CLINIC_NPI"] = "1245319599"
    clinical = make_key("clinical:write")
    desk.client.put(
        f"/v1/patients/{NEW['patient_id']}/profile",
        json={"date_of_birth": "1979-03-14"},
        headers=clinical,
    )
    first = quote(desk, "BK-EARLIER", "iv_individual", NEW, days=-30)
    invoices = desk.client.post(
        "/v1/invoices", json={"quote_id": first["id"]}, headers=desk.headers
    )
    with app.app_context():  # a visit recorded before, with its diagnoses
        session = db.session()
        session.add(Provider(npi="1234567893", name="Dana Ruiz"))
        session.add(
            VisitRecord(
                invoice_id=invoices.json["data"][0]["id"],
                patient_id=NEW["patient_id"],
                diagnosis_codes="F33.2",
                rendering_npi="1234567893",
            )
        )
        session.commit()
    made = quote(desk, "BK-NEXT", "iv_individual", NEW)
    given = estimate(desk, made["id"]).json
    # The desk's key has no clinical scope: no date of birth or diagnoses in the JSON.
    assert given["patient"]["date_of_birth"] is None and given["diagnosis_codes"] == []
    assert given["provider"]["npi"] == "1245319599"
    reader = {**desk.headers, **make_key("quotes:write", "clinical:read")}
    seen = desk.client.get(f"/v1/quotes/{made['id']}/estimate", headers=reader).json
    assert seen["patient"]["date_of_birth"] == "1979-03-14"
    assert seen["diagnosis_codes"] == ["F33.2"]
    pdf = desk.client.get(f"/v1/quotes/{made['id']}/estimate?format=pdf", headers=desk.headers)
    text = "".join(page.extract_text() for page in PdfReader(io.BytesIO(pdf.data)).pages)
    assert "14 Mar 1979" in text and "F33.2" in text  # the patient's own copy says it all
    # As given: a later change of the profile does not rewrite it.
    desk.client.put(
        f"/v1/patients/{NEW['patient_id']}/profile",
        json={"date_of_birth": "1980-01-01"},
        headers=clinical,
    )
    again = desk.client.get(f"/v1/quotes/{made['id']}/estimate", headers=reader).json
    assert again["patient"]["date_of_birth"] == "1979-03-14"


def update_estimates(app: Any) -> int:
    """The scheduler's minute job that gives re-quoted bookings updated estimates."""
    from billing.services.invoicing import estimates as service

    with app.app_context():
        config = app.config
        return service.update_all(
            db.session(), config["BILLING_CODES"], config["CLINIC_ZONE"], config["CLINIC_NPI"]
        )


def test_a_requoted_booking_gets_an_updated_estimate_and_the_older_one_is_kept(app, desk) -> None:
    made = quote(desk, "BK-UPD", "iv_individual", NEW, days=20)
    first = estimate(desk, made["id"]).json
    # The booking system re-quotes it with a sliding-scale discount: new charges.
    requoted = desk.client.post(
        "/v1/quotes",
        json={
            "booking_id": "BK-UPD",
            "session_type": "iv_individual",
            "scheduled_at": in_days(20),
            "currency": "usd",
            "patients": [
                {**NEW, "discount": {"percent": 20, "reason": "hardship", "approved_by": "Jo"}}
            ],
        },
        headers=desk.headers,
    ).json
    assert (
        desk.client.get(f"/v1/quotes/{requoted['id']}/estimate", headers=desk.headers).status_code
        == 404
    )  # the scheduler gives it, within the minute
    assert update_estimates(app) == 1
    assert update_estimates(app) == 0  # once
    updated = desk.client.get(f"/v1/quotes/{requoted['id']}/estimate", headers=desk.headers)
    assert updated.status_code == 200, updated.json  # given: nobody asked for it
    assert updated.json["replaces_id"] == first["id"]
    assert updated.json["total"] == 40000 and first["total"] == 50000
    assert updated.json["on_time"] is True
    kept = desk.client.get(f"/v1/quotes/{made['id']}/estimate", headers=desk.headers).json
    assert (kept["id"], kept["total"], kept["replaces_id"]) == (first["id"], 50000, None)
    report = desk.client.get("/v1/reports/estimate-variance", headers=desk.headers)
    assert report.status_code == 200


def test_an_update_is_due_by_the_business_day_before_the_visit() -> None:
    from zoneinfo import ZoneInfo

    from billing.domain.estimates import update_due_by

    la = ZoneInfo("America/Los_Angeles")
    # A visit on Friday 27 November 2026, the day after Thanksgiving: due by the end of
    # Wednesday the 25th (Thursday is a federal holiday).
    visit_at = datetime(2026, 11, 27, 10, tzinfo=la)
    assert update_due_by(visit_at, la) == datetime(2026, 11, 26, 0, tzinfo=la)
    # A Monday visit: due by the end of the Friday before.
    assert update_due_by(datetime(2026, 12, 7, 10, tzinfo=la), la) == datetime(
        2026, 12, 5, 0, tzinfo=la
    )
