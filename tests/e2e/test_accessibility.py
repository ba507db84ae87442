"""axe-core (WCAG 2.2 A and AA) in Debian's Chromium finds nothing on any of the service's
pages, at a desk's 1280 px and a phone's 390 px: the pay page and what it turns into, the
finance pages, the API's /docs. axe-core comes from the npm registry, installed by the test."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

import pytest

from tests.e2e.finance_pages import sign_in
from tests.e2e.test_pay_in_browser import enter_card, pay_url, status_of
from tests.fixtures_stripe import eventually
from tests.npm import npm_package

pytestmark = pytest.mark.parametrize("stripe_app", ["sqlite"], indirect=True)

AXE = "axe-core@4.11.0"
WCAG_22_AA = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "wcag22aa"]
WIDTHS = {"desk": (1280, 900), "phone": (390, 844)}


@pytest.fixture(scope="module")
def axe_source() -> str:
    return npm_package(AXE, "axe-core/axe.min.js").read_text()


@pytest.fixture(params=WIDTHS)
def page(request: pytest.FixtureRequest, browser: Any) -> Iterator[Any]:
    width, height = WIDTHS[request.param]
    context = browser.new_context(viewport={"width": width, "height": height}, bypass_csp=True)
    page = context.new_page()
    page.set_default_timeout(15_000)
    yield page
    context.close()


@pytest.fixture
def violations(axe_source: str) -> Callable[[Any], list[str]]:
    """What axe-core finds on the page as it stands, one line per rule and element."""

    def run(page: Any) -> list[str]:
        page.add_script_tag(content=axe_source)
        found = page.evaluate(
            "tags => axe.run(document, {runOnly: {type: 'tag', values: tags},"
            " resultTypes: ['violations']}).then(r => r.violations)",
            WCAG_22_AA,
        )
        return [
            f"{page.url.split('?')[0]}: {v['id']} ({v['impact']}) {node['target']}: "
            f"{node['failureSummary'].splitlines()[-1].strip()}"
            for v in found
            for node in v["nodes"]
        ]

    return run


def test_the_pay_page_and_what_it_turns_into(
    stripe_client, staff, open_invoice, page, violations
) -> None:
    invoice_id = open_invoice(card=None)
    url = pay_url(stripe_client, staff, invoice_id)
    page.goto(url)
    page.get_by_role("heading", name="Pay invoice").wait_for()
    found = violations(page)
    page.get_by_label("Amount to pay now").fill("20")  # below the minimum: said by the field
    page.get_by_role("button", name="Change amount").click()
    page.get_by_text("Enter an amount of at least").wait_for()
    found += violations(page)
    enter_card(page, "4000000000000341")  # declined: the page says so
    page.get_by_role("button", name="Pay $500.00").click()
    page.get_by_role("alert").filter(has_text="declined").wait_for()
    found += violations(page)
    enter_card(page, "4242424242424242")
    page.get_by_role("button", name="Pay $500.00").click()
    page.wait_for_url("**submitted=1*")
    eventually(lambda: status_of(stripe_client, staff, invoice_id) == "paid")
    page.get_by_text("Paid — thank you").wait_for()
    found += violations(page)
    page.goto(url.split("?")[0] + "/receipt")
    found += violations(page)
    page.goto(url.rsplit("/", 1)[0] + "/not-a-link")  # the page a wrong link shows
    found += violations(page)
    assert found == [], "\n".join(found)


def test_the_finance_pages(stripe_app, stripe_client, staff, books, page, violations) -> None:
    base = stripe_app.config["LIVE_URL"]
    page.goto(f"{base}/finance/login")
    found = violations(page)
    sign_in(page, base)
    page.get_by_role("heading", name="Totals").wait_for()
    found += violations(page)
    page.get_by_label("Close the books of").fill(f"{datetime.now(UTC).year - 1}-01")
    page.get_by_role("button", name="Close month").click()  # it asks first
    page.get_by_role("link", name="Keep it open").wait_for()
    found += violations(page)
    page.goto(f"{base}/finance/invoices/{books[0]}")
    found += violations(page)
    page.goto(f"{base}/finance/audit")
    found += violations(page)
    page.goto(f"{base}/finance/invoices/in_no_such_invoice")  # the pages that say something
    found += violations(page)
    assert found == [], "\n".join(found)


def test_the_api_docs(stripe_app, page, violations) -> None:
    page.goto(f"{stripe_app.config['LIVE_URL']}/docs")
    page.locator(".opblock").first.wait_for()
    found = violations(page)
    page.locator("#operations-quotes-createQuote button.opblock-summary-control").click()
    page.get_by_role("button", name="Try it out").wait_for()  # an operation opened
    found += violations(page)
    assert found == [], "\n".join(found)


def test_the_pay_page_of_a_bill_on_a_payment_plan(
    stripe_client, staff, open_invoice, page, violations
) -> None:
    from tests.stripe.plans import make_plan

    invoice_id = open_invoice("pm_card_visa")
    today = datetime.now(UTC).date().isoformat()
    make_plan(stripe_client, staff, invoice_id, instalments=3, interval="month", first_at=today)
    page.goto(pay_url(stripe_client, staff, invoice_id))
    page.get_by_role("heading", name="Payment plan").wait_for()
    assert page.get_by_role("table", name="Instalments of the payment plan").is_visible()
    found = violations(page)
    assert found == [], "\n".join(found)
