"""Database models: SQLAlchemy 2.x typed mappings. Alembic migrations create the tables."""

from __future__ import annotations

import secrets
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import (
    BigInteger,
    DateTime,
    Dialect,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
    case,
    cast,
    column,
    func,
    select,
    table,
    text,
)
from sqlalchemy.ext.hybrid import hybrid_property
from sqlalchemy.orm import DeclarativeBase, Mapped, column_property, mapped_column, relationship

from billing.domain.money import Money

if TYPE_CHECKING:
    from billing.adapters.schedule_models import PaymentPlan
from billing.domain.policy import CancellationPolicy, DepositRule, Fee


def utcnow() -> datetime:
    return datetime.now(UTC)


def new_id(prefix: str) -> str:
    """An opaque, unguessable id such as `qt_5f0c...`, as Stripe names its objects."""
    return f"{prefix}_{secrets.token_hex(12)}"


class UTCDateTime(TypeDecorator[datetime]):
    """Stores UTC; always hands back a timezone-aware datetime, on SQLite too."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map = {datetime: UTCDateTime, int: BigInteger}


class ApiKey(Base):
    """A client system's key. Only its SHA-256 hash is stored; `client` names the system,
    which may hold several keys (a rotation), and owns what its keys made."""

    __tablename__ = "api_keys"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    client: Mapped[str] = mapped_column(String(64), index=True)
    key_prefix: Mapped[str] = mapped_column(String(16))
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    scopes: Mapped[str] = mapped_column(String(512))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    revoked_at: Mapped[datetime | None]

    @property
    def scope_set(self) -> frozenset[str]:
        return frozenset(filter(None, self.scopes.split(",")))


class PriceVersion(Base):
    """One version of the price list: the IV individual price P from `effective_at` on."""

    __tablename__ = "price_versions"
    __table_args__ = (Index("ix_price_versions_currency_effective", "currency", "effective_at"),)

    version: Mapped[int] = mapped_column(Integer, primary_key=True)
    currency: Mapped[str] = mapped_column(String(3))
    iv_individual_amount: Mapped[int]
    effective_at: Mapped[datetime]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    # The cancellation policy of this version: each fee a percentage of the line or an
    # amount (exactly one of the two is set).
    notice_hours: Mapped[int] = mapped_column(Integer, default=48, server_default="48")
    late_cancellation_fee_percent: Mapped[int | None] = mapped_column(Integer)
    late_cancellation_fee_amount: Mapped[int | None]
    no_show_fee_percent: Mapped[int | None] = mapped_column(Integer)
    no_show_fee_amount: Mapped[int | None]
    # A deposit asked when booking (none without `deposit_for`): a percentage of the line
    # or an amount, from everyone, new patients, or patients with `deposit_no_shows`
    # no-shows in 12 months.
    deposit_for: Mapped[str | None] = mapped_column(String(16))
    deposit_percent: Mapped[int | None] = mapped_column(Integer)
    deposit_amount: Mapped[int | None]
    deposit_no_shows: Mapped[int | None] = mapped_column(Integer)

    @property
    def iv_individual(self) -> Money:
        return Money(self.iv_individual_amount, self.currency)

    @property
    def policy(self) -> CancellationPolicy:
        return CancellationPolicy(
            notice_hours=self.notice_hours,
            late_cancellation=Fee(
                self.late_cancellation_fee_percent, self.late_cancellation_fee_amount
            ),
            no_show=Fee(self.no_show_fee_percent, self.no_show_fee_amount),
            deposit=None
            if self.deposit_for is None
            else DepositRule(
                Fee(self.deposit_percent, self.deposit_amount),
                self.deposit_for,
                self.deposit_no_shows or 1,
            ),
        )


class Quote(Base):
    """A binding price for one booking, locked to a price version until it expires."""

    __tablename__ = "quotes"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=lambda: new_id("qt"))
    booking_id: Mapped[str] = mapped_column(String(64), index=True)
    session_type: Mapped[str] = mapped_column(String(32))
    currency: Mapped[str] = mapped_column(String(3))
    price_version: Mapped[int] = mapped_column(
        Integer, ForeignKey("price_versions.version", ondelete="RESTRICT")
    )
    total: Mapped[int]
    scheduled_at: Mapped[datetime]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime]
    expired_at: Mapped[datetime | None]  # when the expiry job announced it (never invoiced)
    promotion_code: Mapped[str | None] = mapped_column(String(40))
    lines: Mapped[list[QuoteLine]] = relationship(
        back_populates="quote", order_by="QuoteLine.position", lazy="selectin"
    )
    price: Mapped[PriceVersion] = relationship(lazy="selectin")

    @property
    def cancellation_policy(self) -> CancellationPolicy:
        return self.price.policy


class QuoteLine(Base):
    """One patient's line of a quote; keeps the IV exemption for the audit trail."""

    __tablename__ = "quote_lines"
    __table_args__ = (UniqueConstraint("quote_id", "position"),)

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    quote_id: Mapped[str] = mapped_column(ForeignKey("quotes.id", ondelete="CASCADE"))
    position: Mapped[int] = mapped_column(Integer)
    patient_id: Mapped[str] = mapped_column(String(64), index=True)
    patient_name: Mapped[str] = mapped_column(String(200))
    patient_email: Mapped[str | None] = mapped_column(String(254))
    prior_iv_sessions: Mapped[int] = mapped_column(Integer, default=0)
    iv_exemption_reason: Mapped[str | None] = mapped_column(String(64))
    iv_exemption_approved_by: Mapped[str | None] = mapped_column(String(200))
    description: Mapped[str] = mapped_column(String(200))
    amount: Mapped[int]  # what the patient pays: the session price less any discount
    base_amount: Mapped[int | None]  # the session price, when a discount applies
    sliding_percent: Mapped[int | None] = mapped_column(Integer)
    sliding_reason: Mapped[str | None] = mapped_column(String(200))
    sliding_approved_by: Mapped[str | None] = mapped_column(String(200))
    sliding_amount: Mapped[int] = mapped_column(default=0, server_default="0")
    promotion_amount: Mapped[int] = mapped_column(default=0, server_default="0")
    credit_units: Mapped[int] = mapped_column(default=0, server_default="0")  # half-credits
    deposit: Mapped[int] = mapped_column(default=0, server_default="0")  # asked when booking
    # The membership whose benefit priced the line, and what it took off the price list's.
    membership_id: Mapped[str | None] = mapped_column(String(32))
    member_saving: Mapped[int] = mapped_column(default=0, server_default="0")
    quote: Mapped[Quote] = relationship(back_populates="lines")

    @property
    def credits_used(self) -> float:
        return self.credit_units / 2

    @property
    def promotion_code(self) -> str | None:
        return self.quote.promotion_code

    @property
    def iv_exemption(self) -> dict[str, str] | None:
        if self.iv_exemption_reason is None:
            return None
        return {
            "reason": self.iv_exemption_reason,
            "approved_by": self.iv_exemption_approved_by or "",
        }


