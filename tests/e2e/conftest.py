"""A real browser: Debian's Chromium driven by Playwright (never a downloaded browser)."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from billing.adapters import db
from billing.adapters.models import Payment, StripeBalanceTransaction
from billing.services.access.staff import create_staff_user
from tests.e2e.finance_pages import EMAIL, PASSWORD

SCREENSHOTS = Path(__file__).resolve().parents[2] / "test-output" / "screenshots"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def find_chromium() -> str | None:
    """CHROMIUM_PATH, Debian's chromium, or a browser Playwright installed."""
    candidates = [os.environ.get("CHROMIUM_PATH"), "/usr/bin/chromium", shutil.which("chromium")]
    for candidate in candidates:
        if candidate and Path(candidate).exists():
            return candidate
    try:
        from playwright.sync_api import sync_playwright

        with sync_playwright() as playwright:
            bundled = playwright.chromium.executable_path
        return bundled if Path(bundled).exists() else None
    except Exception:
        return None


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    path = find_chromium()
    if path is None:
        reason = "no Chromium found (apt-get install chromium, or set CHROMIUM_PATH)"
        if os.environ.get("CI"):
            pytest.fail(f"browser tests need Chromium under CI: {reason}")
        pytest.skip(f"browser tests skipped: {reason}")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=path, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def phone(browser: Any) -> Iterator[Any]:
    """A page the size of a small phone (375 px wide)."""
    context = browser.new_context(viewport={"width": 375, "height": 812}, accept_downloads=True)
    page = context.new_page()
    page.set_default_timeout(15_000)
    yield page
    context.close()


@pytest.fixture
def screenshot(request: pytest.FixtureRequest) -> Any:
    """Save a full-page screenshot under test-output/screenshots/<test>-<state>.png."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    name = request.node.name.replace("[", "-").replace("]", "")

    def take(page: Any, state: str) -> Path:
        path = SCREENSHOTS / f"{name}-{state}.png"
        page.screenshot(path=str(path), full_page=True)
        return path

    return take


@pytest.fixture
def books(stripe_app, stripe_client, staff, open_invoice, standin):
    """Two paid invoices, one partly refunded, synced from Stripe; one charge then lost
    from the Stripe copy, so the dashboard has a discrepancy to show."""
    standin.reset()  # only this test's payments at Stripe
    paid = []
    for _ in range(2):
        invoice_id = open_invoice()
        response = stripe_client.post(
            f"/v1/invoices/{invoice_id}/payments",
            headers={**staff, "Idempotency-Key": f"pay-{invoice_id}"},
            json={"method": "card_on_file"},
        )
        assert response.status_code == 201, response.json
        paid.append(invoice_id)
    stripe_client.post(
        f"/v1/invoices/{paid[0]}/refunds",
        headers={**staff, "Idempotency-Key": "refund-1"},
        json={"amount": 10000, "reason": "shorter session"},
    )
    result = stripe_app.test_cli_runner().invoke(args=["stripe", "sync"])
    assert result.exit_code == 0, result.output
    with stripe_app.app_context():
        session = db.session()
        create_staff_user(session, EMAIL, PASSWORD)
        lost = session.scalars(select(Payment).where(Payment.invoice_id == paid[1])).one()
        txn = session.scalars(
            select(StripeBalanceTransaction).where(
                StripeBalanceTransaction.source == lost.stripe_charge_id
            )
        ).one()
        session.delete(txn)
        session.commit()
    return paid
