"""Pay links and the pay page, through the Flask test client (the browser tests are in e2e)."""

from __future__ import annotations

import io
from datetime import UTC, datetime, timedelta

import pytest
from pypdf import PdfReader

from tests.fixtures_stripe import eventually

PAGES = ["", "/receipt", "/receipt.pdf"]


def pay_link(client, staff, invoice_id, key="link-1"):
    response = client.post(
        f"/v1/invoices/{invoice_id}/payments",
        headers={**staff, "Idempotency-Key": key},
        json={"method": "online"},
    )
    assert response.status_code == 201, response.json
    return response.json


def path_of(url: str) -> str:
    return "/" + url.split("/", 3)[3]


def pay_on_file(client, staff, invoice_id):
    response = client.post(
        f"/v1/invoices/{invoice_id}/payments",
        headers={**staff, "Idempotency-Key": f"file-{invoice_id}"},
        json={"method": "card_on_file"},
    )
    assert response.status_code == 201, response.json


def test_online_payment_returns_a_pay_link(stripe_client, staff, open_invoice) -> None:
    invoice_id = open_invoice(card=None)
    link = pay_link(stripe_client, staff, invoice_id)
    assert link["pay_url"].startswith("http://localhost/pay/")
    expires = datetime.fromisoformat(link["pay_url_expires_at"])
    assert timedelta(days=6, hours=23) < expires - datetime.now(UTC) <= timedelta(days=7)
    assert link["invoice_id"] == invoice_id


def test_pay_page_shows_what_is_owed_and_a_card_form(stripe_client, staff, open_invoice, proxy):
    invoice_id = open_invoice(card=None)
    page = stripe_client.get(path_of(pay_link(stripe_client, staff, invoice_id)["pay_url"]))
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    invoice = stripe_client.get(f"/v1/invoices/{invoice_id}", headers=staff).json
    for text in (invoice["number"], "Test Patient", "Individual IV ketamine session", "$500.00"):
        assert text in html
    assert 'data-client-secret="pi_' in html
    assert '<label for="payment-element">' in html
    assert "needs JavaScript" in html  # the <noscript> explanation
    assert "/js.stripe.com/v3/" in html
    again = stripe_client.get(
        path_of(pay_link(stripe_client, staff, invoice_id, "link-2")["pay_url"])
    )
    assert again.status_code == 200
    assert len(proxy.calls("POST", "/v1/payment_intents")) == 1  # one intent per invoice


def test_two_links_both_work(stripe_client, staff, open_invoice) -> None:
    invoice_id = open_invoice(card=None)
    first = pay_link(stripe_client, staff, invoice_id, "a")["pay_url"]
    second = pay_link(stripe_client, staff, invoice_id, "b")["pay_url"]
    assert first != second
    for url in (first, second):
        assert stripe_client.get(path_of(url)).status_code == 200


@pytest.mark.parametrize("page", PAGES)
def test_every_page_sends_the_security_headers(stripe_client, staff, open_invoice, page) -> None:
    invoice_id = open_invoice()
    path = path_of(pay_link(stripe_client, staff, invoice_id)["pay_url"])
    pay_on_file(stripe_client, staff, invoice_id)
    for response in (stripe_client.get(path + page), stripe_client.get("/pay/nonsense" + page)):
        csp = response.headers["Content-Security-Policy"]
        assert "script-src 'self' http://127.0.0.1:" in csp
        assert "default-src 'self'" in csp and "frame-ancestors 'none'" in csp
        assert response.headers["X-Content-Type-Options"] == "nosniff"
        assert response.headers["Referrer-Policy"] == "no-referrer"
        assert response.headers["Cache-Control"] == "no-store"
        assert "Strict-Transport-Security" not in response.headers  # plain HTTP here
    secure = stripe_client.get(path, base_url="https://localhost")
    assert secure.headers["Strict-Transport-Security"].startswith("max-age=")


def test_tampered_token_shows_a_clear_page(stripe_client, staff, open_invoice) -> None:
    path = path_of(pay_link(stripe_client, staff, open_invoice(card=None))["pay_url"])
    tampered = path[:-3] + ("AAA" if not path.endswith("AAA") else "BBB")
    response = stripe_client.get(tampered)
    assert response.status_code == 404
    assert "not valid" in response.get_data(as_text=True)
    assert "Test Patient" not in response.get_data(as_text=True)


