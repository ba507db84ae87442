"""Packages: versioned in the catalogue, sold to a patient as an invoice, and their unused
credits refunded pro rata to what was paid."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from billing.adapters.credit_models import CreditRefund, Package, PatientPackage
from billing.adapters.db import next_version
from billing.adapters.models import IdempotencyKey, Refund, utcnow
from billing.adapters.stripe_gateway import StripeGateway
from billing.domain import credits as credit_rules
from billing.domain import policy
from billing.domain.dates import UTC_ZONE
from billing.domain.errors import Conflict, NotFound, ServiceError, field_error
from billing.domain.money import Money
from billing.services import idempotency
from billing.services.access import audit
from billing.services.idempotency import IdempotencyRequest
from billing.services.integrations import events
from billing.services.invoicing import invoices
from billing.services.packages import credits


def create_package(session: Session, body: dict[str, Any], now: datetime | None = None) -> Package:
    """A new version of a package code; the version before it is no longer sold (packages
    already sold keep theirs)."""
    now = now or utcnow()
    code = body["code"].upper()
    package = Package(
        code=code,
        version=next_version(session, Package, code, now),
        name=body["name"],
        iv_credits=body["iv_credits"],
        amount=body["amount"],
        currency=body["currency"],
        valid_days=body["valid_days"],
        created_at=now,
    )
    session.add(package)
    session.flush()
    audit.record(
        session,
        "package.created",
        "package",
        package.id,
        code=code,
        version=package.version,
        iv_credits=package.iv_credits,
        amount=package.amount,
        currency=package.currency,
        valid_days=package.valid_days,
    )
    session.commit()
    return package


def list_packages(session: Session, include_retired: bool = False) -> list[Package]:
    statement = select(Package).order_by(Package.code, Package.version)
    if not include_retired:
        statement = statement.where(Package.retired_at.is_(None))
    return list(session.scalars(statement))


def current_package(session: Session, code: str, field: str = "code") -> Package:
    package = session.scalars(
        select(Package).where(Package.code == code.upper(), Package.retired_at.is_(None))
    ).first()
    if package is None:
        raise field_error("package_not_found", field, f"No package {code!r} is on sale.")
    return package


def sell(
    session: Session,
    patient_id: str,
    body: dict[str, Any],
    request: IdempotencyRequest | None,
    now: datetime | None = None,
    zone: ZoneInfo = UTC_ZONE,
) -> PatientPackage:
    """Sell the current version of a package: an invoice for its amount, whose credits
    the patient can use once it is paid."""
    now = now or utcnow()
    claim = idempotency.Claim()
    if request is not None:
        claim = idempotency.claim(session, request, "patient_package")
        if claim.replay_of is not None:
            session.commit()
            return get_patient_package(session, patient_id, claim.replay_of)
    package = current_package(session, body["code"])
    invoice = invoices.sale_invoice(
        session,
        patient_id,
        body,
        policy.PACKAGE,
        f"{package.name} ({package.iv_credits} IV credits)",
        package.amount,
        package.currency,
        now,
        zone,
    )
    sold = PatientPackage(
        patient_id=patient_id,
        package_id=package.id,
        code=package.code,
        name=package.name,
        half_credits=package.iv_credits * 2,
        amount=package.amount,
        currency=package.currency,
        valid_days=package.valid_days,
        invoice_id=invoice.id,
        sold_at=now,
    )
    session.add(sold)
    session.flush()
    audit.record(
        session,
        "package.sold",
        "patient_package",
        sold.id,
        patient_id=patient_id,
        code=package.code,
        version=package.version,
        invoice_id=invoice.id,
        amount=package.amount,
        currency=package.currency,
    )
    events.publish(session, "invoice.created", "invoice", invoice)
    if claim.row_id is not None:
        idempotency.complete(session, claim, sold.id)
    session.commit()
    return sold


def get_patient_package(session: Session, patient_id: str, package_id: str) -> PatientPackage:
    sold = session.get(PatientPackage, package_id)
    if sold is None or sold.patient_id != patient_id:
        raise NotFound("package_not_found", f"Patient {patient_id} has no package {package_id!r}.")
    return sold


@dataclass(frozen=True, slots=True)
class CreditRefundView:
    refund: CreditRefund
    patient_id: str


def refund_unused(
    session: Session,
    gateway: StripeGateway,
    patient_id: str,
    package_id: str,
    reason: str,
    request: IdempotencyRequest,
    now: datetime | None = None,
) -> CreditRefundView:
    """Give back a package's unused credits (neither held, used nor expired) as their
    share of what was paid; the refund goes through Stripe like any other, once."""
    now = now or utcnow()
    claim = idempotency.claim(session, request, "credit_refund")
    if claim.replay_of is not None:
        session.commit()
        return _follow(session, gateway, patient_id, claim.replay_of)
    sold = get_patient_package(session, patient_id, package_id)
    if sold.package_id is None:
        raise Conflict(
            "membership_credits",
            f"{sold.id} holds a membership period's included credits: they are not refunded "
            "on their own (cancelling the membership now refunds its unused days).",
        )
    credits.lock(session, patient_id)
    session.refresh(sold)
    if sold.paid_at is None:
        raise Conflict("invoice_not_paid", f"Package {sold.id} has not been paid.")
    standing = credits.balances(session, [sold], now)[sold.id]
    if standing.available == 0:
        why = "have expired" if standing.expired else "are held, used or refunded"
        raise Conflict("no_unused_credits", f"Package {sold.id} has no unused credits: they {why}.")
    # What stays after this refund (used and held half-credits) keeps its shares of the
    # price from the start; everything else goes back, less what earlier refunds gave.
    kept = sold.half_credits - standing.refunded - standing.available
    given = Money(
        int(
            session.scalar(
                select(func.coalesce(func.sum(CreditRefund.amount), 0))
                .outerjoin(Refund, Refund.id == CreditRefund.refund_id)
                .where(CreditRefund.patient_package_id == sold.id, credits.counted_refund())
            )
            or 0
        ),
        sold.currency,
    )
    amount = credit_rules.refund_due(
        Money(sold.amount, sold.currency), sold.half_credits, kept, given
    )
    refund = CreditRefund(
        patient_package_id=sold.id,
        half_credits=standing.available,
        amount=amount.amount,
        currency=sold.currency,
        reason=reason,
        created_at=now,
    )
    session.add(refund)
    session.flush()
    audit.record(
        session,
        "credits.refund_requested",
        "patient_package",
        sold.id,
        patient_id=patient_id,
        half_credits=refund.half_credits,
        amount=refund.amount,
        currency=refund.currency,
    )
    idempotency.complete(session, claim, refund.id)
    session.commit()
    return _follow(session, gateway, patient_id, refund.id)


def stranded_credit_refunds(session: Session, before: datetime) -> list[str]:
    """Refunds of credits recorded before `before` and never sent nor failed."""
    found = list(
        session.scalars(
            select(CreditRefund.id).where(
                CreditRefund.refund_id.is_(None),
                CreditRefund.failed_at.is_(None),
                CreditRefund.created_at <= before,
            )
        )
    )
    session.commit()
    return found


def follow(session: Session, gateway: StripeGateway, credit_refund_id: str) -> CreditRefund:
    """For `payments reconcile-pending`: finish a refund of credits left half-way."""
    refund = session.get(CreditRefund, credit_refund_id)
    assert refund is not None
    sold = session.get(PatientPackage, refund.patient_package_id)
    assert sold is not None
    return _follow(session, gateway, sold.patient_id, credit_refund_id).refund


def _follow(
    session: Session, gateway: StripeGateway, patient_id: str, credit_refund_id: str
) -> CreditRefundView:
    """Send (or follow up) the money of a refund of credits, under a key of its own."""
    from billing.services.payments import refunds  # refunds import invoicing; late here

    refund = session.get(CreditRefund, credit_refund_id)
    assert refund is not None
    sold = session.get(PatientPackage, refund.patient_package_id)
    assert sold is not None
    if refund.refund_id is None and refund.failed_at is None:
        key = IdempotencyRequest(
            api_key_id=_owner(session, credit_refund_id),
            key=f"credit-refund:{refund.id}",
            fingerprint=refund.id,
        )
        made_before = _made_by(session, key)
        if made_before is not None:
            # Recorded at Stripe's door already (the process died, or this is a replay):
            # that refund is the one, and `payments reconcile-pending` settles its money.
            _link(session, refund.id, made_before)
            session.commit()
            session.refresh(refund)
            return CreditRefundView(refund, patient_id)
        session.commit()
        try:
            made = refunds.refund_invoice(
                session,
                gateway,
                sold.invoice_id,
                refund.amount,
                refund.reason,
                key,
                for_credits=True,
            )
        except ServiceError as error:
            session.rollback()
            made_id = _made_by(session, key)
            if made_id is not None:  # Stripe refused it, or its answer was lost
                _link(session, refund.id, made_id)
            elif not error.outcome_unknown:
                _failed(session, refund.id)  # refused before Stripe: the credits are free
            session.commit()
            raise
        _link(session, refund.id, made.id)
        session.commit()
    session.refresh(refund)
    return CreditRefundView(refund, patient_id)


def _owner(session: Session, credit_refund_id: str) -> int:
    """The API key that asked for this refund of credits: Stripe's key derives from it."""
    owner = session.scalar(
        select(IdempotencyKey.api_key_id).where(
            IdempotencyKey.resource_type == "credit_refund",
            IdempotencyKey.resource_id == credit_refund_id,
        )
    )
    assert owner is not None
    return int(owner)


def _made_by(session: Session, key: IdempotencyRequest) -> str | None:
    return session.scalar(
        select(IdempotencyKey.resource_id).where(
            IdempotencyKey.api_key_id == key.api_key_id, IdempotencyKey.key == key.key
        )
    )


def _link(session: Session, credit_refund_id: str, refund_id: str) -> None:
    session.execute(
        update(CreditRefund)
        .where(CreditRefund.id == credit_refund_id, CreditRefund.refund_id.is_(None))
        .values(refund_id=refund_id)
    )


def _failed(session: Session, credit_refund_id: str) -> None:
    session.execute(
        update(CreditRefund)
        .where(CreditRefund.id == credit_refund_id, CreditRefund.refund_id.is_(None))
        .values(failed_at=utcnow())
    )
