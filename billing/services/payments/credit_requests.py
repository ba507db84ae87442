"""Patients asking for their account credit back (from the portal): a request for staff,
who refund it to the card it came from (POST /v1/patients/{id}/account/refunds, which
closes the request) or decline it with a note. Asking again while a request is open
answers with that request."""

from __future__ import annotations

from sqlalchemy import select, tuple_, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from billing.adapters.account_models import AccountBalance
from billing.adapters.models import Invoice, utcnow
from billing.adapters.portal_models import CreditRefundRequest
from billing.domain import statuses
from billing.domain.errors import Conflict, NotFound
from billing.services.access import audit

OPEN, REFUNDED, DECLINED = "open", "refunded", "declined"


def ask(session: Session, patient_id: str, currency: str, asked_by: str) -> CreditRefundRequest:
    """The patient's open request for their credit in `currency` back: made now (for the
    credit beyond what their open bills owe, which it pays), or the one already open. 409
    `no_credit` when they hold no more than they owe."""
    held = int(
        session.scalar(
            select(AccountBalance.credit).where(
                AccountBalance.patient_id == patient_id, AccountBalance.currency == currency
            )
        )
        or 0
    )
    owed = sum(
        invoice.balance_due
        for invoice in session.scalars(
            select(Invoice).where(
                Invoice.patient_id == patient_id,
                Invoice.currency == currency,
                Invoice.status.in_(statuses.UNPAID),
            )
        )
    )
    if held <= owed:  # credit pays the patient's open bills first
        session.rollback()
        raise Conflict(
            "no_credit",
            f"Patient {patient_id} has no credit in {currency} beyond what their bills owe.",
        )
    held -= owed
    found = _open(session, patient_id, currency)
    if found is not None:
        session.commit()
        return found
    made = CreditRefundRequest(
        patient_id=patient_id, currency=currency, amount=held, asked_by=asked_by, status=OPEN
    )
    session.add(made)
    try:
        session.flush()
    except IntegrityError:  # asked twice at once: the other is the request
        session.rollback()
        again = _open(session, patient_id, currency)
        assert again is not None
        return again
    audit.record(
        session,
        "credit_refund.requested",
        "credit_refund_request",
        made.id,
        patient_id=patient_id,
        amount=held,
        currency=currency,
    )
    session.commit()
    return made


def _open(session: Session, patient_id: str, currency: str) -> CreditRefundRequest | None:
    return session.scalars(
        select(CreditRefundRequest).where(
            CreditRefundRequest.patient_id == patient_id,
            CreditRefundRequest.currency == currency,
            CreditRefundRequest.status == OPEN,
        )
    ).first()


def open_requests(session: Session, patient_id: str) -> list[CreditRefundRequest]:
    return list(
        session.scalars(
            select(CreditRefundRequest).where(
                CreditRefundRequest.patient_id == patient_id, CreditRefundRequest.status == OPEN
            )
        )
    )


def listed(
    session: Session, status: str | None, limit: int = 200, starting_after: str | None = None
) -> tuple[list[CreditRefundRequest], bool]:
    """A page of requests, oldest first (open ones are what staff work through), after
    the one `starting_after` names; and whether more follow."""
    statement = select(CreditRefundRequest).order_by(
        CreditRefundRequest.created_at, CreditRefundRequest.id
    )
    if status is not None:
        statement = statement.where(CreditRefundRequest.status == status)
    if starting_after is not None:
        after = session.get(CreditRefundRequest, starting_after)
        if after is None:
            raise NotFound(
                "refund_request_not_found", f"No credit refund request {starting_after}."
            )
        statement = statement.where(
            tuple_(CreditRefundRequest.created_at, CreditRefundRequest.id)
            > tuple_(after.created_at, after.id)
        )
    found = list(session.scalars(statement.limit(limit + 1)))
    session.commit()
    return found[:limit], len(found) > limit


def refunded(session: Session, patient_id: str, currency: str, refund_id: str) -> None:
    """In the caller's transaction, as staff refund the patient's credit: their open
    request in that currency is answered."""
    session.execute(
        update(CreditRefundRequest)
        .where(
            CreditRefundRequest.patient_id == patient_id,
            CreditRefundRequest.currency == currency,
            CreditRefundRequest.status == OPEN,
        )
        .values(status=REFUNDED, refund_id=refund_id, closed_at=utcnow())
    )


def decline(session: Session, request_id: str, note: str) -> CreditRefundRequest:
    """Staff answer a request without a refund (the credit stays the patient's)."""
    found = session.get(CreditRefundRequest, request_id, with_for_update=True)
    if found is None:
        session.rollback()
        raise NotFound("refund_request_not_found", f"No credit refund request {request_id}.")
    if found.status != OPEN:
        session.rollback()
        raise Conflict("refund_request_closed", f"Request {request_id} is already {found.status}.")
    found.status, found.note, found.closed_at = DECLINED, note, utcnow()
    audit.record(session, "credit_refund.declined", "credit_refund_request", found.id, note=note)
    session.commit()
    return found


def reopened(session: Session, refund_id: str) -> None:
    """In the caller's transaction, as a refund of credit fails: the request it answered
    is open again (unless the patient has asked anew meanwhile)."""
    answered = session.scalars(
        select(CreditRefundRequest).where(CreditRefundRequest.refund_id == refund_id)
    ).first()
    if answered is None or _open(session, answered.patient_id, answered.currency) is not None:
        return
    answered.status, answered.refund_id, answered.closed_at = OPEN, None, None
