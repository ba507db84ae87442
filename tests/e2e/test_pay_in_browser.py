"""A patient pays an invoice in a real browser against the Stripe stand-in."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from billing.adapters import db
from billing.adapters.models import LedgerEntry
from tests.fixtures_stripe import eventually, intents_at_stripe

# Browser tests run on one database: the flows, not the SQL, are under test here.
pytestmark = pytest.mark.parametrize("stripe_app", ["sqlite"], indirect=True)


def pay_url(stripe_client, staff, invoice_id: str) -> str:
    response = stripe_client.post(
        f"/v1/invoices/{invoice_id}/payments",
        headers={**staff, "Idempotency-Key": f"link-{invoice_id}"},
        json={"method": "online"},
    )
    assert response.status_code == 201, response.json
    path = "/" + response.json["pay_url"].split("/", 3)[3]
    return stripe_client.application.config["LIVE_URL"] + path


def enter_card(page, number: str) -> None:
    for placeholder, value in (
        ("number", number),
        ("exp_month", "12"),
        ("exp_year", "34"),
        ("cvc", "123"),
        ("postal_code", "94110"),
    ):
        page.fill(f"#payment-element input[placeholder={placeholder}]", value)


def online_intent(stripe_client, invoice_id: str) -> str:
    """The PaymentIntent of the invoice's pay page."""
    from billing.adapters.models import Payment

    with stripe_client.application.app_context():
        found = db.session().scalar(
            select(Payment.stripe_payment_intent_id).where(
                Payment.invoice_id == invoice_id, Payment.method == "online"
            )
        )
    assert found
    return str(found)


def status_of(stripe_client, staff, invoice_id: str) -> str:
    return stripe_client.get(f"/v1/invoices/{invoice_id}", headers=staff).json["status"]


def charges(app, invoice_id: str) -> int:
    with app.app_context():
        statement = select(func.count()).where(
            LedgerEntry.invoice_id == invoice_id, LedgerEntry.kind == "charge"
        )
        return int(db.session().scalar(statement) or 0)


def test_patient_pays_by_card_and_sees_the_receipt(
    stripe_client, staff, open_invoice, phone, screenshot
) -> None:
    invoice_id = open_invoice(card=None)
    phone.goto(pay_url(stripe_client, staff, invoice_id))
    assert phone.get_by_role("heading", name="Pay invoice").is_visible()
    assert phone.get_by_text("$500.00").first.is_visible()
    assert phone.evaluate("document.documentElement.scrollWidth") <= 375  # no sideways scroll
    screenshot(phone, "1-form")

    enter_card(phone, "4242424242424242")
    phone.get_by_role("button", name="Pay $500.00").click()
    phone.wait_for_url("**submitted=1*")
    screenshot(phone, "2-submitted")

    eventually(lambda: status_of(stripe_client, staff, invoice_id) == "paid")
    phone.get_by_text("Paid — thank you").wait_for()  # the page refreshes itself
    assert phone.get_by_text("Visa ending 4242").is_visible()
    screenshot(phone, "3-receipt")
    with phone.expect_download() as download:
        phone.get_by_role("link", name="Download receipt (PDF)").click()
    assert download.value.suggested_filename.startswith("receipt-")


