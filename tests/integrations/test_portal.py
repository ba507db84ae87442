"""The patient portal, /account, through HTTP and a real SMTP server: signing in with an
emailed one-time link, what a signed-in address sees, and that it sees nothing else."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select, update

from billing.adapters import db
from billing.adapters.models import utcnow
from billing.adapters.outbox import EmailMessage as Queued
from billing.adapters.portal_models import PortalSession, PortalSignIn
from tests.integrations.smtp import Inbox, parts
from tests.integrations.test_emails import BASE, TREATMENT, send_due

ANSWER = re.compile(r"If (\S+) is the address the clinic has for you, a sign-in link")


@pytest.fixture
def portal(app: Flask, inbox: Inbox) -> Flask:
    app.config.update(SMTP_URL=inbox.url, PUBLIC_BASE_URL=BASE, CLINIC_NAME="Harbor Clinic")
    return app


@pytest.fixture
def desk(make_key: Callable[..., dict[str, str]]) -> dict[str, str]:
    return make_key("quotes:write", "invoices:read", "invoices:write", "payments:write")


def bill(
    client: FlaskClient,
    desk: dict[str, str],
    booking: Callable[..., Any],
    patient_id: str,
    email: str | None,
    booking_id: str,
    name: str = "Rae Kim",
) -> dict[str, Any]:
    patient: dict[str, Any] = {"patient_id": patient_id, "name": name, "prior_iv_sessions": 0}
    if email:
        patient["email"] = email
    quote = client.post(
        "/v1/quotes",
        json=booking(session_type="iv_individual", booking_id=booking_id, patients=[patient]),
        headers=desk,
    )
    assert quote.status_code == 201, quote.json
    made = client.post("/v1/invoices", json={"quote_id": quote.json["id"]}, headers=desk)
    assert made.status_code == 201, made.json
    return dict(made.json["data"][0])


def ask(client: FlaskClient, email: str) -> Any:
    return client.post("/account/sign-in", data={"email": email})


def emailed_link(app: Flask, inbox: Inbox, address: str) -> str:
    """The path of the newest sign-in link emailed to `address`, as a worker sends it."""
    send_due(app)
    [*_, message] = inbox.to(address)
    text, html = parts(message)
    found = re.search(rf"{BASE}(/account/sign-in/[^\s\"<]+)", text)
    assert found is not None and found.group(1) in html
    for where in (str(message["Subject"]), text):
        assert not TREATMENT.search(where), TREATMENT.search(where)
    assert "$" not in text  # no amounts: a sign-in link says nothing of what is owed
    return found.group(1)


def sign_in(app: Flask, inbox: Inbox, client: FlaskClient, email: str) -> None:
    assert ask(client, email).status_code == 200
    link = emailed_link(app, inbox, email)
    assert client.get(link).status_code == 200
    signed = client.post(link)
    assert signed.status_code == 303 and signed.headers["Location"] == "/account"


def test_a_link_emailed_to_a_known_address_signs_in_once_in_the_browser_that_asked(
    portal: Flask, inbox: Inbox, desk: dict[str, str], booking: Callable[..., Any]
) -> None:
    client = portal.test_client()
    invoice = bill(client, desk, booking, "P-71", "Rae@Example.org", "BK-P1")
    assert client.get("/account").headers["Location"] == "/account/sign-in"
    known, unknown = ask(client, "rae@example.org"), ask(client, "nobody@example.org")
    assert known.status_code == unknown.status_code == 200
    said = [ANSWER.sub("", r.get_data(as_text=True)) for r in (known, unknown)]
    assert said[0].replace("rae@example.org", "") == said[1].replace("nobody@example.org", "")
    cookie = known.headers.getlist("Set-Cookie")[0]
    assert "Path=/account" in cookie and "HttpOnly" in cookie and "SameSite=Lax" in cookie
    link = emailed_link(portal, inbox, "rae@example.org")
    assert inbox.to("nobody@example.org") == []  # nothing goes to an address we do not know
    with portal.app_context():  # what the outbox keeps of the email signs no one in
        kept = db.session().scalars(select(Queued).where(Queued.kind == "portal_sign_in")).all()
        assert {m.status for m in kept} == {"sent", "skipped"}
        assert all(link not in m.text_body + m.html_body for m in kept)
        assert any("/account/sign-in/(link withheld)" in m.text_body for m in kept)

    elsewhere = portal.test_client()  # another browser: the link is not for it
    refused = elsewhere.get(link)
    assert refused.status_code == 403
    assert "only in the browser where it was asked for" in refused.get_data(as_text=True)
    assert elsewhere.post(link).status_code == 403

    assert client.get(link).status_code == 200  # a button: opening the link uses nothing
    signed = client.post(link)
    assert signed.status_code == 303
    session_cookie = next(
        c for c in signed.headers.getlist("Set-Cookie") if c.startswith("billing_portal=")
    )
    assert "SameSite=Strict" in session_cookie and "HttpOnly" in session_cookie
    assert "Path=/account" in session_cookie and "Secure" in session_cookie
    page = client.get("/account")
    assert page.status_code == 200
    text = page.get_data(as_text=True)
    assert invoice["number"] in text and "Rae Kim" in text and "$500.00" in text
    assert page.headers["Cache-Control"] == "no-store"
    policy = page.headers["Content-Security-Policy"]
    assert "script-src 'self'" in policy and "unsafe-inline" not in policy
    assert "<script" not in text

    again = client.post(link)  # used: never a second session
    assert again.status_code == 410
    assert "already used" in again.get_data(as_text=True)


def test_an_expired_link_and_a_made_up_one_sign_nobody_in(
    portal: Flask, inbox: Inbox, desk: dict[str, str], booking: Callable[..., Any]
) -> None:
    client = portal.test_client()
    bill(client, desk, booking, "P-72", "sam@example.org", "BK-P2")
    ask(client, "sam@example.org")
    link = emailed_link(portal, inbox, "sam@example.org")
    with portal.app_context():
        db.session().execute(
            update(PortalSignIn).values(expires_at=utcnow() - timedelta(seconds=1))
        )
        db.session().commit()
    expired = client.post(link)
    assert expired.status_code == 410 and "expired" in expired.get_data(as_text=True)
    assert client.get(link[:-4] + "abcd").status_code == 404  # a signature not ours
    assert client.get("/account").status_code == 303  # still signed out


def test_a_session_ends_after_an_idle_hour_and_on_sign_out(
    portal: Flask, inbox: Inbox, desk: dict[str, str], booking: Callable[..., Any]
) -> None:
    client = portal.test_client()
    bill(client, desk, booking, "P-73", "lee@example.org", "BK-P3")
    sign_in(portal, inbox, client, "lee@example.org")
    assert client.get("/account").status_code == 200
    with portal.app_context():
        db.session().execute(update(PortalSession).values(seen_at=utcnow() - timedelta(minutes=61)))
        db.session().commit()
    assert client.get("/account").status_code == 303
    sign_in(portal, inbox, client, "lee@example.org")
    home = client.get("/account").get_data(as_text=True)
    csrf = re.search(r'name="csrf" value="([^"]+)"', home)
    assert csrf is not None
    assert client.post("/account/sign-out", data={"csrf": "forged"}).status_code == 400
    assert client.get("/account").status_code == 200  # a forged form ends nothing
    assert client.post("/account/sign-out", data={"csrf": csrf.group(1)}).status_code == 303
    assert client.get("/account").status_code == 303


def test_an_address_sees_its_patients_only_and_every_other_id_is_a_404(
    portal: Flask, inbox: Inbox, desk: dict[str, str], booking: Callable[..., Any]
) -> None:
    """A parent whose address the booking system gives for a child's bookings sees the
    child's bills too; another family's bills are a 404 on every portal URL; a patient
    whose newer bookings give another address is no longer reached by the old one."""
    client = portal.test_client()
    mine = bill(client, desk, booking, "P-80", "kim@example.org", "BK-F1", name="Kim Park")
    child = bill(client, desk, booking, "P-81", "kim@example.org", "BK-F2", name="Joy Park")
    theirs = bill(client, desk, booking, "P-90", "ola@example.org", "BK-O1", name="Ola Berg")
    sign_in(portal, inbox, client, "kim@example.org")
    page = client.get("/account").get_data(as_text=True)
    assert mine["number"] in page and child["number"] in page
    assert theirs["number"] not in page and "Ola Berg" not in page
    csrf = re.search(r'name="csrf" value="([^"]+)"', page)
    assert csrf is not None
    for url in (
        f"/account/invoices/{theirs['id']}/receipt.pdf",
        "/account/patients/P-90/pay?currency=usd",
        "/account/patients/P-90/cards",
        "/account/payments/pay_nothing/status",
        "/account/payments/pay_nothing/done",
    ):
        assert client.get(url).status_code == 404, url
    together = {"csrf": csrf.group(1), "currency": "usd", "invoice": [theirs["id"]]}
    assert client.post("/account/patients/P-90/pay", data=together).status_code == 404
    assert (
        client.post(
            f"/account/invoices/{theirs['id']}/pay", data={"csrf": csrf.group(1)}
        ).status_code
        == 404
    )
    assert (
        client.post("/account/invoices/in_nothing/pay", data={"csrf": csrf.group(1)}).status_code
        == 404
    )
    paid = client.post(f"/account/invoices/{child['id']}/pay", data={"csrf": csrf.group(1)})
    assert paid.status_code == 303 and paid.headers["Location"].startswith("/pay/")
    assert client.get(paid.headers["Location"] + "/status").json["payable"] is True

    bill(client, desk, booking, "P-81", "joy@example.org", "BK-F3", name="Joy Park")
    page = client.get("/account").get_data(as_text=True)
    assert "Joy Park" not in page and child["number"] not in page  # she has her own now
    assert (
        client.post(
            f"/account/invoices/{child['id']}/pay", data={"csrf": csrf.group(1)}
        ).status_code
        == 404
    )


def test_a_form_posted_from_another_site_is_refused(
    portal: Flask, desk: dict[str, str], booking: Callable[..., Any]
) -> None:
    client = portal.test_client()
    forged = client.post(
        "/account/sign-in",
        data={"email": "rae@example.org"},
        headers={"Sec-Fetch-Site": "cross-site", "Origin": "https://evil.example"},
    )
    assert forged.status_code == 403
    assert (
        client.post(
            "/account/sign-in",
            data={"email": "x@example.org"},
            headers={"Origin": "https://evil.example"},
        ).status_code
        == 403
    )


def test_sign_in_links_asked_too_often_for_one_address_are_not_sent_for_a_while(
    portal: Flask, inbox: Inbox, desk: dict[str, str], booking: Callable[..., Any]
) -> None:
    client = portal.test_client()
    bill(client, desk, booking, "P-74", "max@example.org", "BK-P4")
    answers = [ask(client, "max@example.org") for _ in range(6)]
    # The sixth looks the same (a stranger asking in someone's name learns nothing), and
    # sends nothing.
    assert [a.status_code for a in answers] == [200] * 6
    assert answers[5].get_data() == answers[4].get_data()
    send_due(portal)
    assert len(inbox.to("max@example.org")) == 5


def test_a_cancelled_bill_with_a_mistyped_address_gives_that_address_no_one(
    portal: Flask, inbox: Inbox, desk: dict[str, str], booking: Callable[..., Any]
) -> None:
    """Asking with an address no one is reached at does the same as with a known one, and
    sends nothing; a cancelled bill's address decides nothing."""
    client = portal.test_client()
    bill(client, desk, booking, "P-W", "right@example.org", "BK-W1")
    typo = bill(client, desk, booking, "P-W", "wrong@example.org", "BK-W2")
    assert client.post(f"/v1/invoices/{typo['id']}/void", headers=desk).status_code == 200
    for address in ("wrong@example.org", "right@example.org"):
        assert ask(client, address).status_code == 200
    send_due(portal)
    assert inbox.to("wrong@example.org") == []
    assert len(inbox.to("right@example.org")) == 1
    invited = client.post("/v1/patients/P-W/portal-link", headers=desk)
    assert invited.status_code == 201 and invited.json["sent_to"] == "r***@example.org"


def test_odd_input_is_a_clear_page_and_forms_from_the_public_address_are_ours(
    portal: Flask, inbox: Inbox, desk: dict[str, str], booking: Callable[..., Any]
) -> None:
    client = portal.test_client()
    bill(client, desk, booking, "P-N", "nul@example.org", "BK-N1")
    assert ask(client, "nul@example.org\x00").status_code == 404  # never a 500
    assert client.get("/account/invoices/in_%00/receipt.pdf").status_code in (303, 404)
    assert client.get("/account/statements.pdf?from=2026-01-0%ED%A0%80").status_code in (303, 404)
    # Behind a proxy the Host header may be the proxy's own: the public address counts.
    proxied = client.post(
        "/account/sign-in",
        data={"email": "nul@example.org"},
        headers={"Origin": BASE, "Host": "10.0.0.7:8000"},
    )
    assert proxied.status_code == 200
