"""The patient portal in Debian's Chromium: signing in with the emailed link (and that
link refused once used), paying a bill from the account and downloading its receipt and
the year-end statement; paying three bills in one payment, saving the card on the way,
then removing it;
axe-core finds nothing on any portal page at a desk's 1280 px and a phone's 390 px.
Screenshots of each page go to test-output/screenshots/."""

from __future__ import annotations

import io
import re
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from flask import Flask
from pypdf import PdfReader

from billing.adapters import db
from billing.services.integrations import emails
from billing.services.integrations.settings import sending
from tests.e2e.test_accessibility import WIDTHS, axe_source, violations  # noqa: F401
from tests.e2e.test_pay_in_browser import enter_card, status_of
from tests.fixtures_stripe import eventually
from tests.integrations.smtp import Inbox, inbox, parts  # noqa: F401

pytestmark = pytest.mark.parametrize("stripe_app", ["sqlite"], indirect=True)
ADDRESS = "noor@example.org"


@pytest.fixture
def mailing(stripe_app: Flask, inbox: Inbox) -> Flask:  # noqa: F811
    stripe_app.config.update(
        SMTP_URL=inbox.url,
        PUBLIC_BASE_URL=stripe_app.config["LIVE_URL"],
        CLINIC_NAME="Harbor Clinic",
    )
    return stripe_app


@pytest.fixture(params=WIDTHS)
def page(request: pytest.FixtureRequest, browser: Any) -> Iterator[Any]:
    width, height = WIDTHS[request.param]
    context = browser.new_context(
        viewport={"width": width, "height": height}, bypass_csp=True, accept_downloads=True
    )
    page = context.new_page()
    page.set_default_timeout(15_000)
    yield page
    context.close()


def link_in_email(app: Flask, inbox: Inbox) -> str:  # noqa: F811
    """What a worker does, then the link the patient reads in the email."""
    with app.app_context():
        session = db.session()
        for message in emails.due(session):
            emails.send(session, sending(app), message)
    text, _ = parts(inbox.to(ADDRESS)[-1])
    found = re.search(r"(http://\S+/account/sign-in/\S+)", text)
    assert found is not None, text
    return found.group(1)


def sign_in_as_the_patient(page: Any, base: str, app: Flask, inbox: Inbox) -> str:  # noqa: F811
    page.goto(f"{base}/account")
    page.get_by_label("Email address").fill(ADDRESS.upper())  # typed as it comes
    page.get_by_role("button", name="Email me a sign-in link").click()
    page.get_by_role("heading", name="Check your email").wait_for()
    link = link_in_email(app, inbox)
    page.goto(link)
    page.get_by_role("button", name="Sign in").click()
    page.get_by_role("heading", name="Your account").wait_for()
    return link


