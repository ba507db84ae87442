"""The cancellation policy and the booking lifecycle's rules, as pure functions.

A policy belongs to a price version (versioned like P) and a quote locks it: notice hours,
a late-cancellation fee and a no-show fee, each a percentage of the line or an amount. A
fee never exceeds the line it comes from.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from billing.domain.money import Money

ATTENDED = "attended"
NO_SHOW = "no_show"
ATTENDANCE = (ATTENDED, NO_SHOW)

BY_PATIENT = "patient"
BY_CLINIC = "clinic"
CANCELLED_BY = (BY_PATIENT, BY_CLINIC)

LATE_CANCELLATION = "late_cancellation"
FEE_REASONS = (LATE_CANCELLATION, NO_SHOW)

# A booking's state: live, a group left with fewer than 2 patients, or cancelled whole.
ACTIVE = "active"
BELOW_MINIMUM = "below_minimum"
CANCELLED = "cancelled"
BOOKING_STATES = (ACTIVE, BELOW_MINIMUM, CANCELLED)

SESSION = "session"
FEE = "fee"
PACKAGE = "package"  # a package of credits sold to a patient (its session_type too)
GIFT_CARD = "gift_card"  # a gift card sold (its session_type too)
MEMBERSHIP = "membership"  # a period of a membership (its session_type too)
INVOICE_KINDS = (SESSION, FEE, PACKAGE, GIFT_CARD, MEMBERSHIP)
SOLD = (PACKAGE, GIFT_CARD, MEMBERSHIP)  # invoices without a quote, for something sold

# Billing codes of invoice lines: a session's, and each fee's own.
BILLING_CODES = {
    "iv_individual": "KET-IV",
    "im_group": "KET-IM-GROUP",
    LATE_CANCELLATION: "FEE-LATE-CANCEL",
    NO_SHOW: "FEE-NO-SHOW",
    PACKAGE: "KET-PKG",
    GIFT_CARD: "GIFT-CARD",
    MEMBERSHIP: "MEMBERSHIP",
}
FEE_DESCRIPTIONS = {
    LATE_CANCELLATION: "Late cancellation fee",
    NO_SHOW: "Missed appointment (no-show) fee",
}


@dataclass(frozen=True, slots=True)
class Fee:
    """A percentage of the line (0-100) or a fixed amount in the line's currency."""

    percent: int | None = None
    amount: int | None = None

    def of(self, line: Money) -> Money:
        """The fee on `line`: a percentage rounds half up; never more than the line."""
        if self.amount is not None:
            fee = Money(self.amount, line.currency)
        else:
            fee = line.percent(self.percent or 0)
        return min(fee, line)


# Who is asked for a deposit when booking: everyone, patients new to the clinic (no IV
# session before), or patients who missed at least `no_shows` sessions in 12 months.
DEPOSIT_FOR = ("everyone", "new_patients", "no_shows")
NO_SHOW_MEMORY = timedelta(days=365)


@dataclass(frozen=True, slots=True)
class DepositRule:
    """Part of a session's price paid when booking: a percentage of the line or an amount
    (never more than the line), from the patients `applies_to` names."""

    fee: Fee
    applies_to: str
    no_shows: int = 1  # applies_to no_shows: this many or more in 12 months

    def of(self, line: Money, prior_iv_sessions: int, recent_no_shows: int) -> Money:
        """The deposit a patient with this history is asked for on `line` (zero: none)."""
        asked = (
            self.applies_to == "everyone"
            or (self.applies_to == "new_patients" and prior_iv_sessions == 0)
            or (self.applies_to == "no_shows" and recent_no_shows >= self.no_shows)
        )
        return self.fee.of(line) if asked else Money.zero(line.currency)


@dataclass(frozen=True, slots=True)
class CancellationPolicy:
    notice_hours: int
    late_cancellation: Fee
    no_show: Fee
    deposit: DepositRule | None = None

    def is_late(self, cancelled_at: datetime, scheduled_at: datetime) -> bool:
        """Less notice than the policy asks: instants compared, whatever their zones."""
        return scheduled_at - cancelled_at < timedelta(hours=self.notice_hours)


DEFAULT_POLICY = CancellationPolicy(
    notice_hours=48, late_cancellation=Fee(percent=50), no_show=Fee(percent=0)
)


def fee_for(policy: CancellationPolicy, reason: str, line: Money) -> Money:
    """The fee a late cancellation or a no-show costs on `line` (zero means none)."""
    fee = policy.late_cancellation if reason == LATE_CANCELLATION else policy.no_show
    return fee.of(line)


def live_patients_needed(session_type: str) -> int:
    """Fewer live patients than this and the booking is below its minimum."""
    return 2 if session_type == "im_group" else 1
