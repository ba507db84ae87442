"""Finance staff sign in, see the period's money and a planted discrepancy, and export."""

from __future__ import annotations

import csv
import io
import re
from datetime import UTC, datetime, timedelta
from urllib.parse import urlsplit

import pytest

from billing.adapters import db
from billing.services.access import keys
from tests.e2e.finance_pages import EMAIL, PASSWORD, sign_in

pytestmark = pytest.mark.parametrize("stripe_app", ["sqlite"], indirect=True)


def test_wrong_password_is_refused(stripe_app, books, browser, screenshot) -> None:
    page = browser.new_page()
    try:
        sign_in(page, stripe_app.config["LIVE_URL"], password="not the password")
        assert page.get_by_role("alert").inner_text() == "Email or password is wrong."
        assert page.get_by_label("Email").input_value() == EMAIL  # only the password again
        assert page.get_by_label("Password").input_value() == ""
        page.goto(f"{stripe_app.config['LIVE_URL']}/finance")
        assert page.url.endswith("/finance/login")
    finally:
        page.close()


def test_dashboard_shows_totals_chart_and_the_discrepancy(
    stripe_app, stripe_client, staff, books, browser, screenshot
) -> None:
    base = stripe_app.config["LIVE_URL"]
    context = browser.new_context(viewport={"width": 1100, "height": 1400}, accept_downloads=True)
    page = context.new_page()
    try:
        sign_in(page, base)
        page.get_by_role("heading", name="Totals").wait_for()
        totals = page.locator("table.totals").inner_text()
        assert "$1,000.00" in totals  # two charges of $500.00 in our ledger
        assert "$100.00" in totals  # the refund
        assert page.locator("svg.chart polyline").count() == 4  # gross and net, two types
        row = page.locator("tr.missing_in_stripe")
        assert row.count() == 1
        screenshot(page, "dashboard")

        number = stripe_client.get(f"/v1/invoices/{books[1]}", headers=staff).json["number"]
        row.get_by_role("link", name=number).click()
        page.get_by_role("heading", name=f"Invoice {number}").wait_for()
        assert "charge" in page.locator("table").first.inner_text()
        screenshot(page, "invoice")
        page.go_back()

        with page.expect_download() as download:
            page.get_by_role("link", name="Export reconciliation (CSV)").click()
        with open(download.value.path()) as exported:
            rows = list(csv.DictReader(io.StringIO(exported.read())))
        statuses = sorted(row["status"] for row in rows)
        assert statuses == ["matched", "matched", "missing_in_stripe"]  # 2 charges, 1 refund

        page.get_by_role("button", name="Sign out").click()
        page.wait_for_url("**/finance/login")
    finally:
        context.close()


def test_forms_without_the_csrf_token_are_refused(stripe_app, books) -> None:
    client = stripe_app.test_client()
    response = client.post("/finance/login", data={"email": EMAIL, "password": PASSWORD})
    assert response.status_code == 400
    assert "security token" in response.get_data(as_text=True)
    assert client.get("/finance").status_code == 303  # still signed out


DAY = r"\d{1,2} [A-Z][a-z]{2} \d{4}"  # the clinic's format: 3 Dec 2026


def test_at_390_px_the_pages_read_as_a_clerk_reads_them(
    stripe_app, stripe_client, staff, books, browser, screenshot
) -> None:
    base = stripe_app.config["LIVE_URL"]
    context = browser.new_context(viewport={"width": 390, "height": 844})
    page = context.new_page()
    try:
        sign_in(page, base)
        page.get_by_role("heading", name="Totals").wait_for()
        assert page.evaluate("document.documentElement.scrollWidth") <= 390
        wide = page.locator(".table-scroll:has(table.discrepancies)")
        assert wide.evaluate("box => box.scrollWidth > box.clientWidth")  # it scrolls inside
        assert re.fullmatch(f"Payments {DAY} to {DAY}", page.locator("h1").inner_text())
        text = page.locator("main").inner_text()
        assert "Individual IV" in page.locator("table.by-type").inner_text()
        assert "Individual IV gross" in page.locator("svg.chart").first.inner_html()
        assert not re.search(r"iv_individual|im_group|\d{4}-\d{2}-\d{2}", text)
        screenshot(page, "dashboard-390")

        number = stripe_client.get(f"/v1/invoices/{books[1]}", headers=staff).json["number"]
        page.get_by_role("link", name=number).click()
        page.get_by_role("heading", name=f"Invoice {number}").wait_for()
        assert page.evaluate("document.documentElement.scrollWidth") <= 390
        when = page.locator("table.ledger tbody td").first.inner_text()
        assert re.fullmatch(f"{DAY} \\d{{2}}:\\d{{2}} UTC", when), when  # no seconds
        assert re.fullmatch(f"Individual IV, {DAY}", page.locator("dd").nth(2).inner_text())
        assert page.locator("table.refunds tr.none").inner_text() == "No refunds."
        screenshot(page, "invoice-390")
    finally:
        context.close()


