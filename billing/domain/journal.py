"""The accounting journal: each day's money in one currency as balanced debits and credits
against a Stripe clearing account, ready for an accountant's ledger. Pure: what moved money
goes in, journals come out.

Every posting moves one amount from one account to another, so each journal balances by
construction; `Journal.balanced` says so, and the tests check it for every journal made.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date
from typing import Any

from billing.domain.money import Money
from billing.domain.policy import GIFT_CARD, MEMBERSHIP, PACKAGE
from billing.domain.pricing import SESSION_TYPES, session_name

# The accounts a journal posts to, by key; the clinic names them (JOURNAL_ACCOUNTS).
CLEARING, BANK, REFUNDS, DISPUTES, FEES, PACKAGES = (
    "stripe_clearing",
    "bank",
    "refunds",
    "disputes",
    "stripe_fees",
    "prepaid_packages",
)
# Money received at the desk: cash and checks wait to be banked; another terminal's or
# processor's money is cleared through its own account, as Stripe's is.
UNDEPOSITED, OTHER_CLEARING = "undeposited_funds", "other_processor_clearing"
# Money paid beyond what invoices owe, kept for the patient: owed to them until applied.
PATIENT_CREDIT = "patient_credit"
# Gift cards sold and not yet spent: owed to whoever holds them.
GIFT_CARDS = "gift_cards"
# Credit staff granted a patient that no money paid: a cost of keeping patients.
GOODWILL = "goodwill_credits"
# Membership fees paid and not yet earned (owed in days of membership), and those earned.
MEMBERSHIPS_DEFERRED, MEMBERSHIP_REVENUE = "deferred_memberships", "revenue_membership"
DEFAULT_TAX_RATE = "Tax Exempt"
DEFAULT_ACCOUNTS: dict[str, dict[str, str]] = {
    CLEARING: {"name": "Stripe Clearing", "code": "1250"},
    UNDEPOSITED: {"name": "Undeposited Funds", "code": "1200"},
    OTHER_CLEARING: {"name": "Other Processor Clearing", "code": "1260"},
    BANK: {"name": "Business Checking", "code": "1000"},
    **{
        f"revenue_{session_type}": {
            "name": f"{session_name(session_type)} Sessions",
            "code": str(4000 + 10 * number),
        }
        for number, session_type in enumerate(SESSION_TYPES)
    },
    # A package's price is sessions still owed: a liability until its credits are used.
    PACKAGES: {"name": "Prepaid Packages", "code": "2400"},
    PATIENT_CREDIT: {"name": "Patient Credit Balances", "code": "2300"},
    GIFT_CARDS: {"name": "Gift Card Liability", "code": "2350"},
    MEMBERSHIP_REVENUE: {"name": "Membership Fees", "code": "4050"},
    MEMBERSHIPS_DEFERRED: {"name": "Deferred Membership Fees", "code": "2450"},
    REFUNDS: {"name": "Patient Refunds", "code": "4900"},
    GOODWILL: {"name": "Goodwill Credits", "code": "4920"},
    DISPUTES: {"name": "Card Disputes", "code": "4910"},
    FEES: {"name": "Stripe Fees", "code": "6100"},
}
ACCOUNT_KEYS = tuple(DEFAULT_ACCOUNTS)
ITEM_KINDS = (
    "charge",
    "received",
    "reversal",
    "bank_return",
    "refund",
    "refund_failure",
    "dispute",
    "to_credit",
    "from_credit",
    "gift_card",
    "goodwill",
    "membership_earned",
    "fee",
    "payout",
)


@dataclass(frozen=True, slots=True)
class Account:
    key: str
    name: str  # what QuickBooks Online matches
    code: str  # what Xero matches
    tax_rate: str  # Xero's tax rate name for the account's lines


def chart_of_accounts(overrides: Any) -> dict[str, Account]:
    """The default accounts with the clinic's overrides (`{"bank": {"name": ..., "code":
    ...}}`); a ValueError says what is wrong."""
    if not isinstance(overrides, Mapping):
        raise ValueError("must be a JSON object of accounts")
    unknown = sorted(set(overrides) - set(ACCOUNT_KEYS))
    if unknown:
        raise ValueError(f"unknown accounts {unknown}; known: {list(ACCOUNT_KEYS)}")
    chart = {}
    for key, default in DEFAULT_ACCOUNTS.items():
        given = overrides.get(key, {})
        if not isinstance(given, Mapping) or set(given) - {"name", "code", "tax_rate"}:
            raise ValueError(f"{key} takes name, code and tax_rate")
        values = {"tax_rate": DEFAULT_TAX_RATE, **default, **given}
        if not all(isinstance(v, str) and v.strip() and len(v) <= 100 for v in values.values()):
            raise ValueError(f"{key}: name, code and tax_rate must be text of 1-100 characters")
        chart[key] = Account(key, values["name"], values["code"], values["tax_rate"])
    return chart


@dataclass(frozen=True, slots=True)
class Item:
    """One thing that moved money, as the journal posts it: a charge, refund, refund's
    failure or dispute of our ledger, or money received at the desk and its reversal; a
    fee or payout of Stripe's balance (signed as Stripe signs them)."""

    kind: str
    day: date  # the clinic's day it is posted on
    money: Money
    session_type: str | None = None  # a charge's, or money received's
    late_for: str | None = None  # the closed month it is dated in, when it came too late
    method: str | None = None  # money received: cash, check or external


@dataclass(frozen=True, slots=True)
class Line:
    day: date
    currency: str
    account: Account
    description: str
    debit: int  # minor units; one of debit and credit is 0
    credit: int


@dataclass(frozen=True, slots=True)
class Journal:
    """One day's lines in one currency."""

    day: date
    currency: str
    lines: tuple[Line, ...]

    @property
    def number(self) -> str:
        """`20261005-USD`: one journal's id in QuickBooks (at most 21 characters)."""
        return f"{self.day:%Y%m%d}-{self.currency.upper()}"

    @property
    def narration(self) -> str:
        """`Stripe USD 2026-10-05`: what groups a journal's lines in Xero."""
        return f"Stripe {self.currency.upper()} {self.day.isoformat()}"

    @property
    def debits(self) -> Money:
        return Money.sum([Money(line.debit, self.currency) for line in self.lines], self.currency)

    @property
    def credits(self) -> Money:
        return Money.sum([Money(line.credit, self.currency) for line in self.lines], self.currency)

    @property
    def balanced(self) -> bool:
        return self.debits == self.credits


def _posting(item: Item) -> tuple[str, str, str, int]:
    """(debit account, credit account, description, amount) of one item."""
    amount = item.money.amount
    if item.kind in ("charge", "received", "reversal"):
        into = CLEARING
        if item.kind != "charge":
            into = OTHER_CLEARING if item.method == "external" else UNDEPOSITED
        earned, name = _earned(item.session_type)
        if item.kind == "received":
            name += f", received ({item.method or 'cash'})"
        if item.kind == "reversal":  # money received that never arrived: taken back out
            return earned, into, f"{name}, reversed ({item.method or 'cash'})", amount
        return into, earned, name, amount
    if item.kind == "bank_return":  # a bank debit that came back: no longer earned
        earned, name = _earned(item.session_type)
        return earned, CLEARING, f"{name}, bank debit returned", amount
    if item.kind in ("to_credit", "from_credit"):
        # Money paid on an invoice moved to the patient's credit (no longer earned by
        # it), or credit that paid an invoice (earned now); no money moved anywhere.
        earned, name = _earned(item.session_type)
        if item.kind == "to_credit":
            return earned, PATIENT_CREDIT, f"{name}, kept as patient credit", amount
        return PATIENT_CREDIT, earned, f"{name}, paid from patient credit", amount
    if item.kind == "goodwill":  # credit granted: owed to the patient, at the clinic's cost
        return GOODWILL, PATIENT_CREDIT, "Goodwill credit granted", amount
    if item.kind == "gift_card":  # a gift card sold earlier paid it: earned now
        earned, name = _earned(item.session_type)
        return GIFT_CARDS, earned, f"{name}, paid by gift card", amount
    if item.kind == "membership_earned":  # days of membership given: earned
        return MEMBERSHIPS_DEFERRED, MEMBERSHIP_REVENUE, "Membership fees earned", amount
    if item.kind == "refund" and item.session_type == MEMBERSHIP:  # days not given
        return MEMBERSHIPS_DEFERRED, CLEARING, "Membership fees refunded", amount
    if item.kind == "refund_failure" and item.session_type == MEMBERSHIP:
        return CLEARING, MEMBERSHIPS_DEFERRED, "Membership fee refunds failed", amount
    if item.kind == "refund" and item.session_type == GIFT_CARD:  # to its buyer: unsold
        return GIFT_CARDS, CLEARING, "Gift cards refunded", amount
    if item.kind == "refund_failure" and item.session_type == GIFT_CARD:
        return CLEARING, GIFT_CARDS, "Gift card refunds failed", amount
    if item.kind == "refund":
        return REFUNDS, CLEARING, "Refunds", amount
    if item.kind == "refund_failure":  # a refund that failed: its money back in Stripe
        return CLEARING, REFUNDS, "Refunds failed", amount
    if item.kind == "dispute":
        return DISPUTES, CLEARING, "Disputes", amount
    if item.kind == "fee":
        if amount < 0:
            return CLEARING, FEES, "Stripe fees returned", -amount
        return FEES, CLEARING, "Stripe fees", amount
    if item.kind == "payout":
        if amount > 0:  # a payout that failed or was cancelled comes back
            return CLEARING, BANK, "Payouts returned", amount
        return BANK, CLEARING, "Payouts to the bank", -amount
    raise ValueError(f"unknown item kind {item.kind!r}")


def _earned(session_type: str | None) -> tuple[str, str]:
    """The account an invoice's money is earned in, and how its lines read."""
    if session_type == PACKAGE:
        return PACKAGES, "Package sales"
    if session_type == GIFT_CARD:
        return GIFT_CARDS, "Gift card sales"
    if session_type == MEMBERSHIP:
        return MEMBERSHIPS_DEFERRED, "Membership fees"
    session_type = session_type or SESSION_TYPES[0]
    return f"revenue_{session_type}", f"{session_name(session_type)} sessions"


def journals(items: Iterable[Item], chart: Mapping[str, Account]) -> list[Journal]:
    """The items as one journal per day and currency, in date and currency order; each
    posting's lines are summed per description, a debit line then its credit line."""
    sums: dict[tuple[date, str], dict[tuple[int, str, str, str], Money]] = defaultdict(dict)
    for item in items:
        debit, credit, description, amount = _posting(item)
        if item.late_for:
            description = f"{description}, late for {item.late_for}"
        order = ITEM_KINDS.index(item.kind)
        key = (order, description, debit, credit)
        postings = sums[item.day, item.money.currency]
        zero = Money.zero(item.money.currency)
        postings[key] = postings.get(key, zero) + Money(amount, item.money.currency)
    made = []
    for (day, currency), postings in sorted(sums.items()):
        lines: list[Line] = []
        for (_, description, debit, credit), money in sorted(postings.items()):
            if money.amount == 0:
                continue
            lines.append(Line(day, currency, chart[debit], description, money.amount, 0))
            lines.append(Line(day, currency, chart[credit], description, 0, money.amount))
        if lines:
            made.append(Journal(day, currency, tuple(lines)))
    return made


def grouped(lines: Iterable[Line]) -> list[Journal]:
    """Stored lines back into their journals, in the order they were stored."""
    by_journal: dict[tuple[date, str], list[Line]] = {}
    for line in lines:
        by_journal.setdefault((line.day, line.currency), []).append(line)
    return [Journal(day, currency, tuple(rows)) for (day, currency), rows in by_journal.items()]
