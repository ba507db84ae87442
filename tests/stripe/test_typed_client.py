"""A booking system's typed client: openapi-python-client generates it from the app's
/openapi.json without a warning, and the README's walk-through runs through it against the
app served over HTTP with the Stripe stand-in, every answer parsed into its model."""

from __future__ import annotations

import importlib
import os
import subprocess
import sys
import typing
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from flask import Flask

from billing import create_app
from billing.adapters import db
from billing.services.access import keys

PACKAGE = "clinic_billing_api_client"  # what the generator makes of the document's title
PACIFIC = timezone(timedelta(hours=-8))


@dataclass
class Generated:
    output: str  # what the generator printed
    models: ModuleType

    def api(self, operation: str) -> Any:
        """The generated module of one operation, e.g. "quotes.create_quote"."""
        return importlib.import_module(f"{PACKAGE}.api.{operation}")

    def client(self, app: Flask, *scopes: str) -> Any:
        """A client authenticated with a new key holding `scopes`."""
        with app.app_context():
            _, plain = keys.create_key(db.session(), f"client-{uuid.uuid4().hex[:8]}", list(scopes))
        client_module = importlib.import_module(f"{PACKAGE}.client")
        return client_module.AuthenticatedClient(
            base_url=app.config["LIVE_URL"], token=plain, raise_on_unexpected_status=True
        )


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory, sqlite_url: str) -> Iterator[Generated]:
    """The client generated from the app's document in a temporary folder, imported."""
    folder = tmp_path_factory.mktemp("typed-client")
    app = create_app({"TESTING": True, "DATABASE_URL": sqlite_url})
    document = app.test_client().get("/openapi.json").get_data(as_text=True)
    app.extensions["billing.db"].engine.dispose()
    (folder / "openapi.json").write_text(document)
    tools = Path(sys.executable).parent  # the generator, and the ruff it formats with
    run = subprocess.run(
        [str(tools / "openapi-python-client"), "generate", "--path", "openapi.json"]
        + ["--meta", "none", "--fail-on-warning"],
        cwd=folder,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "PATH": f"{tools}{os.pathsep}{os.environ.get('PATH', '')}"},
    )
    output = run.stdout + run.stderr
    assert run.returncode == 0, output
    sys.path.insert(0, str(folder))
    try:
        yield Generated(output, importlib.import_module(f"{PACKAGE}.models"))
    finally:
        sys.path.remove(str(folder))
        for name in [m for m in sys.modules if m.split(".")[0] == PACKAGE]:
            del sys.modules[name]


def test_the_client_is_generated_without_a_warning(generated: Generated) -> None:
    said = generated.output.splitlines()
    assert said and [line for line in said if not line.startswith("Generating")] == [], said
    m = generated.models
    returns = {
        operation: set(typing.get_args(generated.api(operation).sync.__annotations__["return"]))
        for operation in ("catalog.get_catalog", "quotes.create_quote", "invoices.get_receipt")
    }
    assert returns["catalog.get_catalog"] == {m.Catalog, m.Problem, type(None)}
    assert returns["quotes.create_quote"] == {m.Quote, m.Problem, type(None)}
    assert importlib.import_module(f"{PACKAGE}.types").File in returns["invoices.get_receipt"]


def booking(m: ModuleType, booking_id: str, session_type: Any, *patients: Any) -> Any:
    return m.QuoteRequest(
        booking_id=booking_id,
        session_type=session_type,
        scheduled_at=(datetime.now(UTC) + timedelta(days=9)).astimezone(PACIFIC),
        currency=m.Currency.USD,
        patients=list(patients),
    )