def test_every_report_exports_from_the_dashboard_as_its_api_answers_it(
    stripe_app, stripe_client, staff, books, open_invoice, browser
) -> None:
    open_invoice()  # something unpaid for the ageing
    with stripe_app.app_context():
        _, plain = keys.create_key(db.session(), "reports", ["reports:read"])
    reader = {"Authorization": f"Bearer {plain}"}
    context = browser.new_context(viewport={"width": 1100, "height": 1400}, accept_downloads=True)
    page = context.new_page()

    def download(click) -> list[dict[str, str]]:
        with page.expect_download() as started:
            click()
        with open(started.value.path()) as exported:
            return list(csv.DictReader(io.StringIO(exported.read())))

    try:
        sign_in(page, stripe_app.config["LIVE_URL"])
        link = page.get_by_role("link", name="Export refunds and disputes (CSV)")
        query = urlsplit(link.get_attribute("href") or "").query  # the dashboard's period
        api = stripe_client.get(f"/v1/reports/refunds-disputes?{query}", headers=reader).json
        refunds = download(link.click)
        assert [(r["kind"], r["stripe_id"], r["amount"], r["currency"]) for r in refunds] == [
            ("refund", row["stripe_refund_id"], str(row["amount"]), row["currency"])
            for row in api["refunds"]
        ]
        assert [r["amount"] for r in refunds] == ["10000"]

        aging = download(page.get_by_role("link", name="Export unpaid invoices by age (CSV)").click)
        api = stripe_client.get("/v1/reports/aging", headers=reader).json
        assert [(r["number"], r["total"], r["currency"]) for r in aging] == [
            (row["number"], str(row["total"]), row["currency"]) for row in api["invoices"]
        ]
        assert len(aging) == 1

        month = page.get_by_label("Month").input_value()
        month_end = download(page.get_by_role("button", name="Export month end (CSV)").click)
        api = stripe_client.get(f"/v1/reports/month-end?month={month}", headers=reader).json
        assert {r["currency"]: r["collected"] for r in month_end} == {
            currency: str(figures["collected"]) for currency, figures in api["currencies"].items()
        }
        assert month_end[0]["collected"] == "100000"  # the two charges of $500.00
    finally:
        context.close()


def test_the_audit_trail_shows_who_changed_what_and_filters(
    stripe_app, stripe_client, staff, books, browser, screenshot
) -> None:
    base = stripe_app.config["LIVE_URL"]
    context = browser.new_context(viewport={"width": 1100, "height": 1400})
    page = context.new_page()
    try:
        sign_in(page, base)
        page.get_by_role("link", name="Audit trail").click()
        page.get_by_role("heading", name="Audit trail").wait_for()
        rows = page.locator("table.audit tbody tr")
        first = rows.first.inner_text()
        assert "staff.signed_in" in first and EMAIL in first  # the newest: this sign-in
        table = page.locator("table.audit").inner_text()
        for action in ("payment.succeeded", "refund.succeeded", "invoice.created"):
            assert action in table, action
        assert "staff (api key)" in table  # the front desk's key, by its name
        screenshot(page, "audit")

        page.get_by_label("Action").fill("refund.")
        page.get_by_role("button", name="Show").click()
        page.wait_for_url("**/finance/audit?**")
        actions = [row.split("\t")[2] for row in rows.all_inner_texts()]
        assert actions == ["refund.succeeded", "refund.created"]
        assert "amount: $100.00" in rows.first.inner_text()  # money as a clerk reads it
        rows.first.get_by_role("link", name="invoice").click()
        page.get_by_role("heading", name=re.compile("^Invoice ")).wait_for()

        page.goto(f"{base}/finance/audit?action=nothing.like.this")
        assert page.locator("table.audit tr.none").inner_text() == "No changes match."
    finally:
        context.close()


