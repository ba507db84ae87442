"""A patient's statement for a period: every bill, payment, refund and correction, in
date order, with the running balance (what the patient owes, less their credit).

What moves the balance, per currency:
- a bill (+ its total) on the day it was issued; cancelled (void), what it still owed
  (-) that day, while money paid on it stays, as the credit it became;
- a payment (-): by card or bank, at the desk, by gift card; money that never arrived
  after all (a bounced check, a bank debit returned) comes back (+);
- a credit note or a write-off (-) on the day it was made; credit the clinic granted (-);
- a refund of money paid beyond what a bill owed, or of the patient's credit (+: they
  hold that much less); a refund of a bill (its service refunded) lowers that bill by as
  much as it gives back: two rows that leave the balance as it was. A refund that failed
  undoes its rows.
Money moving between a bill and the patient's own credit is neither (the balance already
counts credit). A card dispute is between the patient's bank and the clinic, and is not
on the statement.

So over all time the closing balance is what the account says: the bills' balance due
less the credit.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.orm import Session

from billing.adapters.account_models import AccountMovement, BalanceShare
from billing.adapters.models import Invoice, InvoiceAdjustment, LedgerEntry, Payment, Refund
from billing.domain import statuses
from billing.domain.dates import clinic_date, day_of
from billing.domain.money import Money
from billing.domain.policy import FEE, PACKAGE
from billing.domain.pricing import session_name
from billing.services.invoicing import ledger
from billing.services.payments.account import GOODWILL
from billing.services.payments.charges import BALANCE
from billing.services.portal.access import name_of

PAYMENTS = {
    ledger.CHARGE: "Payment by card or bank",
    ledger.RECEIVED: "Payment received at the clinic",
    ledger.GIFT_CARD: "Paid with a gift card",
}
RETURNED = {
    ledger.REVERSAL: "Payment that did not arrive (returned)",
    ledger.BANK_RETURN: "Bank payment returned by the bank",
}
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
LOWERED_BY = "Lowered by a refund"  # a bill's refund takes this off the bill ...
RESTORED = "Restored as its refund failed"  # ... and puts it back when the refund fails
DESK = {"cash": "in cash", "check": "by check", "external": "by card at the desk"}


@dataclass(frozen=True, slots=True)
class Row:
    day: date
    description: str
    amount: int  # + raises what is owed, - lowers it
    codes: tuple[str, ...] = ()
    order: int = 0  # within a day: bills first, then what paid them
    at: datetime | None = None  # then in the order they happened


@dataclass
class Section:
    """One patient's statement in one currency."""

    patient_id: str
    patient_name: str
    currency: str
    opening: int = 0
    rows: list[tuple[Row, int]] = field(default_factory=list)  # each with the balance after

    @property
    def closing(self) -> int:
        return self.rows[-1][1] if self.rows else self.opening

    def total(self, positive: bool) -> int:
        return sum(r.amount for r, _ in self.rows if (r.amount > 0) == positive)

    def money(self, amount: int) -> str:
        return Money(amount, self.currency).format()


@dataclass(frozen=True, slots=True)
class Statement:
    first: date
    last: date
    sections: list[Section]


def statement(
    session: Session,
    patient_ids: list[str],
    first: date,
    last: date,
    zone: ZoneInfo,
    codes: dict[str, list[str]],
) -> Statement:
    sections: list[Section] = []
    for patient_id in patient_ids:
        rows = _rows(session, patient_id, zone, codes)
        name = name_of(session, patient_id)
        for currency in sorted({c for c, _ in rows}):
            section = Section(patient_id, name, currency)
            balance = 0
            for _, row in sorted(
                ((c, r) for c, r in rows if c == currency),
                key=lambda item: (item[1].day, item[1].order, item[1].at or EPOCH),
            ):
                balance += row.amount
                if row.day < first:
                    section.opening = balance
                elif row.day <= last:
                    section.rows.append((row, balance))
            if section.rows or section.opening:
                sections.append(section)
    session.commit()
    return Statement(first, last, sections)