class IdempotencyKey(Base):
    """A client's `Idempotency-Key`, the request it first came with, and what it created."""

    __tablename__ = "idempotency_keys"
    __table_args__ = (UniqueConstraint("api_key_id", "key"),)

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    api_key_id: Mapped[int] = mapped_column(Integer, ForeignKey("api_keys.id"))
    key: Mapped[str] = mapped_column(String(255))
    fingerprint: Mapped[str] = mapped_column(String(64))
    resource_type: Mapped[str | None] = mapped_column(String(32))
    resource_id: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Patient(Base):
    """What Stripe may know of a patient: an opaque ref, its Customer and card on file."""

    __tablename__ = "patients"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=lambda: new_id("pt"))
    patient_id: Mapped[str] = mapped_column(String(64), unique=True)
    stripe_customer_id: Mapped[str | None] = mapped_column(String(255), unique=True)
    default_payment_method_id: Mapped[str | None] = mapped_column(String(255))
    default_card_brand: Mapped[str | None] = mapped_column(String(32))
    default_card_last4: Mapped[str | None] = mapped_column(String(4))
    # A US bank account set up for debits under a mandate (ACH), beside the card on file.
    bank_payment_method_id: Mapped[str | None] = mapped_column(String(255))
    bank_name: Mapped[str | None] = mapped_column(String(64))
    bank_last4: Mapped[str | None] = mapped_column(String(4))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class InvoiceCounter(Base):
    """The last invoice number of a year; its row lock keeps numbers gapless."""

    __tablename__ = "invoice_counters"

    year: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    last_number: Mapped[int] = mapped_column(Integer)


