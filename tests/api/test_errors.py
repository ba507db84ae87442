"""Bad input gets a clear problem+json 4xx with a stable code and the field, never a 500."""

from __future__ import annotations

import json
import logging

import pytest


@pytest.fixture
def headers(make_key):
    return make_key("quotes:write", "catalog:write")


def assert_problem(response, status: int, code: str) -> dict:
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.mimetype == "application/problem+json"
    body = response.json
    assert body["code"] == code
    assert body["status"] == status
    assert body["title"] and body["detail"]
    assert body["request_id"] == response.headers["X-Request-ID"]
    return body


def test_malformed_json_is_400(client, headers) -> None:
    response = client.post(
        "/v1/quotes",
        data='{"booking_id": ',
        headers={**headers, "Content-Type": "application/json"},
    )
    assert_problem(response, 400, "malformed_json")


def test_wrong_content_type_is_415(client, headers, booking) -> None:
    response = client.post(
        "/v1/quotes", data=json.dumps(booking()), headers={**headers, "Content-Type": "text/plain"}
    )
    assert_problem(response, 415, "unsupported_media_type")


def test_form_body_is_415(client, headers) -> None:
    response = client.post("/v1/quotes", data={"booking_id": "x"}, headers=headers)
    assert_problem(response, 415, "unsupported_media_type")


def test_oversized_body_is_413(client, headers, booking) -> None:
    payload = booking(booking_id="B" * 70_000)
    response = client.post("/v1/quotes", json=payload, headers=headers)
    assert_problem(response, 413, "payload_too_large")


def test_json_array_instead_of_object_is_422(client, headers) -> None:
    response = client.post("/v1/quotes", json=[1, 2], headers=headers)
    assert_problem(response, 422, "validation_error")


def test_empty_body_reports_missing_fields(client, headers) -> None:
    response = client.post("/v1/quotes", headers={**headers, "Content-Type": "application/json"})
    body = assert_problem(response, 422, "validation_error")
    assert {"booking_id", "session_type", "currency", "patients"} <= set(body["errors"])


def test_unknown_field_is_named(client, headers, booking) -> None:
    response = client.post("/v1/quotes", json=booking(discount=10), headers=headers)
    body = assert_problem(response, 422, "validation_error")
    assert body["errors"] == {"discount": ["Unknown field."]}


def test_nested_errors_are_field_paths(client, headers, booking) -> None:
    patients = [
        {"patient_id": "P-1", "name": "A", "prior_iv_sessions": "two"},
        {"patient_id": "P-2"},
    ]
    response = client.post("/v1/quotes", json=booking(patients=patients), headers=headers)
    body = assert_problem(response, 422, "validation_error")
    assert set(body["errors"]) == {"patients.0.prior_iv_sessions", "patients.1.name"}


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("currency", "USD"),
        ("currency", "btc"),
        ("scheduled_at", "2026-02-30T10:00:00Z"),
        ("scheduled_at", "2026-12-03 15:00"),
        ("scheduled_at", "3026-12-03T15:00:00Z"),
        ("session_type", 7),
        ("booking_id", ""),
        ("booking_id", "BK 1; DROP TABLE quotes"),
        ("patients", "P-1001"),
    ],
)
def test_bad_values_are_422_naming_the_field(client, headers, booking, field, value) -> None:
    response = client.post("/v1/quotes", json=booking(**{field: value}), headers=headers)
    body = assert_problem(response, 422, "validation_error")
    assert field in body["errors"]


def test_unknown_path_is_problem_404(client) -> None:
    assert_problem(client.get("/v1/nothing-here"), 404, "not_found")


def test_wrong_method_is_problem_405(client, headers) -> None:
    assert_problem(client.delete("/v1/quotes", headers=headers), 405, "method_not_allowed")


def test_request_id_is_echoed_or_made(client) -> None:
    assert (
        client.get("/healthz", headers={"X-Request-ID": "abc-123"}).headers["X-Request-ID"]
        == "abc-123"
    )
    made = client.get("/healthz", headers={"X-Request-ID": "bad id with spaces"}).headers[
        "X-Request-ID"
    ]
    assert made and " " not in made and made != "bad id with spaces"