def test_expired_token_shows_a_clear_page(stripe_client, staff, open_invoice) -> None:
    app = stripe_client.application
    app.config["PAY_LINK_TTL_DAYS"] = -1
    path = path_of(pay_link(stripe_client, staff, open_invoice(card=None))["pay_url"])
    response = stripe_client.get(path)
    assert response.status_code == 410
    assert "expired" in response.get_data(as_text=True)


def test_void_invoice_revokes_its_links(stripe_client, staff, open_invoice) -> None:
    invoice_id = open_invoice(card=None)
    path = path_of(pay_link(stripe_client, staff, invoice_id)["pay_url"])
    stripe_client.post(f"/v1/invoices/{invoice_id}/void", headers=staff)
    response = stripe_client.get(path)
    assert response.status_code == 410
    assert "withdrawn" in response.get_data(as_text=True)


def test_paid_invoice_link_shows_the_receipt(stripe_client, staff, open_invoice) -> None:
    invoice_id = open_invoice()
    path = path_of(pay_link(stripe_client, staff, invoice_id)["pay_url"])
    pay_on_file(stripe_client, staff, invoice_id)
    html = stripe_client.get(path).get_data(as_text=True)
    assert "Receipt" in html and "Paid" in html
    assert "Visa ending 4242" in html
    assert "96365" in html  # the IV administration code
    assert "payment-form" not in html


def test_no_new_link_for_a_paid_invoice(stripe_client, staff, open_invoice) -> None:
    invoice_id = open_invoice()
    pay_on_file(stripe_client, staff, invoice_id)
    response = stripe_client.post(
        f"/v1/invoices/{invoice_id}/payments",
        headers={**staff, "Idempotency-Key": "late-link"},
        json={"method": "online"},
    )
    assert response.status_code == 409
    assert response.json["code"] == "invoice_not_payable"


def test_receipt_pdf_holds_number_amount_and_codes(stripe_client, staff, open_invoice) -> None:
    invoice_id = open_invoice()
    path = path_of(pay_link(stripe_client, staff, invoice_id)["pay_url"])
    pay_on_file(stripe_client, staff, invoice_id)
    number = stripe_client.get(f"/v1/invoices/{invoice_id}", headers=staff).json["number"]
    for response in (
        stripe_client.get(path + "/receipt.pdf"),
        stripe_client.get(f"/v1/invoices/{invoice_id}/receipt.pdf", headers=staff),
    ):
        assert response.status_code == 200
        assert response.mimetype == "application/pdf"
        text = "".join(page.extract_text() for page in PdfReader(io.BytesIO(response.data)).pages)
        for expected in (number, "$500.00", "J3490", "96365", "90834", "4242", "EIN"):
            assert expected in text, expected


def test_unpaid_invoice_has_no_receipt_pdf(stripe_client, staff, open_invoice) -> None:
    response = stripe_client.get(f"/v1/invoices/{open_invoice()}/receipt.pdf", headers=staff)
    assert response.status_code == 409
    assert response.json["code"] == "invoice_not_paid"


def test_token_lookups_are_rate_limited(stripe_client) -> None:
    stripe_client.application.config["PAY_RATE_LIMIT_PER_MINUTE"] = 5
    answers = [stripe_client.get(f"/pay/guess-{i}") for i in range(7)]
    assert [a.status_code for a in answers] == [404] * 5 + [429, 429]
    refused = answers[-1]
    assert refused.mimetype == "text/html"  # a page for a patient, not an API problem
    assert "Too many attempts" in refused.get_data(as_text=True)
    assert 1 <= int(refused.headers["Retry-After"]) <= 60


def test_token_never_reaches_the_log(stripe_client, staff, open_invoice, caplog) -> None:
    import logging

    caplog.set_level(logging.INFO, logger="billing.request")
    path = path_of(pay_link(stripe_client, staff, open_invoice(card=None))["pay_url"])
    stripe_client.get(path)
    token = path.rsplit("/", 1)[1]
    assert token not in caplog.text
    assert "/pay/<token>" in caplog.text


def status_of_page(client, url: str) -> dict:
    response = client.get(f"{path_of(url)}/status")
    assert response.status_code == 200
    assert response.headers["Cache-Control"] == "no-store"
    return dict(response.json)


