"""A payment plan as patients read it, on the pay page and the receipt: each instalment's
day, amount and where it stands, in words."""

from __future__ import annotations

from dataclasses import dataclass
from zoneinfo import ZoneInfo

from billing.adapters.schedule_models import PaymentPlan
from billing.domain.dates import clinic_date
from billing.domain.money import Money

WORDS = {
    "scheduled": "Due",
    "charging": "Being charged",
    "retrying": "Declined; we will try again on {next}",
    "paid": "Paid",
    "covered": "Paid",
    "action_needed": "Overdue: your bank asked you to confirm",
    "failed": "Overdue",
    "cancelled": "Cancelled",
}


@dataclass(frozen=True, slots=True)
class PlanShown:
    summary: str
    rows: list[tuple[str, str, str]]  # day, amount, where it stands


def shown(plan: PaymentPlan | None, zone: ZoneInfo) -> PlanShown | None:
    """The plan in words, or None without one."""
    if plan is None:
        return None
    card = f"{(plan.card_brand or 'card').title()} ending {plan.card_last4 or '????'}"
    summary = (
        f"Payment plan: {len(plan.items)} instalments charged to your {card} on the days "
        f"below; {Money(plan.amount_paid, plan.currency).format()} paid so far."
    )
    if plan.status == "past_due":
        summary += " A payment is overdue: you can pay it here."
    rows = [
        (
            clinic_date(item.due_on),
            Money(item.amount, plan.currency).format(),
            WORDS.get(item.status, item.status).format(
                next=clinic_date(item.next_attempt_at, zone=zone)
            ),
        )
        for item in plan.items
    ]
    return PlanShown(summary, rows)