def test_unexpected_error_is_a_logged_500_without_internals(
    app, client, headers, booking, monkeypatch, caplog
):
    from billing.services.pricing import quotes

    def explode(*_args, **_kwargs):
        raise RuntimeError("SELECT secret FROM internals")

    monkeypatch.setattr(quotes, "create_quote", explode)
    caplog.set_level(logging.ERROR, logger="billing.errors")
    response = client.post("/v1/quotes", json=booking(), headers=headers)
    body = assert_problem(response, 500, "internal_error")
    assert "SELECT" not in response.get_data(as_text=True)
    assert any(body["request_id"] in record.getMessage() for record in caplog.records)


def test_one_log_line_per_request_without_secrets(client, headers, booking, caplog) -> None:
    caplog.set_level(logging.INFO, logger="billing.request")
    response = client.post("/v1/quotes", json=booking(), headers=headers)
    lines = [json.loads(r.getMessage()) for r in caplog.records if r.name == "billing.request"]
    assert len(lines) == 1
    line = lines[0]
    assert line["method"] == "POST"
    assert line["path"] == "/v1/quotes"
    assert line["status"] == 201
    assert line["request_id"] == response.headers["X-Request-ID"]
    assert line["api_key"].startswith("test-")
    assert isinstance(line["duration_ms"], float)
    raw = caplog.text
    assert headers["Authorization"].split()[1] not in raw
    assert "Ana Ruiz" not in raw


def test_api_answers_are_kept_by_no_cache_and_never_sniffed(client, make_key, booking) -> None:
    headers = make_key("quotes:write")
    for response in (
        client.post("/v1/quotes", json=booking(), headers=headers),
        client.get("/v1/quotes/qt_missing", headers=headers),
        client.get("/v1/catalog"),
    ):
        assert response.headers["Cache-Control"] == "no-store"
        assert response.headers["X-Content-Type-Options"] == "nosniff"


def test_lone_surrogates_are_refused_naming_where(client, headers, booking) -> None:
    """Half of a surrogate pair, escaped or as raw bytes, is no character: neither database
    can store it, nor can an answer carry it. A clear 422, never a 500; a whole pair (an
    emoji) is a character like any other."""
    body = booking()
    escaped = json.dumps(body).replace('"Ana Ruiz"', '"Ana \\ud800 Ruiz"')
    raw = (
        json.dumps(body)
        .replace('"Ana Ruiz"', '"Ana X Ruiz"')
        .encode()
        .replace(b"X", b"\xed\xa0\x80")
    )
    for sent in (escaped, raw):
        refused = assert_problem(
            client.post("/v1/quotes", data=sent, content_type="application/json", headers=headers),
            422,
            "invalid_unicode",
        )
        assert list(refused["errors"]) == ["patients.0.name"]
    body["patients"][0]["name"] = "Ana \U0001f600 Ruiz"
    made = client.post("/v1/quotes", json=body, headers=headers)
    assert made.status_code == 201, made.json
    assert made.json["lines"][0]["patient_name"] == "Ana \U0001f600 Ruiz"


def test_nul_characters_are_refused_naming_where(client, headers, booking) -> None:
    """PostgreSQL cannot store a NUL: a body, a query string or a path holding one is a
    clear 4xx, never a 500, on both databases."""
    body = booking()
    body["patients"][0]["name"] = "Ana\u0000Ruiz"
    refused = assert_problem(
        client.post("/v1/quotes", json=body, headers=headers), 422, "nul_character"
    )
    assert list(refused["errors"]) == ["patients.0.name"]
    assert_problem(client.get("/v1/catalog?currency=us%00d", headers=headers), 400, "nul_character")
    assert_problem(client.get("/v1/quotes/qt_%00", headers=headers), 404, "not_found")
    assert client.get("/v1/catalog?currency=usd", headers=headers).status_code == 200