def test_a_booking_system_quotes_through_the_typed_client(
    stripe_app: Flask, generated: Generated
) -> None:
    m = generated.models
    client = generated.client(stripe_app, "quotes:write", "invoices:read")

    catalog = generated.api("catalog.get_catalog").sync(client=client)
    assert isinstance(catalog, m.Catalog)
    assert [t.session_type for t in catalog.session_types] == [
        m.SessionType.IV_INDIVIDUAL,
        m.SessionType.IM_GROUP,
    ]
    assert (catalog.prices[0].iv_individual_amount, catalog.prices[0].im_group_amount) == (
        50000,
        25000,
    )

    create_quote = generated.api("quotes.create_quote")
    cleo = m.BookingPatient(patient_id="P-1003", name="Cleo Park", email="cleo@example.org")
    iv = booking(m, "BK-2026-0411", m.SessionType.IV_INDIVIDUAL, cleo)
    first = create_quote.sync_detailed(client=client, body=iv, idempotency_key="BK-0411-quote")
    assert first.status_code == 201 and isinstance(first.parsed, m.Quote)
    assert first.parsed.total == 50000 and first.parsed.currency == m.Currency.USD
    assert first.parsed.expires_at > datetime.now(UTC)
    again = create_quote.sync(client=client, body=iv, idempotency_key="BK-0411-quote")
    assert again.id == first.parsed.id

    group = create_quote.sync(
        client=client,
        body=booking(
            m,
            "BK-2026-0412",
            m.SessionType.IM_GROUP,
            m.BookingPatient(patient_id="P-1001", name="Ana Ruiz", prior_iv_sessions=2),
            m.BookingPatient(
                patient_id="P-1002",
                name="Ben Okafor",
                iv_exemption=m.IvExemption(reason="difficult_venous_access", approved_by="Dr. Lee"),
            ),
        ),
    )
    assert isinstance(group, m.Quote)
    assert [line.amount for line in group.lines] == [25000, 25000] and group.total == 50000
    assert group.lines[0].iv_exemption is None
    assert group.lines[1].iv_exemption.approved_by == "Dr. Lee"

    refused = create_quote.sync_detailed(
        client=client,
        body=booking(
            m,
            "BK-2026-0413",
            m.SessionType.IM_GROUP,
            m.BookingPatient(patient_id="P-1001", name="Ana Ruiz", prior_iv_sessions=2),
            m.BookingPatient(patient_id="P-1004", name="Dev Shah"),
        ),
    )
    assert refused.status_code == 422 and isinstance(refused.parsed, m.Problem)
    assert refused.parsed.code == m.ErrorCode.FIRST_SESSION_MUST_BE_IV
    assert refused.parsed.code == "first_session_must_be_iv"
    # The whole problem (RFC 9457), as a typed client reads it.
    assert refused.parsed.type_ == "/problems/first_session_must_be_iv"
    assert (refused.parsed.title, refused.parsed.status) == ("Unprocessable request", 422)
    assert "no completed IV session" in refused.parsed.detail
    assert list(refused.parsed.errors.additional_properties) == ["patients.1"]
    assert "P-1004" in refused.parsed.errors["patients.1"][0]

    read = generated.api("quotes.get_quote").sync(client=client, quote_id=group.id)
    assert isinstance(read, m.Quote) and read.to_dict() == group.to_dict()