def test_the_patient_pays_part_now_and_the_rest_later_never_below_the_minimum(
    stripe_client, staff, open_invoice, phone, screenshot, standin
) -> None:
    invoice_id = open_invoice(card=None)
    link = pay_url(stripe_client, staff, invoice_id)
    phone.goto(link)
    amount = phone.get_by_label("Amount to pay now")
    assert amount.input_value() == "500.00"
    assert phone.get_by_text("at least $50.00").is_visible()

    amount.fill("20")  # below the clinic's minimum: said, and all of it asked again
    phone.get_by_role("button", name="Change amount").click()
    phone.get_by_text("Enter an amount of at least $50.00").wait_for()
    assert phone.get_by_role("button", name="Pay $500.00").is_visible()
    screenshot(phone, "1-too-little")

    phone.get_by_label("Amount to pay now").fill("150")
    phone.get_by_role("button", name="Change amount").click()
    pay_part = phone.get_by_role("button", name="Pay $150.00")
    pay_part.wait_for()
    screenshot(phone, "2-part")
    enter_card(phone, "4242424242424242")
    pay_part.click()
    phone.wait_for_url("**submitted=1*")
    eventually(lambda: status_of(stripe_client, staff, invoice_id) == "partially_paid")
    phone.get_by_text("Thank you: your payment was received").wait_for()  # then the rest
    assert "$150.00" in phone.get_by_role("row", name="Paid so far").inner_text()
    assert "$350.00" in phone.get_by_role("row", name="Balance due").inner_text()
    screenshot(phone, "3-rest")

    enter_card(phone, "4242424242424242")
    phone.get_by_role("button", name="Pay $350.00").click()
    phone.wait_for_url("**submitted=1*")
    eventually(lambda: status_of(stripe_client, staff, invoice_id) == "paid")
    phone.get_by_text("Paid — thank you").wait_for()
    invoice = stripe_client.get(f"/v1/invoices/{invoice_id}", headers=staff).json
    assert (invoice["amount_paid"], invoice["balance_due"]) == (50000, 0)
    assert charges(stripe_client.application, invoice_id) == 2
    assert intents_at_stripe(standin, invoice_id) == 3  # the first, for all, was cancelled


def test_after_cash_at_the_desk_the_page_shows_and_takes_only_the_balance(
    stripe_client, staff, open_invoice, phone, screenshot, standin
) -> None:
    from tests.stripe.test_untested_paths import key

    invoice_id = open_invoice(card=None)
    link = pay_url(stripe_client, staff, invoice_id)
    desk = key(stripe_client.application, "payments:record")
    cash = stripe_client.post(
        f"/v1/invoices/{invoice_id}/payments",
        json={"method": "cash", "amount": 20000},
        headers={**desk, "Idempotency-Key": f"cash-{invoice_id}"},
    )
    assert cash.status_code == 201, cash.json

    phone.goto(link)
    paid = phone.get_by_role("row", name="Paid so far")
    due = phone.get_by_role("row", name="Balance due")
    assert "$200.00" in paid.inner_text() and "$300.00" in due.inner_text()
    screenshot(phone, "1-balance")
    enter_card(phone, "4242424242424242")
    phone.get_by_role("button", name="Pay $300.00").click()
    phone.wait_for_url("**submitted=1*")
    eventually(lambda: status_of(stripe_client, staff, invoice_id) == "paid")
    phone.get_by_text("Paid — thank you").wait_for()
    screenshot(phone, "2-paid")
    invoice = stripe_client.get(f"/v1/invoices/{invoice_id}", headers=staff).json
    assert (invoice["amount_paid"], invoice["balance_due"]) == (50000, 0)
    assert charges(stripe_client.application, invoice_id) == 1  # the card's $300 only