class LedgerEntry(Base):
    """An append-only money event: a charge, a refund, a refund's failure (its money back)
    or a dispute, once per Stripe object."""

    __tablename__ = "ledger_entries"
    __table_args__ = (
        UniqueConstraint("kind", "stripe_object_id"),
        Index("ix_ledger_entries_occurred_at", "occurred_at"),
        Index("ix_ledger_entries_stripe_ref", "stripe_ref"),
        # Every charge of an invoice, with what the overpayments sum, in invoice order
        # (PostgreSQL reads them from the index alone, merged with the period's).
        Index(
            "ix_ledger_entries_charges",
            "invoice_id",
            postgresql_include=["amount", "occurred_at", "invoice_total"],
            postgresql_where=text("kind = 'charge'"),
            sqlite_where=text("kind = 'charge'"),
        ),
    )

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    invoice_id: Mapped[str] = mapped_column(ForeignKey("invoices.id"), index=True)
    kind: Mapped[str] = mapped_column(String(16))
    amount: Mapped[int]  # positive minor units; the kind says which way the money went
    currency: Mapped[str] = mapped_column(String(3))
    stripe_object_id: Mapped[str] = mapped_column(String(255))
    stripe_charge_id: Mapped[str | None] = mapped_column(String(255), index=True)
    # The id Stripe's balance transaction names as its source: the charge of a
    # charge, the refund of a refund or of its failure, the dispute of a dispute.
    stripe_ref: Mapped[str | None] = mapped_column(String(255))
    # Money received outside Stripe (kinds `received` and `reversal`): how it came, cash,
    # check or external; null for Stripe's money.
    method: Mapped[str | None] = mapped_column(String(16))
    occurred_at: Mapped[datetime] = mapped_column(default=utcnow)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    # Copies of the invoice's (they never change), so reports need not look it up; null
    # on a row written without them, where reports do.
    invoice_number: Mapped[str | None] = mapped_column(String(16))
    session_type: Mapped[str | None] = mapped_column(String(32))
    invoice_total: Mapped[int | None]


def _ledger_refunded(invoice_id: Any) -> Any:
    """What an invoice's ledger says was refunded: refunds, less those that failed after
    they were counted (entries of kind `refund_failure`)."""
    refunded = case(
        (LedgerEntry.kind == "refund", LedgerEntry.amount),
        (LedgerEntry.kind == "refund_failure", -LedgerEntry.amount),
        else_=0,
    )
    return (
        select(cast(func.coalesce(func.sum(refunded), 0), BigInteger))
        .where(LedgerEntry.invoice_id == invoice_id)
        .correlate_except(LedgerEntry)
        .scalar_subquery()
    )


def _ledger_paid(invoice_id: Any) -> Any:
    """What an invoice's ledger says was paid: Stripe's charges, the money staff received,
    the patient's credit and gift cards applied to it, less what of that never arrived
    (entries of kind `reversal`, or `bank_return`: a bank debit that came back) or was moved
    to the patient's credit (`to_credit`)."""
    paid = case(
        (
            LedgerEntry.kind.in_(("charge", "received", "from_credit", "gift_card")),
            LedgerEntry.amount,
        ),
        (LedgerEntry.kind.in_(("reversal", "bank_return", "to_credit")), -LedgerEntry.amount),
        else_=0,
    )
    return (
        # PostgreSQL sums a bigint as numeric: cast back so Python sees an int.
        select(cast(func.coalesce(func.sum(paid), 0), BigInteger))
        .where(LedgerEntry.invoice_id == invoice_id)
        .correlate_except(LedgerEntry)
        .scalar_subquery()
    )