def test_the_front_desk_invoices_charges_and_refunds_through_the_typed_client(
    stripe_app: Flask, generated: Generated
) -> None:
    m = generated.models
    desk = generated.client(
        stripe_app,
        *("quotes:write", "invoices:read", "invoices:write", "payments:write", "refunds:write"),
    )
    patient = m.BookingPatient(patient_id="P-1003", name="Cleo Park")
    quote = generated.api("quotes.create_quote").sync(
        client=desk, body=booking(m, "BK-2026-0420", m.SessionType.IV_INDIVIDUAL, patient)
    )
    invoices = generated.api("invoices.create_invoices").sync(
        client=desk, body=m.InvoiceRequest(quote_id=quote.id)
    )
    assert isinstance(invoices, m.InvoiceList)
    invoice = invoices.data[0]
    assert (invoice.status, invoice.total) == (m.InvoiceStatus.OPEN, 50000)

    card = generated.api("payments.save_card").sync(
        client=desk, patient_id="P-1003", body=m.CardRequest(payment_method="pm_card_visa")
    )
    assert isinstance(card, m.Card)
    assert (card.brand, card.last4, card.default) == ("visa", "4242", True)

    pay = generated.api("payments.pay_invoice")
    charge = m.PaymentRequest(method=m.PaymentMethod.CARD_ON_FILE)
    paid = pay.sync_detailed(
        client=desk, invoice_id=invoice.id, body=charge, idempotency_key="pay-BK-2026-0420"
    )
    assert paid.status_code == 201 and isinstance(paid.parsed, m.Payment)
    assert paid.parsed.status == m.PaymentStatus.SUCCEEDED
    assert (paid.parsed.invoice_status, paid.parsed.card_last4) == (m.InvoiceStatus.PAID, "4242")
    replay = pay.sync(
        client=desk, invoice_id=invoice.id, body=charge, idempotency_key="pay-BK-2026-0420"
    )
    assert replay.id == paid.parsed.id

    read = generated.api("invoices.get_invoice").sync(client=desk, invoice_id=invoice.id)
    assert (read.status, read.amount_paid, read.amount_refunded) == (m.InvoiceStatus.PAID, 50000, 0)

    refund = generated.api("payments.refund_invoice")
    partial = refund.sync(
        client=desk,
        invoice_id=invoice.id,
        body=m.RefundRequest(amount=10000, reason="session shortened"),
        idempotency_key="refund-BK-2026-0420-1",
    )
    assert isinstance(partial, m.Refund)
    assert (partial.status, partial.kind) == (m.RefundStatus.SUCCEEDED, m.RefundKind.REQUESTED)
    assert partial.invoice_status == m.InvoiceStatus.PARTIALLY_REFUNDED
    too_much = refund.sync_detailed(
        client=desk,
        invoice_id=invoice.id,
        body=m.RefundRequest(amount=45000, reason="too much"),
        idempotency_key="refund-BK-2026-0420-2",
    )
    assert too_much.status_code == 422 and isinstance(too_much.parsed, m.Problem)
    assert too_much.parsed.code == m.ErrorCode.REFUND_EXCEEDS_PAID
    assert "40000" in too_much.parsed.errors["amount"][0]

    receipt = generated.api("invoices.get_receipt").sync(client=desk, invoice_id=invoice.id)
    assert isinstance(receipt, importlib.import_module(f"{PACKAGE}.types").File)
    assert receipt.payload.read().startswith(b"%PDF")
    as_bytes = desk.get_httpx_client().get(
        f"/v1/invoices/{invoice.id}/receipt.pdf", headers={"Accept": "application/octet-stream"}
    )
    assert as_bytes.headers["Content-Type"] == "application/octet-stream"
    assert as_bytes.content.startswith(b"%PDF")

    finance = generated.client(stripe_app, "reports:read")
    today = datetime.now(UTC).date()
    report = generated.api("reports.get_refunds_and_disputes").sync(
        client=finance, from_=today - timedelta(days=1), to=today + timedelta(days=1)
    )
    assert isinstance(report, m.RefundsDisputes) and report.disputes == []
    [row] = report.refunds
    assert (row.refund_id, row.amount, row.currency) == (partial.id, 10000, m.Currency.USD)
    assert row.invoice_number == invoice.number and isinstance(row.occurred_at, datetime)


def test_the_front_desk_enrols_a_member_through_the_typed_client(
    stripe_app: Flask, generated: Generated
) -> None:
    m = generated.models
    admin = generated.client(stripe_app, "catalog:write")
    offered = generated.api("memberships.create_membership_plan").sync(
        client=admin,
        body=m.MembershipPlanRequest(
            code="KEEP",
            name="Keep well",
            interval=m.MembershipInterval.MONTH,
            amount=9900,
            currency=m.Currency.USD,
            percent_off=20,
        ),
    )
    assert isinstance(offered, m.MembershipPlan)
    assert offered.benefit.kind == m.MembershipBenefitKind.PERCENT_OFF
    desk = generated.client(stripe_app, "quotes:write", "invoices:read", "payments:write")
    patient = m.BookingPatient(patient_id="P-1004", name="Dara Member")
    generated.api("quotes.create_quote").sync(
        client=desk, body=booking(m, "BK-2026-0421", m.SessionType.IV_INDIVIDUAL, patient)
    )
    card = generated.api("payments.save_card").sync(
        client=desk, patient_id="P-1004", body=m.CardRequest(payment_method="pm_card_visa")
    )
    joined = generated.api("memberships.join_membership").sync(
        client=desk,
        patient_id="P-1004",
        body=m.JoinRequest(code="KEEP", payment_method=card.id),
    )
    assert isinstance(joined, m.Membership)
    assert (joined.status, joined.amount) == (m.MembershipStatus.ACTIVE, 9900)
    assert joined.periods[0].amount == 9900 and "$99.00" in joined.consent.text
    read = generated.api("memberships.get_membership").sync(client=desk, membership_id=joined.id)
    assert isinstance(read, m.Membership) and read.id == joined.id
    missing = generated.api("memberships.join_membership").sync_detailed(
        client=desk,
        patient_id="P-1004",
        body=m.JoinRequest(code="KEEP", payment_method=card.id),
    )
    assert missing.status_code == 409 and missing.parsed.code == m.ErrorCode.MEMBERSHIP_EXISTS