def test_a_gift_card_pays_first_and_a_card_the_rest(
    stripe_client, staff, open_invoice, phone, screenshot, standin
) -> None:
    sold = stripe_client.post(
        "/v1/gift-cards",
        json={"amount": 15000, "currency": "usd", "purchaser_patient_id": "P-GIFT", "name": "Ann"},
        headers={**staff, "Idempotency-Key": "gift-browser"},
    )
    assert sold.status_code == 201, sold.json
    bought = stripe_client.post(
        f"/v1/invoices/{sold.json['invoice_id']}/payments",
        json={"method": "cash"},
        headers={**staff, "Idempotency-Key": "gift-browser-cash"},
    )
    assert bought.status_code == 201, bought.json
    invoice_id = open_invoice(card=None)
    phone.goto(pay_url(stripe_client, staff, invoice_id))

    code = phone.get_by_label("Gift card code")
    code.fill("GC-2222-3333-4444")  # no such card: said, nothing changes
    phone.get_by_role("button", name="Use gift card").click()
    phone.get_by_text("No gift card has that code.").wait_for()
    assert phone.get_by_role("button", name="Pay $500.00").is_visible()
    screenshot(phone, "1-unknown-code")

    phone.get_by_label("Gift card code").fill(sold.json["code"].lower())
    phone.get_by_role("button", name="Use gift card").click()
    phone.get_by_text("Your gift card was applied.").wait_for()
    assert "$150.00" in phone.get_by_role("row", name="Paid so far").inner_text()
    assert "$350.00" in phone.get_by_role("row", name="Balance due").inner_text()
    pay_rest = phone.get_by_role("button", name="Pay $350.00")
    assert pay_rest.is_visible()
    screenshot(phone, "2-applied")

    enter_card(phone, "4242424242424242")
    pay_rest.click()
    phone.wait_for_url("**submitted=1*")
    eventually(lambda: status_of(stripe_client, staff, invoice_id) == "paid")
    phone.get_by_text("Paid — thank you").wait_for()
    phone.get_by_text("Gift card").first.wait_for()  # the receipt lists both payments
    screenshot(phone, "3-receipt")
    assert charges(stripe_client.application, invoice_id) == 1  # the card paid $350 only
    card = stripe_client.get(f"/v1/gift-cards/{sold.json['code']}", headers=staff).json
    assert (card["balance"], card["status"]) == (0, "used")


def test_declined_card_shows_why_and_another_card_pays_once(
    stripe_client, staff, open_invoice, phone, screenshot, standin
) -> None:
    invoice_id = open_invoice(card=None)
    phone.goto(pay_url(stripe_client, staff, invoice_id))
    enter_card(phone, "4000000000000341")
    phone.get_by_role("button", name="Pay $500.00").click()
    phone.get_by_role("alert").filter(has_text="declined").wait_for()
    screenshot(phone, "1-declined")
    assert status_of(stripe_client, staff, invoice_id) == "open"

    enter_card(phone, "4242424242424242")
    phone.get_by_role("button", name="Pay $500.00").click()
    phone.wait_for_url("**submitted=1*")
    eventually(lambda: status_of(stripe_client, staff, invoice_id) == "paid")
    phone.get_by_text("Paid — thank you").wait_for()
    screenshot(phone, "2-paid")
    assert charges(stripe_client.application, invoice_id) == 1
    assert intents_at_stripe(standin, invoice_id) == 1


def test_three_d_secure_card_pays_after_authentication(
    stripe_client, staff, open_invoice, phone, screenshot
) -> None:
    invoice_id = open_invoice(card=None)
    phone.goto(pay_url(stripe_client, staff, invoice_id))
    enter_card(phone, "4000002500003155")
    phone.get_by_role("button", name="Pay $500.00").click()
    authenticate = phone.get_by_role("button", name="Complete authentication")
    authenticate.wait_for()
    screenshot(phone, "1-authentication")
    assert status_of(stripe_client, staff, invoice_id) == "open"
    authenticate.click()
    phone.wait_for_url("**submitted=1*")
    eventually(lambda: status_of(stripe_client, staff, invoice_id) == "paid")


def test_failed_authentication_says_not_charged_and_another_card_pays(
    stripe_client, staff, open_invoice, phone, screenshot, standin
) -> None:
    invoice_id = open_invoice(card=None)
    phone.goto(pay_url(stripe_client, staff, invoice_id))
    enter_card(phone, "4000002500003155")
    phone.get_by_role("button", name="Pay $500.00").click()
    phone.get_by_role("button", name="Fail authentication").click()

    phone.get_by_role("alert").filter(has_text="not charged").wait_for()
    screenshot(phone, "1-not-charged")
    assert "submitted" not in phone.url
    assert phone.get_by_text("waiting for the card network").count() == 0
    assert phone.get_by_role("button", name="Pay $500.00").is_enabled()
    invoice = stripe_client.get(f"/v1/invoices/{invoice_id}", headers=staff).json
    assert (invoice["status"], invoice["amount_paid"]) == ("open", 0)

    enter_card(phone, "4242424242424242")
    phone.get_by_role("button", name="Pay $500.00").click()
    phone.wait_for_url("**submitted=1*")
    eventually(lambda: status_of(stripe_client, staff, invoice_id) == "paid")
    phone.get_by_text("Paid — thank you").wait_for()
    screenshot(phone, "2-paid")
    assert charges(stripe_client.application, invoice_id) == 1


