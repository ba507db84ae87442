"""The patient portal: one-time sign-in links and the sessions they open.

Neither holds a secret that opens anything: a link's token is signed from its row's id
(so an email can be written when it is sent, not stored with a live link in it), and a
session row keeps only a hash of its cookie.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, ForeignKey, Index, String, text
from sqlalchemy.orm import Mapped, mapped_column

from billing.adapters.models import Base, new_id, utcnow


class PortalSignIn(Base):
    """A sign-in link asked for an address: single use, short-lived, and (when a browser
    asked for it) good only in that browser (`browser_hash`: the hash of a cookie that
    browser was given)."""

    __tablename__ = "portal_sign_ins"
    __table_args__ = (Index("ix_portal_sign_ins_email", "email", "created_at"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=lambda: new_id("psi"))
    email: Mapped[str] = mapped_column(String(254))  # lower case, as typed otherwise
    browser_hash: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime]
    used_at: Mapped[datetime | None]


class PortalSession(Base):
    """A signed-in browser: ends when signed out, after PORTAL_IDLE_MINUTES without a
    page, or PORTAL_SESSION_HOURS after it began, whichever comes first."""

    __tablename__ = "portal_sessions"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=lambda: new_id("pss"))
    secret_hash: Mapped[str] = mapped_column(String(64), unique=True)
    email: Mapped[str] = mapped_column(String(254))
    sign_in_id: Mapped[str | None] = mapped_column(ForeignKey("portal_sign_ins.id"), unique=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    seen_at: Mapped[datetime] = mapped_column(default=utcnow)
    ended_at: Mapped[datetime | None]


class CreditRefundRequest(Base):
    """A patient asking, from the portal, for their account credit in one currency back:
    a request for staff, never a refund by itself. Open until staff refund that credit
    (POST /v1/patients/{id}/account/refunds closes it) or decline it; one open request per
    patient and currency."""

    __tablename__ = "credit_refund_requests"
    __table_args__ = (
        Index(
            "uq_credit_refund_requests_open",
            "patient_id",
            "currency",
            unique=True,
            sqlite_where=text("status = 'open'"),
            postgresql_where=text("status = 'open'"),
        ),
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=lambda: new_id("crq"))
    patient_id: Mapped[str] = mapped_column(String(64), index=True)
    currency: Mapped[str] = mapped_column(String(3))
    amount: Mapped[int] = mapped_column(BigInteger)  # the credit when it was asked for
    asked_by: Mapped[str] = mapped_column(String(254))  # the signed-in address
    status: Mapped[str] = mapped_column(String(16))  # open, refunded, declined
    refund_id: Mapped[str | None] = mapped_column(String(32))
    note: Mapped[str | None] = mapped_column(String(500))  # staff's, when declined
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    closed_at: Mapped[datetime | None]


class StatementOptOut(Base):
    """An address that asked for no monthly statement emails (the unsubscribe link in
    one). Sign-in links and receipts still go to it: the patient asked for those."""

    __tablename__ = "statement_opt_outs"

    email: Mapped[str] = mapped_column(String(254), primary_key=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
