"""The outbox: what other systems hear from us, written in the transaction of the change it
describes, and sent afterwards by workers: events (the feed and webhooks to client
systems) and emails to patients. Also the leases that keep scheduled jobs single."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from billing.adapters.models import Base, new_id, utcnow

# What a transaction leaves in `session.info` for the queue to act on after it commits:
# events for the relay, emails for a worker, webhook deliveries to hand to workers.
EVENTS_PUBLISHED = "billing.events_published"
EMAILS_QUEUED = "billing.emails_queued"
DELIVERIES_TO_SEND = "billing.deliveries_to_send"


class Event(Base):
    """Something another system may care about: `type` and the resource as the API shows it,
    less what events leave out (schemas.events.WITHHELD).

    `xid` (PostgreSQL: the writing transaction's id) orders the feed so that a reader
    never skips an event committed after it read past a later one.
    """

    __tablename__ = "events"
    __table_args__ = (
        Index("ix_events_type", "type"),
        Index("ix_events_order", "xid", "id"),
    )

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    public_id: Mapped[str] = mapped_column(String(32), unique=True, default=lambda: new_id("evt"))
    type: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    data: Mapped[str] = mapped_column(Text)  # JSON: {"object": {...}}
    xid: Mapped[int | None] = mapped_column(BigInteger)


class WebhookEndpoint(Base):
    """A client system's URL that hears about the event types it asked for. It is that
    client's own (`owner_client`: the `client` of the key that registered it; "" for one
    registered before owners were kept, which no client sees); its signing secret is kept
    sealed (billing.adapters.secrets_box)."""

    __tablename__ = "webhook_endpoints"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=lambda: new_id("we"))
    owner_client: Mapped[str] = mapped_column(String(64), index=True, default="")
    url: Mapped[str] = mapped_column(String(2048))
    description: Mapped[str | None] = mapped_column(String(200))
    event_types: Mapped[str] = mapped_column(Text)  # comma-separated, or "*"
    secret: Mapped[str] = mapped_column(String(255))  # "fernet:..." (or legacy plain text)
    status: Mapped[str] = mapped_column(String(16), default="enabled")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    failing_since: Mapped[datetime | None]
    disabled_at: Mapped[datetime | None]
    disabled_reason: Mapped[str | None] = mapped_column(String(200))
    deleted_at: Mapped[datetime | None]

    @property
    def types(self) -> list[str]:
        return [t for t in self.event_types.split(",") if t]

    def wants(self, event_type: str) -> bool:
        return "*" in self.types or event_type in self.types


class WebhookDelivery(Base):
    """One event owed to one endpoint, until it is delivered or given up."""

    __tablename__ = "webhook_deliveries"
    __table_args__ = (
        Index("ix_webhook_deliveries_due", "status", "next_attempt_at"),
        Index("ix_webhook_deliveries_endpoint", "endpoint_id", "created_at"),
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=lambda: new_id("whd"))
    endpoint_id: Mapped[str] = mapped_column(ForeignKey("webhook_endpoints.id"))
    event_id: Mapped[int] = mapped_column(ForeignKey("events.id"), index=True)
    status: Mapped[str] = mapped_column(String(16), default="pending")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(default=utcnow)
    lease_until: Mapped[datetime | None]
    last_attempt_at: Mapped[datetime | None]
    last_status_code: Mapped[int | None] = mapped_column(Integer)
    last_error: Mapped[str | None] = mapped_column(String(500))
    delivered_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class WebhookAttempt(Base):
    """The delivery log: one row per POST, with what came back."""

    __tablename__ = "webhook_attempts"

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    delivery_id: Mapped[str] = mapped_column(ForeignKey("webhook_deliveries.id"), index=True)
    attempted_at: Mapped[datetime] = mapped_column(default=utcnow)
    status_code: Mapped[int | None] = mapped_column(Integer)
    error: Mapped[str | None] = mapped_column(String(500))
    duration_ms: Mapped[int] = mapped_column(Integer, default=0)


class EmailMessage(Base):
    """One email to a patient, rendered when it was decided; sent once by a worker.

    `dedupe_key` (e.g. `reminder:in_...:7`) makes deciding it twice harmless.
    """

    __tablename__ = "email_messages"
    __table_args__ = (Index("ix_email_messages_due", "status", "next_attempt_at"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=lambda: new_id("em"))
    dedupe_key: Mapped[str] = mapped_column(String(128), unique=True)
    kind: Mapped[str] = mapped_column(String(32))
    invoice_id: Mapped[str | None] = mapped_column(ForeignKey("invoices.id"), index=True)
    ref: Mapped[str | None] = mapped_column(String(64))  # about no invoice: a sign-in's id
    to_address: Mapped[str] = mapped_column(String(254))
    subject: Mapped[str] = mapped_column(String(200))
    text_body: Mapped[str] = mapped_column(Text)
    html_body: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(16), default="pending")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(default=utcnow)
    lease_until: Mapped[datetime | None]
    sent_at: Mapped[datetime | None]
    last_error: Mapped[str | None] = mapped_column(String(500))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class JobLease(Base):
    """Who runs a scheduled job now, and until when: one runner at a time on every machine."""

    __tablename__ = "job_leases"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    holder: Mapped[str | None] = mapped_column(String(128))
    until: Mapped[datetime | None]
    last_started_at: Mapped[datetime | None]
    last_finished_at: Mapped[datetime | None]
    last_error: Mapped[str | None] = mapped_column(String(500))
    cursor: Mapped[str | None] = mapped_column(String(64))  # where a relay got to