def test_page_left_open_after_the_desk_charged_takes_no_card(
    stripe_client, staff, open_invoice, phone, screenshot, standin
) -> None:
    invoice_id = open_invoice()
    phone.goto(pay_url(stripe_client, staff, invoice_id))
    charged = stripe_client.post(
        f"/v1/invoices/{invoice_id}/payments",
        headers={**staff, "Idempotency-Key": "desk"},
        json={"method": "card_on_file"},
    )
    assert charged.status_code == 201, charged.json

    enter_card(phone, "4242424242424242")
    phone.get_by_role("button", name="Pay $500.00").click()
    phone.get_by_role("alert").filter(has_text="already paid").wait_for()
    screenshot(phone, "already-paid")
    assert phone.get_by_role("button", name="Pay $500.00").is_disabled()
    assert charges(stripe_client.application, invoice_id) == 1
    assert intents_at_stripe(standin, invoice_id) == 2  # the page's, cancelled, and the desk's


def test_paid_invoice_link_shows_the_receipt(
    stripe_client, staff, open_invoice, phone, screenshot
) -> None:
    invoice_id = open_invoice()
    url = pay_url(stripe_client, staff, invoice_id)
    stripe_client.post(
        f"/v1/invoices/{invoice_id}/payments",
        headers={**staff, "Idempotency-Key": "on-file"},
        json={"method": "card_on_file"},
    )
    phone.goto(url)
    assert phone.get_by_text("Paid — thank you").is_visible()
    assert phone.locator("#payment-form").count() == 0
    screenshot(phone, "receipt")


def test_without_javascript_the_page_explains_and_cannot_pay(
    stripe_client, staff, open_invoice, browser, screenshot
) -> None:
    invoice_id = open_invoice(card=None)
    context = browser.new_context(java_script_enabled=False, viewport={"width": 375, "height": 812})
    page = context.new_page()
    try:
        page.goto(pay_url(stripe_client, staff, invoice_id))
        notice = page.locator("p.notice")  # Playwright's text search skips <noscript>
        assert notice.is_visible()
        assert "Paying by card needs JavaScript" in notice.inner_text()
        assert page.get_by_text("$500.00").first.is_visible()
        assert page.get_by_role("button", name="Pay $500.00").is_disabled()
        screenshot(page, "no-javascript")
    finally:
        context.close()


ERROR_RED = "rgb(155, 28, 28)"


def colour_of(page, selector: str) -> str:
    return str(page.locator(selector).evaluate("element => getComputedStyle(element).color"))


def test_payment_in_progress_is_not_red_and_a_bad_link_shows_the_clinics_phone(
    stripe_client, staff, open_invoice, phone, screenshot, proxy
) -> None:
    stripe_client.application.config["CLINIC_PHONE"] = "+1 (415) 555-0134"
    invoice_id = open_invoice(card=None)
    url = pay_url(stripe_client, staff, invoice_id)
    phone.goto(url)  # the page's PaymentIntent
    proxy.fault = "down"  # Stripe cannot say what became of it: the page waits
    phone.goto(f"{url}?submitted=1&payment_intent={online_intent(stripe_client, invoice_id)}")
    phone.get_by_role("heading", name="Payment in progress").wait_for()
    proxy.fault = None
    waiting = colour_of(phone, "p.message")
    screenshot(phone, "1-in-progress")

    phone.goto(url[:-3] + ("AAA" if not url.endswith("AAA") else "BBB"))
    phone.get_by_role("heading", name="Link not valid").wait_for()
    assert colour_of(phone, "p.message") == ERROR_RED
    assert waiting != ERROR_RED
    call = phone.get_by_role("link", name="+1 (415) 555-0134")
    assert call.is_visible()
    assert call.get_attribute("href") == "tel:+14155550134"
    assert phone.evaluate("document.documentElement.scrollWidth") <= 375
    screenshot(phone, "2-bad-link")


