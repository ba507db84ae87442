"""Statuses: an invoice's (derived from the ledger: forward as money arrives, back only
when money the ledger counted turns out not to be there, a refund that failed or a check
that bounced), and those of one payment or refund attempt."""

from __future__ import annotations

OPEN = "open"
PARTIALLY_PAID = "partially_paid"  # some of it paid, the rest still owed
PROCESSING = "processing"
PAID = "paid"
PARTIALLY_REFUNDED = "partially_refunded"
REFUNDED = "refunded"
VOID = "void"
WRITTEN_OFF = "written_off"  # what was still owed was written off: nothing more is collected
INVOICE_STATUSES = (
    OPEN,
    PARTIALLY_PAID,
    PROCESSING,
    PAID,
    PARTIALLY_REFUNDED,
    REFUNDED,
    VOID,
    WRITTEN_OFF,
)
CLOSED = (VOID, WRITTEN_OFF)  # final: no money is collected on them any more
SETTLED = (PAID, PARTIALLY_REFUNDED, REFUNDED)  # money was collected: a receipt exists
PAYABLE = (OPEN, PARTIALLY_PAID)  # money still owed, and no charge of it in flight
UNPAID = (OPEN, PARTIALLY_PAID, PROCESSING)  # money still owed

_RANK = {OPEN: 0, PARTIALLY_PAID: 1, PROCESSING: 2, PAID: 3, PARTIALLY_REFUNDED: 4, REFUNDED: 5}


def settled_status(total: int, paid: int, refunded: int) -> str | None:
    """The status the ledger's money implies, or None while nothing has been collected.
    `total` is what is owed after credit notes: one that leaves nothing owed settles it."""
    if total <= 0 and paid <= 0:
        return PAID
    if paid <= 0 or paid < total:
        return None
    if refunded >= paid:
        return REFUNDED
    if refunded > 0:
        return PARTIALLY_REFUNDED
    return PAID


def advance(current: str, target: str) -> str:
    """`target` if it lies ahead of `current`, else `current`; void and written off are
    final."""
    if current in CLOSED or target not in _RANK:
        return current
    return target if _RANK[target] > _RANK[current] else current


def after_refund_failed(current: str, target: str) -> str:
    """What a settled invoice reads once a refund that was counted failed: its money came
    back, so it reads as that money says (refunded to partially refunded or paid), the one
    move back among the settled statuses. Otherwise as `advance`."""
    if current in SETTLED and target in SETTLED:
        return target
    return advance(current, target)


def owing(paid: int, in_flight: bool) -> str:
    """The status of an invoice still owed money: processing while a charge of it is in
    flight, else partially paid once anything was, else open."""
    if in_flight:
        return PROCESSING
    return PARTIALLY_PAID if paid > 0 else OPEN


def after_failed_attempt(current: str, paid: int = 0) -> str:
    """A declined or abandoned payment leaves a processing invoice payable again: open,
    or partially paid when part of it was paid before."""
    return owing(paid, in_flight=False) if current == PROCESSING else current


def is_payable(status: str) -> bool:
    return status in PAYABLE


# One payment or refund attempt. "processing" is shared with invoices: Stripe has it.
PENDING = "pending"  # recorded; Stripe's answer not yet committed
UNKNOWN = "unknown"  # the call to Stripe failed in transit: it may or may not have acted
REQUIRES_ACTION = "requires_action"  # 3-D Secure: the patient must authenticate
AWAITING_PATIENT = "awaiting_patient"  # an online payment: the pay page holds its intent
SUCCEEDED = "succeeded"
FAILED = "failed"
CANCELED = "canceled"  # an online payment whose PaymentIntent we cancelled at Stripe
REVERSED = "reversed"  # money recorded by staff that never arrived (a check that bounced)
RETURNED = "returned"  # a bank debit (ACH) that came back after it succeeded
PAYMENT_STATUSES = (
    PENDING,
    UNKNOWN,
    REQUIRES_ACTION,
    PROCESSING,
    AWAITING_PATIENT,
    SUCCEEDED,
    FAILED,
    CANCELED,
    REVERSED,
    RETURNED,
)
REFUND_STATUSES = (PENDING, UNKNOWN, SUCCEEDED, FAILED)