class InvoiceAdjustment(Base):
    """What lowers what an issued invoice owes without editing it: a credit note (a
    correction: what was paid beyond the new amount goes back or to the patient's credit)
    or a write-off (a balance the clinic will not collect). Never edited or deleted."""

    __tablename__ = "invoice_adjustments"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    number: Mapped[str] = mapped_column(String(24), unique=True)  # CN-2026-000001, WO-...
    invoice_id: Mapped[str] = mapped_column(ForeignKey("invoices.id"), index=True)
    kind: Mapped[str] = mapped_column(String(16))  # credit_note or write_off
    amount: Mapped[int]
    currency: Mapped[str] = mapped_column(String(3))
    category: Mapped[str | None] = mapped_column(String(24))  # a write-off's: bad_debt, ...
    reason: Mapped[str] = mapped_column(String(500))
    approved_by: Mapped[str] = mapped_column(String(200))
    created_by: Mapped[str] = mapped_column(String(254))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    # A credit note's: what of the money already paid went back to cards, and to credit.
    refunded: Mapped[int] = mapped_column(default=0, server_default="0")
    to_credit: Mapped[int] = mapped_column(default=0, server_default="0")
    invoice: Mapped[Invoice] = relationship(lazy="joined")


def _processing(invoice_id: Any) -> Any:
    """What an invoice's payments that Stripe is processing would pay (a bank debit: for
    days). The payments table is named here as a plain table: it is mapped further down."""
    payments = table("payments", column("invoice_id"), column("status"), column("amount"))
    return (
        select(cast(func.coalesce(func.sum(payments.c.amount), 0), BigInteger))
        .where(payments.c.invoice_id == invoice_id, payments.c.status == "processing")
        .correlate_except(payments)
        .scalar_subquery()
    )


def _adjusted(invoice_id: Any, kind: str) -> Any:
    """The sum of an invoice's credit notes or write-offs (`kind`)."""
    return (
        select(cast(func.coalesce(func.sum(InvoiceAdjustment.amount), 0), BigInteger))
        .where(InvoiceAdjustment.invoice_id == invoice_id, InvoiceAdjustment.kind == kind)
        .correlate_except(InvoiceAdjustment)
        .scalar_subquery()
    )