def test_the_patient_confirms_a_saved_card_charge_their_bank_held_from_the_emailed_link(
    stripe_app, stripe_client, staff, open_invoice, phone, screenshot, inbox
) -> None:
    """The front desk charged the saved card; the bank wants 3-D Secure; the patient gets
    an email at once, opens its link, confirms with the bank, and the invoice is paid."""
    import re

    from billing.services.integrations import emails
    from billing.services.integrations.settings import sending
    from tests.integrations.smtp import parts

    live = stripe_app.config["LIVE_URL"]
    stripe_app.config.update(SMTP_URL=inbox.url, PUBLIC_BASE_URL=live)
    invoice_id = open_invoice("4000002760003184", patient_id="P-3DS")
    with stripe_app.app_context():  # the booking gave no address: give the invoice one
        from billing.adapters.models import Invoice

        db.session().get(Invoice, invoice_id).patient_email = "p3ds@example.org"
        db.session().commit()
    charged = stripe_client.post(
        f"/v1/invoices/{invoice_id}/payments",
        headers={**staff, "Idempotency-Key": "desk-3ds"},
        json={"method": "card_on_file"},
    )
    assert charged.json["status"] == "requires_action"
    with stripe_app.app_context():
        session = db.session()
        assert [emails.send(session, sending(stripe_app), m) for m in emails.due(session)] == [
            "sent"
        ]
    [message] = inbox.to("p3ds@example.org")
    link = re.search(rf"{re.escape(live)}/pay/\S+", parts(message)[0])
    assert link is not None

    phone.goto(link.group(0))
    assert phone.get_by_text("Your bank asks you to confirm").is_visible()
    assert phone.locator("#payment-element input").count() == 0  # nothing to type in
    screenshot(phone, "1-confirm")
    phone.get_by_role("button", name="Confirm payment of $500.00").click()
    phone.get_by_role("button", name="Complete authentication").click()
    phone.wait_for_url("**submitted=1*")
    eventually(lambda: status_of(stripe_client, staff, invoice_id) == "paid")
    phone.get_by_text("Paid — thank you").wait_for()
    screenshot(phone, "2-receipt")
    assert charges(stripe_app, invoice_id) == 1


def test_a_patient_pays_from_a_bank_account_and_the_page_says_it_takes_days(
    stripe_client, staff, open_invoice, phone, screenshot, monkeypatch
) -> None:
    from billing.adapters.standin import banks

    monkeypatch.setattr(banks, "BANK_SETTLES_AFTER", 3.0)  # time to look while processing
    invoice_id = open_invoice(card=None)
    phone.goto(pay_url(stripe_client, staff, invoice_id))
    assert phone.get_by_text("Card or bank account").is_visible()
    phone.get_by_label("US bank account").check()
    phone.get_by_label("Account holder name", exact=True).fill("Ana Ruiz")
    phone.get_by_label("Routing number", exact=True).fill("110000000")
    phone.get_by_label("Account number", exact=True).fill("000123456789")
    screenshot(phone, "1-bank-account")
    phone.get_by_role("button", name="Pay $500.00").click()

    phone.get_by_role("heading", name="Bank payment in progress").wait_for()
    assert phone.get_by_text("up to four business days").is_visible()
    shown = stripe_client.get(f"/v1/invoices/{invoice_id}", headers=staff).json
    assert (shown["status"], shown["amount_processing"], shown["amount_paid"]) == (
        "processing",
        50000,
        0,
    )
    screenshot(phone, "2-processing")
    phone.reload()  # the patient comes back the next day: still nothing to pay twice
    assert phone.get_by_role("heading", name="Bank payment in progress").is_visible()
    assert phone.get_by_role("button", name="Pay $500.00").count() == 0

    eventually(lambda: status_of(stripe_client, staff, invoice_id) == "paid")
    phone.reload()
    phone.get_by_text("Paid — thank you").wait_for()
    assert phone.get_by_text("Bank account ending 6789").first.is_visible()
    screenshot(phone, "3-receipt")
