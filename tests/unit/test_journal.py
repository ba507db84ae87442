"""The journal's rules, pure: every journal balances, holds one day in one currency, and
posts each kind of money to its accounts; the clinic's accounts are checked at start."""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from billing.config import journal_chart
from billing.domain.journal import ITEM_KINDS, Item, chart_of_accounts, journals
from billing.domain.money import Money
from billing.domain.pricing import SESSION_TYPES

CHART = chart_of_accounts({})
items = st.builds(
    lambda kind, day, amount, currency, session_type, late: Item(
        kind,
        date(2026, 10, 1) + timedelta(days=day),
        # Fees and payouts are signed as Stripe signs them; the ledger's amounts positive.
        Money(amount if kind in ("fee", "payout") else abs(amount) or 1, currency),
        session_type,
        "2026-09" if late else None,
    ),
    st.sampled_from(ITEM_KINDS),
    st.integers(min_value=0, max_value=30),
    st.integers(min_value=-(10**7), max_value=10**7),
    st.sampled_from(["usd", "cad", "jpy"]),
    st.sampled_from([*SESSION_TYPES, "package"]),
    st.booleans(),
)


@given(st.lists(items, max_size=40))
def test_every_journal_balances_and_holds_one_day_in_one_currency(made: list[Item]) -> None:
    result = journals(made, CHART)
    assert all(journal.balanced for journal in result)
    keys = [(journal.day, journal.currency) for journal in result]
    assert keys == sorted(set(keys))
    for journal in result:
        assert all((line.debit == 0) != (line.credit == 0) for line in journal.lines)
        assert {line.currency for line in journal.lines} == {journal.currency}
        # What it posts is what went in, per day and currency, never across currencies.
        moved = sum(
            abs(item.money.amount)
            for item in made
            if (item.day, item.money.currency) == (journal.day, journal.currency)
        )
        assert journal.debits == Money(moved, journal.currency)


def test_each_kind_posts_against_the_stripe_clearing_account() -> None:
    day = date(2026, 10, 5)
    postings = [
        (Item("charge", day, Money(50000, "usd"), "im_group"), "revenue_im_group", "credit"),
        # A package sold is sessions owed, not yet revenue.
        (Item("charge", day, Money(270000, "usd"), "package"), "prepaid_packages", "credit"),
        (Item("refund", day, Money(1000, "usd")), "refunds", "debit"),
        (Item("dispute", day, Money(2000, "usd")), "disputes", "debit"),
        (Item("fee", day, Money(300, "usd")), "stripe_fees", "debit"),
        (Item("fee", day, Money(-40, "usd")), "stripe_fees", "credit"),
        (Item("payout", day, Money(-9000, "usd")), "bank", "debit"),
        (Item("payout", day, Money(9000, "usd")), "bank", "credit"),
    ]
    for item, account, side in postings:
        (journal,) = journals([item], CHART)
        first, second = journal.lines
        other = second if first.account.key == account else first
        mine = first if other is second else second
        assert mine.account.key == account and other.account.key == "stripe_clearing"
        assert (
            getattr(mine, side)
            == abs(item.money.amount)
            == getattr(other, "credit" if side == "debit" else "debit")
        )


def test_money_received_at_the_desk_posts_to_undeposited_funds_or_its_processor() -> None:
    day = date(2026, 10, 5)

    def posted(item: Item) -> set[tuple[str, str, int, int]]:
        (journal,) = journals([item], CHART)
        return {(ln.account.key, ln.description, ln.debit, ln.credit) for ln in journal.lines}

    cash = Item("received", day, Money(20000, "usd"), "iv_individual", method="cash")
    assert posted(cash) == {
        ("undeposited_funds", "Individual IV sessions, received (cash)", 20000, 0),
        ("revenue_iv_individual", "Individual IV sessions, received (cash)", 0, 20000),
    }
    terminal = Item("received", day, Money(5000, "usd"), "im_group", method="external")
    assert ("other_processor_clearing", "Group IM sessions, received (external)", 5000, 0) in (
        posted(terminal)
    )
    bounced = Item("reversal", day, Money(20000, "usd"), "iv_individual", method="check")
    assert posted(bounced) == {
        ("revenue_iv_individual", "Individual IV sessions, reversed (check)", 20000, 0),
        ("undeposited_funds", "Individual IV sessions, reversed (check)", 0, 20000),
    }


def test_a_late_item_says_which_closed_month_it_belongs_to() -> None:
    late = Item("refund", date(2026, 11, 1), Money(500, "usd"), late_for="2026-10")
    on_time = Item("refund", date(2026, 11, 1), Money(700, "usd"))
    (journal,) = journals([late, on_time], CHART)
    assert [(line.description, line.debit) for line in journal.lines if line.debit] == [
        ("Refunds", 700),
        ("Refunds, late for 2026-10", 500),
    ]


@pytest.mark.parametrize(
    ("money", "written"),
    [
        (Money(123456, "usd"), "1234.56"),
        (Money(-5, "usd"), "-0.05"),
        (Money(5000, "jpy"), "5000"),
        (Money(0, "eur"), "0.00"),
    ],
)
def test_amounts_are_written_in_major_units_without_symbols(money: Money, written: str) -> None:
    assert money.major_units() == written
    assert Decimal(written) * 10 ** (0 if money.currency == "jpy" else 2) == money.amount


def test_the_clinics_accounts_replace_the_defaults_and_a_wrong_one_stops_the_start() -> None:
    chart = chart_of_accounts({"bank": {"name": "Chase Checking", "code": "090"}})
    assert (chart["bank"].name, chart["bank"].code, chart["bank"].tax_rate) == (
        "Chase Checking",
        "090",
        "Tax Exempt",
    )
    assert chart["stripe_clearing"] == CHART["stripe_clearing"]
    for wrong in (
        [],
        {"petty_cash": {"name": "Petty Cash", "code": "1"}},
        {"bank": {"nam": "Typo"}},
        {"bank": {"name": ""}},
        {"bank": "Chase"},
    ):
        with pytest.raises(RuntimeError, match="JOURNAL_ACCOUNTS"):
            journal_chart(wrong)
