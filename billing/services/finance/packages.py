"""Packages in the month-end report: what package sales brought in, what the credits used
in the month are worth, discounts given, and the deferred revenue still owed in sessions.

A package's price is shared across its half-credits (Money.allocate), as refunds of its
credits share it. Used credits take their shares from the start, refunded ones from the
end, so for every package at every moment: recognised (used) + deferred (neither used,
refunded nor expired) + expired + refunded = what was paid, to the cent.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from billing.adapters.credit_models import CreditHold, CreditRefund, PatientPackage
from billing.adapters.models import Invoice, InvoiceLine, Refund
from billing.domain import credits, statuses
from billing.domain.money import Money
from billing.services.finance.reconciliation import Period, by_session_type
from billing.services.packages import credits as credits_service
from billing.services.packages.credits import RESERVING


def _used_by(holds: list[CreditHold], at: datetime) -> int:
    return sum(
        h.half_credits
        for h in holds
        if h.used_at is not None
        and h.used_at < at
        and (h.returned_at is None or h.returned_at >= at)
    )


def _held_at(holds: list[CreditHold], at: datetime) -> int:
    """Half-credits a quote holds at `at`: not used, given back or lapsed by then."""
    return sum(
        h.half_credits
        for h in holds
        if h.created_at < at
        and (h.used_at is None or h.used_at >= at)
        and (h.returned_at is None or h.returned_at >= at)
        and h.expires_at > at
    )


def _refunded_by(refunds: list[tuple[CreditRefund, str | None]], at: datetime) -> int:
    return sum(
        r.half_credits
        for r, status in refunds
        if r.created_at < at and r.failed_at is None and (status is None or status in RESERVING)
    )


def package_figures(session: Session, period: Period) -> dict[str, dict[str, Any]]:
    """Per currency: credits redeemed in the period and what they are worth, and the
    deferred revenue at its end: the paid credits not yet used, refunded, expired or
    withdrawn. Credits a quote held before their package expired, or before its money
    left it another way (a refund in Stripe's dashboard, a dispute), can still pay that
    session: they stay deferred until they are used, or their hold lapses."""
    packages = list(
        session.scalars(
            select(PatientPackage).where(
                PatientPackage.paid_at < period.end, PatientPackage.package_id.is_not(None)
            )
        )
    )
    ids = [p.id for p in packages]
    holds: dict[str, list[CreditHold]] = defaultdict(list)
    refunds: dict[str, list[tuple[CreditRefund, str | None]]] = defaultdict(list)
    if ids:
        for hold in session.scalars(
            select(CreditHold).where(CreditHold.patient_package_id.in_(ids))
        ):
            holds[hold.patient_package_id].append(hold)
        for refund, status in session.execute(
            select(CreditRefund, Refund.status)
            .outerjoin(Refund, Refund.id == CreditRefund.refund_id)
            .where(CreditRefund.patient_package_id.in_(ids))
        ).all():
            refunds[refund.patient_package_id].append((refund, status))
    withdrawn = credits_service.money_outside(session, packages, before=period.end)
    figures: dict[str, dict[str, Any]] = {}
    for package in packages:
        paid = Money(package.amount, package.currency)
        total = package.half_credits
        row = figures.setdefault(
            package.currency,
            {"half_credits_redeemed": 0, "credit_value": 0, "deferred_revenue": 0},
        )
        before = _used_by(holds[package.id], period.start)
        after = _used_by(holds[package.id], period.end)
        worth_before = credits.value_of(paid, total, 0, before).amount
        worth_after = credits.value_of(paid, total, 0, after).amount
        row["half_credits_redeemed"] += after - before
        row["credit_value"] += worth_after - worth_before
        expired = package.expires_at is not None and package.expires_at <= period.end
        gone = package.id in withdrawn
        if expired or gone:  # only what quotes still hold is owed in sessions
            owed = _held_at(holds[package.id], period.end)
        else:
            owed = total - _refunded_by(refunds[package.id], period.end) - after
        owed = min(max(owed, 0), total - after)
        row["deferred_revenue"] += credits.value_of(paid, total, after, owed).amount
    return figures


def revenue_by_session_type(session: Session, period: Period) -> list[dict[str, Any]]:
    """Per session type (package sales apart) and currency: money collected less refunds,
    discounts on the invoices of the period, and the credits that paid sessions in it."""
    signed = func.coalesce(
        select(
            func.sum(
                InvoiceLine.sliding_amount
                + InvoiceLine.promotion_amount
                + InvoiceLine.member_saving
            )
        )
        .where(InvoiceLine.invoice_id == Invoice.id)
        .scalar_subquery(),
        0,
    )
    discounts = session.execute(
        select(Invoice.session_type, Invoice.currency, func.sum(signed))
        .where(
            Invoice.status != statuses.VOID,
            Invoice.created_at >= period.start,
            Invoice.created_at < period.end,
        )
        .group_by(Invoice.session_type, Invoice.currency)
    ).all()
    used = session.execute(
        select(Invoice.session_type, Invoice.currency, func.sum(CreditHold.half_credits))
        .join(Invoice, Invoice.id == CreditHold.invoice_id)
        .where(
            CreditHold.used_at >= period.start,
            CreditHold.used_at < period.end,
            (CreditHold.returned_at.is_(None)) | (CreditHold.returned_at >= period.end),
        )
        .group_by(Invoice.session_type, Invoice.currency)
    ).all()
    rows: dict[tuple[str, str], dict[str, Any]] = {}

    def row(session_type: str, currency: str) -> dict[str, Any]:
        return rows.setdefault(
            (session_type, currency),
            {
                "session_type": session_type,
                "currency": currency,
                "collected": 0,
                "discounts": 0,
                "credits_redeemed": 0.0,
            },
        )

    for found in by_session_type(session, period):
        row(found["session_type"], found["currency"])["collected"] = int(found["revenue"])
    for session_type, currency, amount in discounts:
        if amount:
            row(session_type, currency)["discounts"] = int(amount)
    for session_type, currency, half_credits in used:
        row(session_type, currency)["credits_redeemed"] = credits.as_credits(int(half_credits))
    return [rows[key] for key in sorted(rows)]