def test_status_says_whether_the_invoice_can_still_be_paid(
    stripe_client, staff, open_invoice
) -> None:
    invoice_id = open_invoice()
    url = pay_link(stripe_client, staff, invoice_id)["pay_url"]
    stripe_client.get(path_of(url))  # the page is open: its PaymentIntent exists
    assert status_of_page(stripe_client, url) == {
        "invoice_status": "open",
        "payable": True,
        "payment_status": "awaiting_patient",
        "message": None,
    }
    pay_on_file(stripe_client, staff, invoice_id)
    after = status_of_page(stripe_client, url)
    assert (after["invoice_status"], after["payable"], after["payment_status"]) == (
        "paid",
        False,
        "canceled",  # the desk's charge cancelled the page's PaymentIntent
    )
    assert "already paid" in after["message"]


def test_status_of_a_void_invoice_and_of_a_bad_token(stripe_client, staff, open_invoice) -> None:
    invoice_id = open_invoice(card=None)
    url = pay_link(stripe_client, staff, invoice_id)["pay_url"]
    assert stripe_client.post(f"/v1/invoices/{invoice_id}/void", headers=staff).status_code == 200
    gone = stripe_client.get(f"{path_of(url)}/status")
    assert gone.status_code == 410  # voiding withdrew the link
    assert stripe_client.get("/pay/not-a-token/status").status_code == 404


def test_pay_page_says_when_payment_is_due_and_the_session_date_apart(
    stripe_client, staff, open_invoice
) -> None:
    invoice_id = open_invoice(card=None)
    html = stripe_client.get(
        path_of(pay_link(stripe_client, staff, invoice_id)["pay_url"])
    ).get_data(as_text=True)
    scheduled = datetime.fromisoformat(
        stripe_client.get(f"/v1/invoices/{invoice_id}", headers=staff).json["scheduled_at"]
    ).astimezone(UTC)
    session_day = f"{scheduled.day} {scheduled:%b %Y}"  # the clinic's format: 6 Dec 2026
    assert f"<dt>Session date</dt><dd>{session_day}</dd>" in html
    assert "<dt>Payment due</dt><dd>On receipt of this invoice</dd>" in html
    assert f"due {session_day}" not in html


@pytest.mark.parametrize("problem", ["tampered", "expired", "withdrawn", "too-many"])
def test_pages_that_take_no_payment_show_how_to_reach_the_clinic(
    stripe_client, staff, open_invoice, problem
) -> None:
    app = stripe_client.application
    app.config.update(CLINIC_PHONE="+1 (415) 555-0134", CLINIC_EMAIL="desk@clinic.example")
    if problem == "expired":
        app.config["PAY_LINK_TTL_DAYS"] = -1
    invoice_id = open_invoice(card=None)
    path = path_of(pay_link(stripe_client, staff, invoice_id)["pay_url"])
    if problem == "tampered":
        path = path[:-3] + ("AAA" if not path.endswith("AAA") else "BBB")
    if problem == "withdrawn":
        stripe_client.post(f"/v1/invoices/{invoice_id}/void", headers=staff)
    if problem == "too-many":
        app.config["PAY_RATE_LIMIT_PER_MINUTE"] = 1
        stripe_client.get(path)
    response = stripe_client.get(path)
    assert response.status_code in (404, 410, 429)
    html = response.get_data(as_text=True)
    assert '<a href="tel:+14155550134">+1 (415) 555-0134</a>' in html
    assert '<a href="mailto:desk@clinic.example">desk@clinic.example</a>' in html
    assert 'class="message error"' in html


def test_the_dev_servers_access_log_shows_no_pay_token(
    stripe_client, staff, open_invoice, caplog
) -> None:
    """`make run` serves through Werkzeug, which logs each request line itself; the app
    here is served by the same Werkzeug request handler."""
    import logging
    import urllib.request

    from billing.devserver import hide_pay_tokens

    hide_pay_tokens()
    caplog.set_level(logging.INFO, logger="werkzeug")
    path = path_of(pay_link(stripe_client, staff, open_invoice(card=None))["pay_url"])
    token = path.rsplit("/", 1)[1]
    live = stripe_client.application.config["LIVE_URL"]
    for page in (path, f"{path}/status", f"{path}?submitted=1"):
        with urllib.request.urlopen(live + page, timeout=10) as answer:
            assert answer.status == 200

    def access_lines() -> list[str]:
        return [r.getMessage() for r in caplog.records if r.name == "werkzeug"]

    eventually(lambda: len([line for line in access_lines() if "/pay/" in line]) >= 3)
    logged = "\n".join(access_lines())
    assert token not in logged
    assert "GET /pay/<token> HTTP/1.1" in logged
    assert "GET /pay/<token>/status HTTP/1.1" in logged
    assert "GET /pay/<token>?submitted=1 HTTP/1.1" in logged