class Invoice(Base):
    """One patient's bill for one booking, at the quote's locked price."""

    __tablename__ = "invoices"
    __table_args__ = (
        # One session invoice per patient of a quote; fee invoices beside it.
        Index(
            "uq_invoices_session_seat",
            "quote_id",
            "patient_id",
            unique=True,
            sqlite_where=text("kind = 'session'"),
            postgresql_where=text("kind = 'session'"),
        ),
        Index("ix_invoices_created_at_id", "created_at", "id"),
        Index("ix_invoices_patient_status", "patient_id", "status"),
        # The portal finds the patients an address reaches by their invoices' email.
        Index("ix_invoices_patient_email", text("lower(patient_email)")),
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=lambda: new_id("in"))
    number: Mapped[str] = mapped_column(String(16), unique=True)
    # A package sold to a patient has neither quote nor booking.
    quote_id: Mapped[str | None] = mapped_column(ForeignKey("quotes.id"))
    booking_id: Mapped[str | None] = mapped_column(String(64), index=True)
    patient_id: Mapped[str] = mapped_column(String(64))
    patient_name: Mapped[str] = mapped_column(String(200))
    patient_email: Mapped[str | None] = mapped_column(String(254))
    session_type: Mapped[str] = mapped_column(String(32))  # or "package"
    scheduled_at: Mapped[datetime]  # the date of service; a package's: when it was sold
    currency: Mapped[str] = mapped_column(String(3))
    total: Mapped[int]
    status: Mapped[str] = mapped_column(String(24), index=True)
    kind: Mapped[str] = mapped_column(String(16), default="session", server_default="session")
    fee_reason: Mapped[str | None] = mapped_column(String(32))  # late_cancellation, no_show
    deposit: Mapped[int] = mapped_column(default=0, server_default="0")  # its quote line's
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
    voided_at: Mapped[datetime | None]
    disputed_at: Mapped[datetime | None]
    # Derived from the ledger, never stored: what was collected and what was given back.
    amount_paid: Mapped[int] = column_property(_ledger_paid(id))
    amount_refunded: Mapped[int] = column_property(_ledger_refunded(id))
    amount_processing: Mapped[int] = column_property(_processing(id))
    # What credit notes and write-offs took off what it owes. Writing the invoice's row
    # does not change them (expire_on_flush would leave them unloaded after a refresh of
    # other attributes); they are refreshed where an adjustment is made.
    amount_credited: Mapped[int] = column_property(
        _adjusted(id, "credit_note"), expire_on_flush=False
    )
    amount_written_off: Mapped[int] = column_property(
        _adjusted(id, "write_off"), expire_on_flush=False
    )
    lines: Mapped[list[InvoiceLine]] = relationship(
        order_by="InvoiceLine.position", lazy="selectin", cascade="all, delete-orphan"
    )
    # Its payment plan, unless none or cancelled (at most one such: a unique index).
    plan: Mapped[PaymentPlan | None] = relationship(
        primaryjoin="and_(Invoice.id == foreign(PaymentPlan.invoice_id), "
        "PaymentPlan.status != 'cancelled')",
        uselist=False,
        viewonly=True,
        lazy="selectin",
    )

    @property
    def deposit_due(self) -> int:
        """What of the deposit asked when booking is still to pay (nothing once paid)."""
        return min(max(0, self.deposit - self.amount_paid), self.balance_due)

    @hybrid_property
    def amount_owed(self) -> int:
        """The total less what credit notes and write-offs took off it (in SQL too)."""
        return self.total - self.amount_credited - self.amount_written_off

    @property
    def balance_due(self) -> int:
        """What is still owed: the total less credit notes, write-offs and what was paid
        (refunds do not reopen it; a void invoice owes nothing)."""
        if self.status == "void":
            return 0
        return max(0, self.amount_owed - self.amount_paid)


class InvoiceLine(Base):
    __tablename__ = "invoice_lines"
    __table_args__ = (UniqueConstraint("invoice_id", "position"),)

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    invoice_id: Mapped[str] = mapped_column(ForeignKey("invoices.id", ondelete="CASCADE"))
    position: Mapped[int] = mapped_column(Integer)
    description: Mapped[str] = mapped_column(String(200))
    session_type: Mapped[str] = mapped_column(String(32))
    billing_code: Mapped[str | None] = mapped_column(String(32))
    amount: Mapped[int]  # net of the discounts below
    base_amount: Mapped[int | None]  # the price before them, when there are any
    sliding_percent: Mapped[int | None] = mapped_column(Integer)
    sliding_reason: Mapped[str | None] = mapped_column(String(200))
    sliding_approved_by: Mapped[str | None] = mapped_column(String(200))
    sliding_amount: Mapped[int] = mapped_column(default=0, server_default="0")
    promotion_code: Mapped[str | None] = mapped_column(String(40))
    promotion_amount: Mapped[int] = mapped_column(default=0, server_default="0")
    credit_units: Mapped[int] = mapped_column(default=0, server_default="0")  # half-credits
    membership_id: Mapped[str | None] = mapped_column(String(32))
    member_saving: Mapped[int] = mapped_column(default=0, server_default="0")

    @property
    def credits_used(self) -> float:
        return self.credit_units / 2