def _rows(
    session: Session, patient_id: str, zone: ZoneInfo, codes: dict[str, list[str]]
) -> list[tuple[str, Row]]:
    """Every row of the patient's statement over all time, with its currency."""
    invoices = {
        i.id: i for i in session.scalars(select(Invoice).where(Invoice.patient_id == patient_id))
    }
    rows: list[tuple[str, Row]] = []

    def day(moment: datetime) -> date:
        return day_of(moment, zone)

    for invoice in invoices.values():
        what = _what(invoice)
        rows.append(
            (
                invoice.currency,
                Row(
                    day(invoice.created_at),
                    f"Invoice {invoice.number}: {what}, "
                    f"{clinic_date(invoice.scheduled_at, zone=zone)}",
                    invoice.total,
                    tuple(_codes(invoice, codes)),
                    at=invoice.created_at,
                ),
            )
        )
    if not invoices:
        return rows
    refund_kinds = dict(
        session.execute(
            select(Refund.stripe_refund_id, Refund.kind).where(
                Refund.invoice_id.in_(invoices), Refund.stripe_refund_id.is_not(None)
            )
        ).all()
    )
    entries = session.scalars(
        select(LedgerEntry)
        .where(LedgerEntry.invoice_id.in_(invoices))
        .order_by(LedgerEntry.occurred_at, LedgerEntry.id)
    )
    together = _paid_together(session, list(invoices))
    lowered: dict[str, int] = {}  # what refunds of each bill took off it
    for entry in entries:
        number = invoices[entry.invoice_id].number
        when = day(entry.occurred_at)
        rows_of = _entry_rows(entry, number, refund_kinds.get(entry.stripe_object_id))
        if entry.kind == ledger.CHARGE and entry.stripe_object_id in together:
            # One payment of several bills: named by all of them.
            how = PAYMENTS[ledger.CHARGE]
            rows_of = [(f"{how}, {together[entry.stripe_object_id]}", -entry.amount)]
        for description, amount in rows_of:
            rows.append(
                (entry.currency, Row(when, description, amount, order=1, at=entry.occurred_at))
            )
            if description.startswith(LOWERED_BY) or description.startswith(RESTORED):
                lowered[entry.invoice_id] = lowered.get(entry.invoice_id, 0) - amount
    adjustments = session.scalars(
        select(InvoiceAdjustment).where(InvoiceAdjustment.invoice_id.in_(invoices))
    )
    for adjustment in adjustments:
        kind = "Credit note" if adjustment.kind == "credit_note" else "Written off"
        number = invoices[adjustment.invoice_id].number
        rows.append(
            (
                adjustment.currency,
                Row(
                    day(adjustment.created_at),
                    f"{kind} {adjustment.number} on invoice {number}",
                    -adjustment.amount,
                    order=1,
                    at=adjustment.created_at,
                ),
            )
        )
    for invoice in invoices.values():  # a cancelled bill owes nothing from then on
        if invoice.status != statuses.VOID:
            continue
        still = (
            invoice.total
            - invoice.amount_credited
            - invoice.amount_written_off
            - lowered.get(invoice.id, 0)
        )
        when = invoice.voided_at or invoice.updated_at
        rows.append(
            (
                invoice.currency,
                Row(day(when), f"Invoice {invoice.number} cancelled", -still, order=2, at=when),
            )
        )
    goodwill = session.scalars(
        select(AccountMovement).where(
            AccountMovement.patient_id == patient_id, AccountMovement.kind == GOODWILL
        )
    )
    for movement in goodwill:
        rows.append(
            (
                movement.currency,
                Row(
                    day(movement.created_at),
                    "Credit from the clinic",
                    -movement.amount,
                    order=1,
                    at=movement.created_at,
                ),
            )
        )
    return rows


def _paid_together(session: Session, invoice_ids: list[str]) -> dict[str, str]:
    """For each payment of several bills at once (from the portal) made on one of these:
    its PaymentIntent, and the bills it paid ("2026-000001, 2026-000002 and ...")."""
    found = session.execute(
        select(Payment.stripe_payment_intent_id, Invoice.number)
        .join(BalanceShare, BalanceShare.payment_id == Payment.id)
        .join(Invoice, Invoice.id == BalanceShare.invoice_id)
        .where(
            Payment.method == BALANCE,
            Payment.invoice_id.in_(invoice_ids),
            Payment.stripe_payment_intent_id.is_not(None),
            BalanceShare.applied > 0,  # the bills it paid, not the ones it reached too late
        )
        .order_by(Payment.id, BalanceShare.position)
    ).all()
    numbers: dict[str, list[str]] = {}
    for intent_id, number in found:
        numbers.setdefault(str(intent_id), []).append(number)
    return {
        intent_id: f"invoices {', '.join(listed[:-1])} and {listed[-1]}"
        if len(listed) > 1
        else f"invoice {listed[0]}"
        for intent_id, listed in numbers.items()
    }


def _entry_rows(entry: LedgerEntry, number: str, refund_kind: str | None) -> list[tuple[str, int]]:
    """What one ledger entry puts on the statement (see the module's rules)."""
    if entry.kind in PAYMENTS:
        how = PAYMENTS[entry.kind]
        if entry.kind == ledger.RECEIVED and entry.method in DESK:
            how = f"Payment received {DESK[entry.method]}"
        return [(f"{how}, invoice {number}", -entry.amount)]
    if entry.kind in RETURNED:
        return [(f"{RETURNED[entry.kind]}, invoice {number}", entry.amount)]
    if entry.kind in (ledger.REFUND, ledger.REFUND_FAILURE):
        sign = 1 if entry.kind == ledger.REFUND else -1
        if refund_kind == "overpayment":  # credit, or money beyond the bill, given back
            said = "Refunded to you" if sign > 0 else "Refund that failed (credit restored)"
            return [(f"{said}, invoice {number}", sign * entry.amount)]
        if sign > 0:
            return [
                (f"{LOWERED_BY}: invoice {number}", -entry.amount),
                (f"Refunded to you, invoice {number}", entry.amount),
            ]
        return [
            (f"Refund that failed, invoice {number}", -entry.amount),
            (f"{RESTORED}: invoice {number}", entry.amount),
        ]
    return []  # moves between the bill and the patient's credit; disputes


def _what(invoice: Invoice) -> str:
    if invoice.kind == PACKAGE or invoice.session_type == "package":
        return "package"
    name = session_name(invoice.session_type)
    if invoice.kind == FEE:
        return f"fee ({name})"
    if invoice.kind != "session":
        return invoice.kind.replace("_", " ")
    return name


def _codes(invoice: Invoice, codes: dict[str, list[str]]) -> list[str]:
    if invoice.kind in (FEE, PACKAGE):
        return [line.billing_code for line in invoice.lines if line.billing_code]
    return list(codes.get(invoice.session_type, []))


def period_of(
    year: int | None, first: date | None, last: date | None, today: date
) -> tuple[date, date]:
    """The statement's days: a calendar year, or from/to (by default this year so far)."""
    if year is not None:
        return date(year, 1, 1), date(year, 12, 31)
    return first or date(today.year, 1, 1), last or today
