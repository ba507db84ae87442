"""The clinic's calendar (CLINIC_TIMEZONE=America/Los_Angeles): report days and months, the
ageing, the dashboard and invoice years follow Los Angeles, across both DST changes of 2026
(1 November has 25 hours, 8 March 23), on SQLite and PostgreSQL alike.

Each planted moment is written as the clinic's clock reads it, with its offset (PDT -07:00,
PST -08:00): the day and month it belongs to are the first characters of that text.
"""

from __future__ import annotations

import re
from collections import defaultdict
from datetime import UTC, datetime

import pytest
from flask import Flask

from billing import create_app
from billing.adapters import db
from billing.adapters.models import Quote
from billing.web.charts import HEIGHT, PAD
from tests.api.test_reconciliation import (
    add_ledger,
    add_stripe,
    at,
    finance_dashboard,
    iv_invoice,
    set_invoice,
)

LA = "America/Los_Angeles"
AROUND_NOVEMBER = (
    "2026-10-31T23:30:00-07:00",  # 06:30 UTC on 1 Nov, and still October here
    "2026-11-01T00:30:00-07:00",
    "2026-11-01T01:30:00-07:00",  # 01:30 comes twice on 1 Nov: in PDT, then in PST
    "2026-11-01T01:30:00-08:00",
    "2026-11-01T23:30:00-08:00",  # 07:30 UTC on 2 Nov: the 25-hour day's last hour
    "2026-11-02T00:30:00-08:00",
)
AROUND_MARCH = (
    "2026-02-28T23:30:00-08:00",
    "2026-03-01T00:30:00-08:00",
    "2026-03-07T23:30:00-08:00",
    "2026-03-08T00:30:00-08:00",
    "2026-03-08T03:30:00-07:00",  # 02:00-03:00 never happens on 8 Mar
    "2026-03-08T23:30:00-07:00",  # 06:30 UTC on 9 Mar: the 23-hour day's last hour
    "2026-03-09T00:30:00-07:00",
    "2026-03-31T23:30:00-07:00",
    "2026-04-01T00:30:00-07:00",
)
MOMENTS = AROUND_NOVEMBER + AROUND_MARCH


@pytest.fixture
def app_settings() -> dict[str, object]:
    return {"CLINIC_TIMEZONE": LA}


@pytest.fixture
def desk(make_key) -> dict[str, str]:
    return make_key("quotes:write", "invoices:write", "invoices:read")


@pytest.fixture
def finance(make_key) -> dict[str, str]:
    return make_key("reports:read")


def amount_of(moment: str) -> int:
    """A different power of two (in cents) for each moment, so every sum says which it holds."""
    return 100 * 2 ** MOMENTS.index(moment)


def sums_by(length: int, moments: tuple[str, ...] = MOMENTS) -> dict[str, int]:
    """The planted amounts by the first `length` characters of their local time: 10, the
    clinic's day; 7, its month."""
    sums: dict[str, int] = defaultdict(int)
    for moment in moments:
        sums[moment[:length]] += amount_of(moment)
    return dict(sums)


@pytest.fixture
def charges(app: Flask, client, desk) -> dict[str, dict]:
    """At each moment: an invoice made, paid by a charge in our ledger and in Stripe's
    balance (fee: a twentieth), and a tenth of it refunded a minute later."""
    invoices = {}
    for number, moment in enumerate(MOMENTS):
        invoice = iv_invoice(client, desk, f"P-{number}")
        set_invoice(app, invoice["id"], created_at=at(moment), status="partially_refunded")
        amount, refunded = amount_of(moment), amount_of(moment) // 10
        add_ledger(app, invoice, "charge", amount, f"ch_{number}", moment)
        add_stripe(
            app,
            f"txn_{number}",
            type="charge",
            source=f"ch_{number}",
            amount=amount,
            fee=amount // 20,
            created=moment,
        )
        refund_at = moment.replace(":30:00", ":31:00")
        add_ledger(app, invoice, "refund", refunded, f"re_{number}", refund_at)
        add_stripe(
            app,
            f"txn_re_{number}",
            type="refund",
            source=f"re_{number}",
            amount=-refunded,
            created=refund_at,
        )
        invoices[moment] = invoice
    return invoices


def report(client, headers, path: str, **query: str) -> dict:
    answer = client.get(f"/v1/reports/{path}", query_string=query, headers=headers)
    assert answer.status_code == 200, answer.get_data(as_text=True)
    return dict(answer.json)