class Payment(Base):
    """One attempt to collect (part of) an invoice through Stripe, committed before Stripe
    is called; or money staff received outside Stripe, recorded as it arrived."""

    __tablename__ = "payments"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=lambda: new_id("pay"))
    invoice_id: Mapped[str] = mapped_column(ForeignKey("invoices.id"), index=True)
    method: Mapped[str] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(24), index=True)
    amount: Mapped[int]
    currency: Mapped[str] = mapped_column(String(3))
    stripe_payment_intent_id: Mapped[str | None] = mapped_column(String(255), unique=True)
    stripe_charge_id: Mapped[str | None] = mapped_column(String(255), index=True)
    client_secret: Mapped[str | None] = mapped_column(String(255))
    # What a card-on-file charge was sent with: a re-send must repeat it exactly.
    stripe_customer_id: Mapped[str | None] = mapped_column(String(255))
    stripe_payment_method_id: Mapped[str | None] = mapped_column(String(255))
    failure_code: Mapped[str | None] = mapped_column(String(64))
    failure_message: Mapped[str | None] = mapped_column(String(500))
    # A card's decline as the bank gave it (insufficient_funds, lost_card, ...): whether
    # trying again later may succeed.
    decline_code: Mapped[str | None] = mapped_column(String(64))
    # The scheduled charge (an instalment of a plan) that made it, if any.
    scheduled_charge_id: Mapped[str | None] = mapped_column(String(32), index=True)
    card_brand: Mapped[str | None] = mapped_column(String(64))  # or the bank's name
    card_last4: Mapped[str | None] = mapped_column(String(4))
    # What Stripe collected it from, once known: "card" or "us_bank_account" (a debit that
    # is processing for days, and may come back after it succeeded).
    source: Mapped[str | None] = mapped_column(String(24))
    # An online payment whose patient ticked "save this card": the words they agreed to.
    save_card_consent: Mapped[str | None] = mapped_column(Text)
    save_card_agreed_at: Mapped[datetime | None]
    save_card_ip_address: Mapped[str | None] = mapped_column(String(45))
    save_card_user_agent: Mapped[str | None] = mapped_column(String(500))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
    paid_at: Mapped[datetime | None]
    # Money staff received outside Stripe (methods cash, check, external): the check's
    # number or the terminal's reference, when it came in, and who recorded it.
    reference: Mapped[str | None] = mapped_column(String(100))
    received_at: Mapped[datetime | None]
    recorded_by: Mapped[str | None] = mapped_column(String(254))
    # ... and, when it never arrived after all (a check that bounced), when and why.
    reversed_at: Mapped[datetime | None]
    reversal_reason: Mapped[str | None] = mapped_column(String(500))
    invoice: Mapped[Invoice] = relationship()


class Refund(Base):
    """A full or partial refund of an invoice's payment; the reason stays with us.

    `kind`: "requested" by staff, "overpayment" (money collected beyond the invoice, given
    back automatically), or "external" (made in Stripe's dashboard, learnt from a webhook).
    """

    __tablename__ = "refunds"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=lambda: new_id("rf"))
    invoice_id: Mapped[str] = mapped_column(ForeignKey("invoices.id"), index=True)
    payment_id: Mapped[str | None] = mapped_column(ForeignKey("payments.id"))
    amount: Mapped[int]
    currency: Mapped[str] = mapped_column(String(3))
    reason: Mapped[str] = mapped_column(String(500))
    kind: Mapped[str] = mapped_column(String(16), default="requested", server_default="requested")
    status: Mapped[str] = mapped_column(String(24), index=True)
    failure_code: Mapped[str | None] = mapped_column(String(64))
    stripe_refund_id: Mapped[str | None] = mapped_column(String(255), unique=True)
    failure_message: Mapped[str | None] = mapped_column(String(500))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
    invoice: Mapped[Invoice] = relationship()


class StripeEvent(Base):
    """Each webhook event id once: a duplicate delivery finds its row and does nothing."""

    __tablename__ = "stripe_events"

    id: Mapped[str] = mapped_column(String(255), primary_key=True)
    type: Mapped[str] = mapped_column(String(64))
    payload: Mapped[str] = mapped_column(Text)
    received_at: Mapped[datetime] = mapped_column(default=utcnow)
    processed_at: Mapped[datetime | None]


class PayLink(Base):
    """A patient's signed link to pay one invoice; expires, and dies with a void invoice."""

    __tablename__ = "pay_links"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=lambda: new_id("pl"))
    invoice_id: Mapped[str] = mapped_column(ForeignKey("invoices.id"), index=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime]
    revoked_at: Mapped[datetime | None]
    expired_at: Mapped[datetime | None]  # when the expiry job stood its PaymentIntent down