def test_a_patient_signs_in_by_link_pays_a_bill_and_downloads_its_receipt(
    mailing: Flask,
    stripe_client: Any,
    staff: dict[str, str],
    open_invoice: Callable[..., str],
    inbox: Inbox,  # noqa: F811
    page: Any,
    violations: Callable[[Any], list[str]],  # noqa: F811
    screenshot: Any,
) -> None:
    base = mailing.config["LIVE_URL"]
    first = open_invoice(card=None, patient_id="P-NOOR", booking_id="BK-N1", email=ADDRESS)
    second = open_invoice(card=None, patient_id="P-NOOR", booking_id="BK-N2", email=ADDRESS)
    numbers = [
        stripe_client.get(f"/v1/invoices/{i}", headers=staff).json["number"]
        for i in (first, second)
    ]
    page.goto(f"{base}/account")
    page.get_by_role("heading", name="Your billing account").wait_for()
    found = violations(page)
    screenshot(page, "sign-in")
    page.get_by_label("Email address").fill(ADDRESS)
    page.get_by_role("button", name="Email me a sign-in link").click()
    page.get_by_role("heading", name="Check your email").wait_for()
    found += violations(page)
    screenshot(page, "check-your-email")
    link = link_in_email(mailing, inbox)
    page.goto(link)
    page.get_by_role("button", name="Sign in").wait_for()
    found += violations(page)
    page.get_by_role("button", name="Sign in").click()
    page.get_by_role("heading", name="Your account").wait_for()
    for number in numbers:
        assert page.get_by_text(f"Invoice {number}", exact=True).is_visible()
    assert page.get_by_text("$1,000.00").first.is_visible()  # two bills of $500.00 owed
    found += violations(page)
    screenshot(page, "account")

    page.goto(link)  # used: it signs nobody in again
    page.get_by_text("already used").wait_for()
    found += violations(page)
    screenshot(page, "link-used")

    page.goto(f"{base}/account")
    page.get_by_role("button", name=f"Pay $500.00 for invoice {numbers[0]}").click()
    page.get_by_role("heading", name="Pay invoice").wait_for()
    enter_card(page, "4242424242424242")
    page.get_by_role("button", name="Pay $500.00").click()
    page.wait_for_url("**submitted=1*")  # back from paying: then to the account
    eventually(lambda: status_of(stripe_client, staff, first) == "paid")
    page.goto(f"{base}/account")
    receipt = page.get_by_role("link", name=f"Receipt for invoice {numbers[0]} (PDF)")
    receipt.wait_for()
    assert page.get_by_role("button", name=f"Pay $500.00 for invoice {numbers[1]}").is_visible()
    found += violations(page)
    with page.expect_download() as download:
        receipt.click()
    text = "".join(
        p.extract_text() for p in PdfReader(io.BytesIO(download.value.path().read_bytes())).pages
    )
    assert numbers[0] in text and "$500.00" in text

    page.get_by_role("link", name="Saved cards and AutoPay").click()
    page.get_by_role("heading", name="Saved cards: Test Patient").wait_for()
    found += violations(page)
    screenshot(page, "cards")
    page.get_by_role("link", name="Back to your account").click()

    year = datetime.now(UTC).year  # the year-end statement: one click
    with page.expect_download() as download:
        page.get_by_role("link", name=f"Statement for {year} (PDF)").click()
    text = "".join(
        p.extract_text() for p in PdfReader(io.BytesIO(download.value.path().read_bytes())).pages
    )
    assert all(f"Invoice {n}" in text for n in numbers)
    assert "Closing balance (owed, less your credit) $500.00" in text.replace("\n", " ")

    page.get_by_role("button", name="Sign out").click()
    page.get_by_role("heading", name="Your billing account").wait_for()
    page.goto(f"{base}/account")
    page.get_by_role("heading", name="Your billing account").wait_for()  # signed out
    assert found == [], "\n".join(found)


def test_the_cards_page_with_a_plan_to_move_and_the_other_portal_pages_pass_axe(
    mailing: Flask,
    stripe_client: Any,
    staff: dict[str, str],
    open_invoice: Callable[..., str],
    standin: Any,
    inbox: Inbox,  # noqa: F811
    page: Any,
    violations: Callable[[Any], list[str]],  # noqa: F811
    screenshot: Any,
) -> None:
    from datetime import timedelta

    from billing.services.portal import statement_emails
    from tests.fixtures_stripe import save_card
    from tests.stripe.plans import make_plan

    base = mailing.config["LIVE_URL"]
    planned = open_invoice("pm_card_visa", patient_id="P-NOOR", booking_id="BK-N3", email=ADDRESS)
    later = (datetime.now(UTC).date() + timedelta(days=3)).isoformat()
    make_plan(stripe_client, staff, planned, instalments=3, interval="month", first_at=later)
    save_card(stripe_client, staff, standin.url, "P-NOOR", "5555555555554444")
    sign_in_as_the_patient(page, base, mailing, inbox)
    page.get_by_role("link", name="Saved cards and AutoPay").click()
    page.get_by_role("button", name="Use that card instead").wait_for()
    found = violations(page)
    screenshot(page, "cards-with-a-plan")
    page.get_by_role("button", name="Remove Visa ending 4242").click()  # a plan charges it
    page.get_by_role("heading", name="Choose another card first").wait_for()
    found += violations(page)
    page.goto(f"{base}/account/patients/P-NOOR/pay?currency=usd")  # saved cards offered
    page.get_by_role("button", name="Review the payment").click()
    page.get_by_role("button", name=re.compile(r"Pay \$[\d,.]+ with this card")).wait_for()
    assert page.get_by_label(re.compile("ending 4444, expires")).is_visible()
    found += violations(page)
    screenshot(page, "pay-bills-saved-cards")
    token = statement_emails.unsubscribe_token(mailing.config["SECRET_KEY"], ADDRESS)
    page.goto(f"{base}/account/unsubscribe/{token}")
    page.get_by_role("button", name="Stop statement emails").wait_for()
    found += violations(page)
    page.goto(f"{base}/account/invoices/in_nothing/receipt.pdf")  # what a wrong id shows
    page.get_by_role("heading", name="Not found").wait_for()
    found += violations(page)
    assert found == [], "\n".join(found)


