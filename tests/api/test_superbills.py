"""Superbills on SQLite and PostgreSQL: clinicians listed by NPI (checked), diagnoses and
the rendering clinician recorded at attendance under clinical:write (ICD-10-CM checked
against CMS's code list; never in the booking's events), and the visit's superbill as
JSON and PDF with every field an out-of-network claim needs; refused, naming what is
missing, until it has them. For any price, discount and share of the lines, the lines
add up to the invoice."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pypdf import PdfReader
from sqlalchemy import select

from billing.adapters import db
from billing.adapters.models import Invoice
from billing.adapters.outbox import Event
from billing.services.clinical import superbills
from tests.api.test_bookings import NEW, Desk
from tests.conftest import in_hours

NPI = "1234567893"  # CMS's sample NPI: the check digit is right


@pytest.fixture
def desk(client: Any, make_key: Any) -> Desk:
    return Desk(
        client,
        make_key(
            "quotes:write",
            "invoices:write",
            "invoices:read",
            "bookings:write",
            "catalog:write",
            "clinical:write",
        ),
    )


def visit(desk: Desk, booking_id: str = "BK-SB", **clinical: Any) -> str:
    (invoice,) = desk.book(booking_id, "iv_individual", in_hours(-1), NEW)
    marked = desk.client.post(
        f"/v1/bookings/{booking_id}/attendance",
        json={"patients": [{"patient_id": NEW["patient_id"], "status": "attended", **clinical}]},
        headers={**desk.headers, "Idempotency-Key": f"att-{booking_id}"},
    )
    assert marked.status_code == 200, marked.json
    return str(invoice["id"])


def profile(desk: Desk) -> None:
    answer = desk.client.put(
        f"/v1/patients/{NEW['patient_id']}/profile",
        json={
            "date_of_birth": "1979-03-14",
            "address": {
                "line1": "9 Oak Ave",
                "city": "Fresno",
                "state": "CA",
                "postal_code": "93650",
            },
        },
        headers=desk.headers,
    )
    assert answer.status_code == 200, answer.json


def provider(desk: Desk) -> None:
    answer = desk.client.post(
        "/v1/catalog/providers",
        json={"npi": NPI, "name": "Dana Ruiz", "credentials": "MD"},
        headers=desk.headers,
    )
    assert answer.status_code == 201, answer.json


def test_clinicians_are_listed_by_a_valid_npi(desk: Desk) -> None:
    provider(desk)
    again = desk.client.post(
        "/v1/catalog/providers",
        json={"npi": NPI, "name": "Dana Ruiz", "credentials": "MD"},
        headers=desk.headers,
    )
    assert again.status_code == 201  # as it is: nothing changes
    other = desk.client.post(
        "/v1/catalog/providers", json={"npi": NPI, "name": "Someone Else"}, headers=desk.headers
    )
    assert other.status_code == 409 and other.json["code"] == "provider_exists"
    typo = desk.client.post(
        "/v1/catalog/providers", json={"npi": "1234567890", "name": "X"}, headers=desk.headers
    )
    assert typo.status_code == 422 and "npi" in typo.json["errors"]
    listed = desk.client.get("/v1/catalog/providers", headers=desk.headers).json["data"]
    assert [(p["npi"], p["name"]) for p in listed] == [(NPI, "Dana Ruiz")]


def test_a_superbill_has_what_an_insurer_needs_and_names_what_is_missing(
    app: Any, desk: Desk, make_key: Any
) -> None:
    invoice_id = visit(desk)
    path = f"/v1/invoices/{invoice_id}/superbill"
    reader = make_key("clinical:read")
    app.config.update(CLINIC_NPI="1245319599", CLINIC_TIN="12-3456789")
    missing = desk.client.get(path, headers=reader)
    assert missing.status_code == 409 and missing.json["code"] == "superbill_incomplete"
    assert set(missing.json["errors"]) == {
        "patient.date_of_birth",
        "patient.address",
        "diagnosis_codes",
        "rendering_provider",
    }
    assert desk.client.get(path, headers=make_key("invoices:read")).status_code == 403

    profile(desk)
    provider(desk)
    codes = {"diagnosis_codes": ["F33.2", "F43.10"], "rendering_provider": NPI}
    marked = desk.client.post(
        "/v1/bookings/BK-SB/attendance",
        json={"patients": [{"patient_id": NEW["patient_id"], "status": "attended", **codes}]},
        headers={**desk.headers, "Idempotency-Key": "att-2"},
    )
    assert marked.status_code == 200, marked.json
    bill = desk.client.get(path, headers=reader).json
    assert bill["patient"]["date_of_birth"] == "1979-03-14"
    assert bill["billing_provider"]["npi"] == "1245319599"
    assert bill["billing_provider"]["tin"] == "12-3456789"
    assert bill["rendering_provider"] == {"name": "Dana Ruiz", "npi": NPI, "credentials": "MD"}
    assert [(d["pointer"], d["code"]) for d in bill["diagnoses"]] == [
        ("A", "F33.2"),
        ("B", "F43.10"),
    ]
    assert "Major depressive disorder" in bill["diagnoses"][0]["description"]
    assert bill["place_of_service"] == "11"
    assert [line["code"] for line in bill["lines"]] == ["J3490", "96365", "90834"]
    assert sum(line["charge"] for line in bill["lines"]) == bill["total_charges"] == 50000
    assert all(line["units"] == 1 and line["diagnosis_pointers"] == "AB" for line in bill["lines"])

    pdf = desk.client.get(path + ".pdf", headers=reader)
    assert pdf.status_code == 200 and pdf.mimetype == "application/pdf"
    _look_at(pdf.data)
    text = " ".join(
        " ".join(page.extract_text() for page in PdfReader(io.BytesIO(pdf.data)).pages).split()
    )
    for expected in (
        "Superbill",
        "1245319599",
        "12-3456789",
        f"Dana Ruiz, MD (NPI {NPI})",
        "Cleo New",
        "1979-03-14",
        "9 Oak Ave, Fresno, CA, 93650, US",
        "F33.2",
        "F43.10",
        "J3490",
        "96365",
        "90834",
        "$500.00",
        "Provider's signature",
    ):
        assert expected in text, expected
    with app.app_context():  # the diagnoses never left the service in an event
        published = " ".join(e.data for e in db.session().scalars(select(Event)))
        assert "F33.2" not in published and "1979-03-14" not in published


def test_diagnoses_need_clinical_write_and_real_billable_codes(desk: Desk, make_key: Any) -> None:
    (invoice,) = desk.book("BK-DX", "iv_individual", in_hours(-1), NEW)
    bookings_only = make_key("bookings:write")

    def mark(codes: list[str], headers: dict[str, str], key: str) -> Any:
        return desk.client.post(
            "/v1/bookings/BK-DX/attendance",
            json={
                "patients": [
                    {
                        "patient_id": NEW["patient_id"],
                        "status": "attended",
                        "diagnosis_codes": codes,
                    }
                ]
            },
            headers={**headers, "Idempotency-Key": key},
        )

    written = mark([" u071"], desk.headers, "k0")  # as typed: U07.1, COVID-19
    assert written.status_code == 200, written.json
    refused = mark(["F32.2"], bookings_only, "k1")
    assert refused.status_code == 403 and refused.json["code"] == "insufficient_scope"
    for codes, key in ((["F43.1"], "k2"), (["F99.99"], "k3"), (["32.2"], "k4")):
        wrong = mark(codes, desk.headers, key)
        assert wrong.status_code == 422, wrong.json
        assert "patients.0.diagnosis_codes" in wrong.json["errors"]
    unknown = desk.client.post(
        "/v1/bookings/BK-DX/attendance",
        json={
            "patients": [
                {"patient_id": NEW["patient_id"], "status": "attended", "rendering_provider": NPI}
            ]
        },
        headers={**desk.headers, "Idempotency-Key": "k5"},
    )
    assert unknown.status_code == 422 and unknown.json["code"] == "provider_not_found"
    assert invoice["id"]


def test_only_a_visits_invoice_has_a_superbill(desk: Desk, make_key: Any) -> None:
    assert (
        desk.price(
            notice_hours=24, late_cancellation_fee={"percent": 50}, no_show_fee={"amount": 7500}
        ).status_code
        == 201
    )
    desk.book("BK-NS", "iv_individual", in_hours(-1), NEW)
    missed = desk.mark("BK-NS", **{NEW["patient_id"]: "no_show"})
    (fee,) = missed.json["fees"]
    answer = desk.client.get(
        f"/v1/invoices/{fee['id']}/superbill", headers=make_key("clinical:read")
    )
    assert answer.status_code == 409 and answer.json["code"] == "no_superbill"
    nothing = desk.client.get(
        "/v1/invoices/in_nothing/superbill", headers=make_key("clinical:read")
    )
    assert nothing.status_code == 404


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    total=st.integers(0, 10_000_000),
    shares=st.lists(st.integers(0, 100), min_size=1, max_size=5),
)
def test_the_lines_always_add_up_to_the_invoice(total: int, shares: list[int]) -> None:
    codes = [f"9{index:04d} service {index}" for index in range(len(shares))]
    invoice = Invoice(total=total, currency="usd", session_type="iv_individual", lines=[])
    config = {
        "iv_individual": {
            "lines": {c.split()[0]: {"share": s} for c, s in zip(codes, shares, strict=True)}
        }
    }
    lines = superbills.lines_of(invoice, {"iv_individual": codes}, config, amount=total)
    assert sum(line["charge"] for line in lines) == total
    assert all(line["charge"] >= 0 for line in lines)
    assert [line["code"] for line in lines] == [c.split()[0] for c in codes]


OUTPUT = Path(__file__).resolve().parents[2] / "test-output" / "superbills"


def _look_at(data: bytes) -> None:
    """Each page as an image, to look at as a claims clerk would; every character on
    the page."""
    import pypdfium2 as pdfium

    OUTPUT.mkdir(parents=True, exist_ok=True)
    document = pdfium.PdfDocument(data)
    for number in range(len(document)):
        page = document[number]
        page.render(scale=2).to_pil().save(OUTPUT / f"superbill-{number + 1}.png")
        width, height = page.get_size()
        text = page.get_textpage()
        for index in range(text.count_chars()):
            left, bottom, right, top = text.get_charbox(index)
            assert 0 <= left and right <= width and 0 <= bottom and top <= height


CLAIM_REQUIRED = ("1", "1a", "2", "3", "5", "11c", "21", "24", "25", "26", "28", "33", "33a")


def test_a_claim_has_the_cms_1500_boxes_and_names_the_ones_it_cannot_fill(
    app: Any, desk: Desk, make_key: Any
) -> None:
    app.config.update(CLINIC_NPI="1245319599", CLINIC_TIN="12-3456789")
    invoice_id = visit(desk, "BK-CL")
    reader = make_key("clinical:read")
    path = f"/v1/invoices/{invoice_id}/claim"
    refused = desk.client.get(path, headers=reader)
    assert refused.status_code == 409 and refused.json["code"] == "claim_incomplete"
    assert set(refused.json["errors"]) == {"1a", "3", "5", "11c", "21", "24"}

    profile(desk)
    provider(desk)
    desk.client.put(
        f"/v1/patients/{NEW['patient_id']}/profile",
        json={
            "date_of_birth": "1979-03-14",
            "sex": "F",
            "address": {
                "line1": "9 Oak Ave",
                "city": "Fresno",
                "state": "CA",
                "postal_code": "93650",
            },
            "insurance": {"payer_name": "Aetna", "member_id": "W123456789", "group_number": "G-77"},
        },
        headers=desk.headers,
    )
    desk.client.post(
        "/v1/bookings/BK-CL/attendance",
        json={
            "patients": [
                {
                    "patient_id": NEW["patient_id"],
                    "status": "attended",
                    "diagnosis_codes": ["F32.2"],
                    "rendering_provider": NPI,
                }
            ]
        },
        headers={**desk.headers, "Idempotency-Key": "cl-2"},
    )
    made = desk.client.get(path, headers=reader)
    assert made.status_code == 200, made.json
    boxes = made.json["boxes"]
    for box in CLAIM_REQUIRED:  # every required box is filled
        assert boxes[box] not in (None, "", [], {}), box
    assert boxes["1a"] == "W123456789" and boxes["11"] == "G-77" and boxes["11c"] == "Aetna"
    assert boxes["2"] == "NEW, CLEO" and boxes["6"] == "self"
    assert boxes["3"] == {"date_of_birth": "1979-03-14", "sex": "F"}
    assert boxes["21"] == {"icd_indicator": "0", "diagnoses": {"A": "F32.2"}}
    assert [line["d_procedure"] for line in boxes["24"]] == ["J3490", "96365", "90834"]
    assert all(line["j_rendering_npi"] == NPI for line in boxes["24"])
    assert sum(line["f_charges"] for line in boxes["24"]) == boxes["28"] == 50000
    assert boxes["25"] == {"tax_id": "12-3456789", "type": "EIN"}
    assert (boxes["33a"], boxes["33b"], boxes["27"]) == ("1245319599", "ZZ2084P0800X", False)

    pdf = desk.client.get(path + ".pdf", headers=reader)
    assert pdf.status_code == 200 and pdf.mimetype == "application/pdf"
    text = " ".join(
        " ".join(page.extract_text() for page in PdfReader(io.BytesIO(pdf.data)).pages).split()
    )
    for expected in (
        "CMS-1500",
        "W123456789",
        "NEW, CLEO",
        "F32.2",
        "J3490",
        "1245319599",
        "$500.00",
    ):
        assert expected in text, expected


def test_a_visit_corrected_to_a_no_show_has_no_superbill(
    app: Any, desk: Desk, make_key: Any
) -> None:
    app.config.update(CLINIC_NPI="1245319599", CLINIC_TIN="12-3456789")
    profile(desk)
    provider(desk)
    invoice_id = visit(desk, "BK-NO", diagnosis_codes=["F32.2"], rendering_provider=NPI)
    path = f"/v1/invoices/{invoice_id}/superbill"
    assert desk.client.get(path, headers=make_key("clinical:read")).status_code == 200
    corrected = desk.mark("BK-NO", **{NEW["patient_id"]: "no_show"})
    assert corrected.status_code == 200, corrected.json
    gone = desk.client.get(path, headers=make_key("clinical:read"))
    assert gone.status_code == 409 and gone.json["code"] == "no_superbill"