class StripeBalanceTransaction(Base):
    """A line of Stripe's balance, copied by `stripe sync`: what Stripe actually moved."""

    __tablename__ = "stripe_balance_transactions"
    __table_args__ = (
        Index("ix_stripe_balance_transactions_created", "created"),
        Index("ix_stripe_balance_transactions_source", "source"),
        Index("ix_stripe_balance_transactions_payout", "payout_id"),
    )

    id: Mapped[str] = mapped_column(String(255), primary_key=True)
    type: Mapped[str] = mapped_column(String(32))
    source: Mapped[str | None] = mapped_column(String(255))
    amount: Mapped[int]  # signed, minor units, as Stripe reports it
    fee: Mapped[int]
    net: Mapped[int]
    currency: Mapped[str] = mapped_column(String(3))
    created: Mapped[datetime]
    available_on: Mapped[datetime | None]
    payout_id: Mapped[str | None] = mapped_column(String(255))
    synced_at: Mapped[datetime] = mapped_column(default=utcnow)


class StripePayout(Base):
    """A transfer from Stripe to the clinic's bank."""

    __tablename__ = "stripe_payouts"

    id: Mapped[str] = mapped_column(String(255), primary_key=True)
    amount: Mapped[int]
    currency: Mapped[str] = mapped_column(String(3))
    status: Mapped[str] = mapped_column(String(32))
    arrival_date: Mapped[datetime | None]
    created: Mapped[datetime]
    linked_at: Mapped[datetime | None]  # when its balance transactions were linked


class SyncState(Base):
    """Where a sync stands: an unfinished pass resumes after `cursor`."""

    __tablename__ = "sync_state"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    cursor: Mapped[str | None] = mapped_column(String(255))
    since: Mapped[datetime | None]
    newest_seen: Mapped[datetime | None]  # the newest object of the last finished pass
    started_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]


class StaffUser(Base):
    """A finance staff member who signs in to /finance; only a password hash is kept."""

    __tablename__ = "staff_users"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    email: Mapped[str] = mapped_column(String(254), unique=True)
    password_hash: Mapped[str] = mapped_column(String(255))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    disabled_at: Mapped[datetime | None]
    # Every signed-in session carries the number it started under; signing out or a new
    # password moves it on, which ends every session of the account, copies included.
    session_version: Mapped[int] = mapped_column(Integer, default=0, server_default="0")


class CacheState(Base):
    """One row: a number every change to API keys or prices bumps, in the same
    transaction as the change. Each process compares it with the number its caches were
    filled under (at most every CACHE_CHECK_SECONDS) and drops them when it moved, so a
    revoked key or a new price takes effect on every instance within that time."""

    __tablename__ = "cache_state"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    generation: Mapped[int] = mapped_column(BigInteger, default=0)


class AuditEvent(Base):
    """Who changed what, and when: one row per mutation, written in the transaction of the
    change. Append-only: on PostgreSQL the database refuses updates and deletes."""

    __tablename__ = "audit_events"
    __table_args__ = (
        Index("ix_audit_events_occurred_at", "occurred_at"),
        Index("ix_audit_events_action", "action"),
        Index("ix_audit_events_object_id", "object_id"),
    )

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    occurred_at: Mapped[datetime] = mapped_column(default=utcnow)
    actor_type: Mapped[str] = mapped_column(String(16))  # api_key, staff, operator, stripe, system
    actor: Mapped[str] = mapped_column(String(254))
    action: Mapped[str] = mapped_column(String(64))
    object_type: Mapped[str] = mapped_column(String(32))
    object_id: Mapped[str] = mapped_column(String(64))
    request_id: Mapped[str | None] = mapped_column(String(128))
    details: Mapped[str] = mapped_column(Text, default="{}")  # JSON: what changed


# The outbox's and the bookings' tables share this Base: importing them registers them.
from billing.adapters import (  # noqa: E402, F401
    account_models,
    booking_models,
    credit_models,
    estimate_models,
    membership_models,
    outbox,
    portal_models,
    promotion_models,
    schedule_models,
)
