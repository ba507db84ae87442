"""The dunning report: what declined scheduled charges (plan instalments) came to."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from billing.adapters.models import Invoice
from billing.adapters.schedule_models import ScheduledCharge
from billing.domain.schedules import CHARGING, GAVE_UP, PAID, RETRYING


def dunning_report(session: Session, start: datetime, end: datetime) -> dict[str, object]:
    """What declined scheduled charges came to: in retry now, recovered by a retry in the
    period, given up in the period (retries used up, a decline no retry can change, or the
    bank wanting the patient), each listed, with counts and amounts per currency."""
    columns = (
        ScheduledCharge.id,
        ScheduledCharge.kind,
        ScheduledCharge.invoice_id,
        Invoice.number.label("invoice_number"),
        ScheduledCharge.patient_id,
        ScheduledCharge.plan_id,
        ScheduledCharge.number,
        ScheduledCharge.due_on.label("due_at"),
        ScheduledCharge.amount,
        ScheduledCharge.amount_paid,
        ScheduledCharge.currency,
        ScheduledCharge.status,
        ScheduledCharge.declines,
        ScheduledCharge.failure_code,
        ScheduledCharge.next_attempt_at,
        ScheduledCharge.updated_at,
    )
    base = select(*columns).join(Invoice, Invoice.id == ScheduledCharge.invoice_id)
    declined = ScheduledCharge.declines > 0
    lists = {
        "in_retry": base.where(declined, ScheduledCharge.status.in_((RETRYING, CHARGING))),
        "recovered": base.where(
            declined,
            ScheduledCharge.status == PAID,
            ScheduledCharge.paid_at >= start,
            ScheduledCharge.paid_at < end,
        ),
        "given_up": base.where(
            ScheduledCharge.status.in_(GAVE_UP),
            ScheduledCharge.updated_at >= start,
            ScheduledCharge.updated_at < end,
        ),
    }
    report: dict[str, object] = {}
    totals: dict[str, dict[str, dict[str, int]]] = {}
    for name, statement in lists.items():
        rows = [
            dict(row)
            for row in session.execute(
                statement.order_by(ScheduledCharge.updated_at, ScheduledCharge.id)
            ).mappings()
        ]
        report[name] = rows
        for row in rows:
            figures = totals.setdefault(row["currency"], {}).setdefault(
                name, {"count": 0, "amount": 0}
            )
            figures["count"] += 1
            # recovered: what the retries collected; the others: what is still owed
            owed = row["amount"] - row["amount_paid"]
            figures["amount"] += row["amount_paid"] if name == "recovered" else owed
    for per_currency in totals.values():
        for name in lists:
            per_currency.setdefault(name, {"count": 0, "amount": 0})
    report["totals"] = dict(sorted(totals.items()))
    session.commit()
    return report