def test_a_clerk_closes_a_month_with_the_dashboards_button(
    stripe_app, stripe_client, staff, books, browser, screenshot
) -> None:
    base = stripe_app.config["LIVE_URL"]
    context = browser.new_context(viewport={"width": 1100, "height": 1400})
    page = context.new_page()
    last_year = datetime.now(UTC).replace(day=1) - timedelta(days=365)  # over, and no money
    month = f"{last_year:%Y-%m}"
    try:
        sign_in(page, base)
        assert page.locator("p.closed-through").inner_text() == "No month is closed yet."
        page.get_by_label("Close the books of").fill(month)
        page.get_by_role("button", name="Close month").click()
        name = f"{last_year:%B %Y}"
        page.get_by_role("heading", name=f"Close the books of {name}?").wait_for()
        assert "This cannot be undone." in page.locator("main").inner_text()
        screenshot(page, "close-asked")
        page.get_by_role("link", name="Keep it open").click()  # changed their mind
        assert page.locator("p.closed-through").inner_text() == "No month is closed yet."
        page.get_by_label("Close the books of").fill(month)
        page.get_by_role("button", name="Close month").click()
        page.get_by_role("button", name=f"Close {name}").click()
        page.get_by_role("heading", name=f"{name} is closed").wait_for()
        page.get_by_role("link", name="Back to the dashboard").click()
        closed = page.locator("p.closed-through").inner_text()
        assert closed.startswith(f"Closed through {last_year:%B %Y}")
        screenshot(page, "dashboard-closed")
    finally:
        context.close()


@pytest.mark.parametrize("width", [1280, 390])
def test_the_finance_pages_read_well_at_a_desk_and_on_a_phone(
    stripe_app, books, browser, screenshot, width
) -> None:
    base = stripe_app.config["LIVE_URL"]
    context = browser.new_context(viewport={"width": width, "height": 900})
    page = context.new_page()
    try:
        sign_in(page, base)
        page.get_by_role("heading", name="Totals").wait_for()
        assert page.evaluate("document.documentElement.scrollWidth") <= width
        by_type = page.locator("table.by-type")
        assert by_type.locator("thead").inner_text().split("\t")[:2] == ["Session type", "Currency"]
        assert "USD" in by_type.locator("tbody").inner_text()
        # The chart's words are the page's own text, as large as the rest of it.
        legend = page.locator("figure.chart ul.legend li")
        assert legend.all_inner_texts()[:2] == ["Individual IV gross", "Individual IV net"]
        body_size = page.evaluate("parseFloat(getComputedStyle(document.body).fontSize)")
        for words in (legend.first, page.locator("figure.chart .chart-scale").first):
            assert words.evaluate("e => parseFloat(getComputedStyle(e).fontSize)") >= body_size
            box = words.bounding_box()
            assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= width
        assert re.fullmatch(
            f"Highest day \\$[\\d,.]+ · {DAY} to {DAY}",
            page.locator("figure.chart .chart-scale").first.inner_text(),
        )
        screenshot(page, "dashboard")

        # Closing a month asks first, and the question reads whole at this width.
        page.get_by_label("Close the books of").fill(f"{datetime.now(UTC).year - 1}-02")
        page.get_by_role("button", name="Close month").click()
        keep = page.get_by_role("link", name="Keep it open")
        keep.wait_for()
        assert page.get_by_text("This cannot be undone.").is_visible()
        assert page.evaluate("document.documentElement.scrollWidth") <= width
        screenshot(page, "close-asked")
        keep.click()
        page.get_by_role("heading", name="Totals").wait_for()

        page.goto(f"{base}/finance/audit")
        rows = page.locator("table.audit tbody tr")
        assert rows.count() >= 2
        region = page.get_by_role("region", name="Changes")
        if width >= 1280:  # every column shows whole, with no scrolling sideways
            assert region.evaluate("box => box.scrollWidth <= box.clientWidth")
            for column in ("Details", "Request"):
                header = page.get_by_role("columnheader", name=column).bounding_box()
                assert header is not None and header["x"] + header["width"] <= width
            request_id = rows.first.locator("td.request")
            assert re.fullmatch("[0-9a-f]{32}", request_id.inner_text())
            assert request_id.evaluate("td => td.scrollWidth <= td.clientWidth")
        else:  # the table scrolls inside its region, which the keyboard reaches
            region.focus()
            assert region.evaluate("box => document.activeElement === box")
        screenshot(page, "audit")
    finally:
        context.close()