def test_a_patient_pays_three_bills_at_once_seeing_what_each_gets_before_paying(
    mailing: Flask,
    stripe_client: Any,
    staff: dict[str, str],
    open_invoice: Callable[..., str],
    inbox: Inbox,  # noqa: F811
    page: Any,
    violations: Callable[[Any], list[str]],  # noqa: F811
    screenshot: Any,
) -> None:
    base = mailing.config["LIVE_URL"]
    bills = [
        open_invoice(card=None, patient_id="P-NOOR", booking_id=f"BK-T{n}", email=ADDRESS)
        for n in range(3)
    ]
    cash = stripe_client.post(  # the second bill was paid in part at the desk
        f"/v1/invoices/{bills[1]}/payments",
        headers={**staff, "Idempotency-Key": "desk-part"},
        json={"method": "cash", "amount": 12550},
    )
    assert cash.status_code == 201, cash.json
    numbers = [stripe_client.get(f"/v1/invoices/{i}", headers=staff).json["number"] for i in bills]
    sign_in_as_the_patient(page, base, mailing, inbox)
    page.get_by_role("link", name="Pay several bills at once").click()
    page.get_by_role("heading", name="Pay bills: Test Patient").wait_for()
    for number in numbers:
        assert page.get_by_label(re.compile(f"Invoice {number},")).is_checked()
    found = violations(page)
    screenshot(page, "pay-bills-choose")
    page.get_by_role("button", name="Review the payment").click()
    page.get_by_role("heading", name="Pay $1,374.50").wait_for()  # 500 + 374.50 + 500
    rows = page.locator("ul.shares li")
    assert rows.count() == 3
    assert "$374.50" in rows.nth(1).inner_text()  # what the second bill still owed
    assert numbers[0] in rows.nth(0).inner_text()  # oldest first
    found += violations(page)
    screenshot(page, "pay-bills-review")
    enter_card(page, "4242424242424242")
    page.get_by_label(re.compile("Save this card for future visits")).check()
    page.get_by_role("button", name="Pay $1,374.50").click()
    page.get_by_role("heading", name="Thank you").wait_for()
    assert page.get_by_text("Your payment of $1,374.50 was received").is_visible()
    found += violations(page)
    screenshot(page, "pay-bills-paid")
    for invoice_id in bills:
        assert status_of(stripe_client, staff, invoice_id) == "paid"
    page.goto(f"{base}/account")
    page.get_by_role("heading", name="Your account").wait_for()
    assert page.get_by_role("link", name="Pay several bills at once").count() == 0
    for number in numbers:
        page.get_by_role("link", name=f"Receipt for invoice {number} (PDF)").wait_for()
    page.get_by_role("link", name="Saved cards and AutoPay").click()
    page.get_by_role("button", name="Remove Visa ending 4242").wait_for()  # saved, with consent
    page.get_by_role("button", name="Remove Visa ending 4242").click()  # nothing uses it
    page.get_by_text("The card was removed.").wait_for()
    assert page.get_by_text("No card is saved.").is_visible()
    found += violations(page)
    assert found == [], "\n".join(found)