@pytest.mark.parametrize(
    ("first", "last", "moments"),
    [("2026-10-31", "2026-11-02", AROUND_NOVEMBER), ("2026-02-28", "2026-04-01", AROUND_MARCH)],
    ids=["november-25-hour-day", "march-23-hour-day"],
)
def test_reconciliation_days_are_the_clinics_days_across_a_dst_change(
    client, finance, charges, first, last, moments
) -> None:
    reconciled = report(client, finance, "reconciliation", **{"from": first, "to": last})
    by_day = {row["day"]: row for row in reconciled["by_day"]}
    assert {day: row["gross"] for day, row in by_day.items()} == sums_by(10, moments)
    assert {day: row["fees"] for day, row in by_day.items()} == {
        day: sum(amount_of(m) // 20 for m in moments if m[:10] == day) for day in by_day
    }
    assert {day: row["refunds"] for day, row in by_day.items()} == {
        day: sum(amount_of(m) // 10 for m in moments if m[:10] == day) for day in by_day
    }
    assert len(reconciled["matched"]) == 2 * len(moments)
    assert reconciled["missing_in_stripe"] == reconciled["missing_in_ledger"] == []


@pytest.mark.parametrize(("day", "hours"), [("2026-11-01", 25), ("2026-03-08", 23)])
def test_one_day_of_a_dst_change_holds_every_hour_of_it_and_no_other(
    client, finance, charges, day, hours
) -> None:
    reconciled = report(client, finance, "reconciliation", **{"from": day, "to": day})
    charged = {row["occurred_at"] for row in reconciled["matched"] if row["kind"] == "charge"}
    assert charged == {at(m).isoformat() for m in MOMENTS if m[:10] == day}
    # Times stay RFC 3339 in UTC: the clinic's day is only how they are grouped.
    assert all(moment.endswith("+00:00") for moment in charged)
    stamps = sorted(datetime.fromisoformat(moment) for moment in charged)
    assert (stamps[-1] - stamps[0]).total_seconds() == (hours - 1) * 3600


@pytest.mark.parametrize("month", ["2026-02", "2026-03", "2026-04", "2026-10", "2026-11"])
def test_month_end_is_the_clinics_month(client, finance, charges, month) -> None:
    summary = report(client, finance, "month-end", month=month)
    usd = summary["currencies"]["usd"]
    in_month = [m for m in MOMENTS if m.startswith(month)]
    assert usd["billed"] == 50000 * len(in_month) == 50000 * summary["invoices_issued"]
    assert usd["collected"] == sums_by(7)[month]
    assert usd["refunded"] == sum(amount_of(m) // 10 for m in in_month)
    assert usd["stripe_fees"] == sum(amount_of(m) // 20 for m in in_month)
    assert summary["discrepancies"]["missing_in_stripe"] == 0


def test_a_refund_at_half_past_eleven_on_31_october_is_octobers(client, finance, charges) -> None:
    october = report(
        client, finance, "refunds-disputes", **{"from": "2026-10-01", "to": "2026-10-31"}
    )
    november = report(
        client, finance, "refunds-disputes", **{"from": "2026-11-01", "to": "2026-11-30"}
    )
    assert [r["occurred_at"] for r in october["refunds"]] == ["2026-11-01T06:31:00+00:00"]
    assert len(november["refunds"]) == len([m for m in AROUND_NOVEMBER if m[:7] == "2026-11"])


AGES = [
    # (now, created, age in the clinic's days, bucket): 24-hour days would say otherwise
    ("2026-11-04T23:30:00-08:00", "2026-10-05T00:30:00-07:00", 30, "0-30"),
    ("2026-11-04T23:30:00-08:00", "2026-10-04T23:30:00-07:00", 31, "31-60"),
    ("2026-04-07T00:30:00-07:00", "2026-03-07T23:30:00-08:00", 31, "31-60"),
    ("2026-04-07T00:30:00-07:00", "2026-03-08T00:30:00-08:00", 30, "0-30"),
    ("2026-11-01T00:30:00-07:00", "2026-10-31T23:30:00-07:00", 1, "0-30"),
]


@pytest.mark.parametrize(("now", "created", "age", "bucket"), AGES)
def test_ageing_counts_the_clinics_days(
    app, client, desk, finance, monkeypatch, now, created, age, bucket
) -> None:
    invoice = iv_invoice(client, desk, "P-OWES")
    set_invoice(app, invoice["id"], created_at=at(created))
    monkeypatch.setattr("billing.services.finance.reports.utcnow", lambda: at(now))
    ageing = report(client, finance, "aging")
    (row,) = ageing["invoices"]
    assert (row["age_days"], row["bucket"]) == (age, bucket)
    assert ageing["buckets"][bucket] == {"count": 1, "totals": {"usd": 50000}}


@pytest.mark.parametrize(
    ("moment", "year"),
    [
        ("2026-12-31T23:30:00-08:00", "2026"),  # 07:30 UTC on 1 Jan 2027
        ("2027-01-01T00:30:00-08:00", "2027"),
    ],
)
def test_an_invoice_is_numbered_in_the_clinics_year(
    app, client, desk, booking_quote, monkeypatch, moment, year
) -> None:
    quote_id = booking_quote()
    monkeypatch.setattr("billing.services.invoicing.invoices.utcnow", lambda: at(moment))
    made = client.post("/v1/invoices", headers=desk, json={"quote_id": quote_id})
    assert made.status_code == 201, made.json
    assert made.json["data"][0]["number"] == f"{year}-000001"


@pytest.fixture
def booking_quote(app: Flask, client, desk):
    """A quote that stays binding past the turn of the year the tests pretend it is."""

    def make() -> str:
        answer = client.post(
            "/v1/quotes",
            headers=desk,
            json={
                "booking_id": "BK-NEW-YEAR",
                "session_type": "iv_individual",
                "scheduled_at": datetime.now(UTC).replace(microsecond=0).isoformat(),
                "currency": "usd",
                "patients": [{"patient_id": "P-NY", "name": "New Year"}],
            },
        )
        assert answer.status_code == 201, answer.json
        with app.app_context():
            quote = db.session().get(Quote, answer.json["id"])
            assert quote is not None
            quote.expires_at = datetime(2030, 1, 1, tzinfo=UTC)
            db.session().commit()
        return str(answer.json["id"])

    return make


def chart_heights(page: str, series: str) -> list[float]:
    """The y of each day's point of one series of the dashboard's chart (smaller is higher)."""
    found = re.search(rf'points="([^"]*)"><title>{series}</title>', page)
    assert found is not None, series
    return [float(point.split(",")[1]) for point in found.group(1).split()]


def test_the_dashboard_charts_and_totals_the_clinics_days(app, client, desk) -> None:
    invoice = iv_invoice(client, desk, "P-CHART")
    add_ledger(app, invoice, "charge", 50000, "ch_halloween", "2026-10-31T23:30:00-07:00")
    add_ledger(app, invoice, "charge", 25000, "ch_november", "2026-11-01T00:30:00-07:00")
    page = finance_dashboard(app, client, "2026-10-31", "2026-11-01")
    assert "Payments 31 Oct 2026 to 1 Nov 2026" in page
    base = HEIGHT - PAD
    # 31 Oct's $500.00 is the chart's top; 1 Nov's $250.00 half as high.
    assert chart_heights(page, "Individual IV gross") == [PAD, base - (base - PAD) / 2]
    october = client.get("/finance?from=2026-10-31&to=2026-10-31", base_url="https://localhost")
    totals = re.search(r'<table class="totals".*?</table>', october.get_data(as_text=True), re.S)
    assert totals is not None and "$500.00" in totals.group(0)
    assert "$750.00" not in totals.group(0)


def test_the_dashboard_opens_on_the_clinics_month_and_shows_its_clock(
    app, client, desk, monkeypatch
) -> None:
    invoice = iv_invoice(client, desk, "P-CLOCK")
    add_ledger(app, invoice, "charge", 50000, "ch_pdt", "2026-11-01T01:30:00-07:00")
    add_ledger(app, invoice, "refund", 5000, "re_pst", "2026-11-01T01:30:00-08:00")
    # 06:30 UTC on 1 Nov: half past eleven on Halloween in Los Angeles.
    monkeypatch.setattr("billing.web.calendar.utcnow", lambda: at("2026-10-31T23:30:00-07:00"))
    page = finance_dashboard(app, client, "", "")
    assert "Payments 1 Oct 2026 to 31 Oct 2026" in page
    assert 'name="month" type="month" value="2026-10"' in page
    history = client.get(f"/finance/invoices/{invoice['id']}", base_url="https://localhost")
    times = re.findall(r'<td class="when">([^<]+)</td>', history.get_data(as_text=True))
    assert sorted(times) == ["1 Nov 2026 01:30 PDT", "1 Nov 2026 01:30 PST"]


@pytest.mark.parametrize("name", ["Mars/Olympus_Mons", "utc", "../etc/passwd", "PST8PDT "])
def test_an_unknown_time_zone_stops_the_service_at_start(sqlite_url, monkeypatch, name) -> None:
    monkeypatch.setenv("CLINIC_TIMEZONE", name)
    with pytest.raises(RuntimeError, match="CLINIC_TIMEZONE must be an IANA time zone name"):
        create_app({"TESTING": True, "DATABASE_URL": sqlite_url})


def test_the_default_calendar_is_utc(sqlite_url, monkeypatch) -> None:
    monkeypatch.delenv("CLINIC_TIMEZONE", raising=False)
    app = create_app({"TESTING": True, "DATABASE_URL": sqlite_url})
    app.extensions["billing.db"].engine.dispose()
    assert app.config["CLINIC_ZONE"].key == "UTC"
