"""The audit trail: who changed what, and when, written in the transaction of the change.

Services call `record` next to the change they make, before they commit, so the row and
the change stand or fall together. Who is acting comes from the edge that took the call
(an API key, a finance user, an operator at the command line, Stripe's webhook, or the
service itself), set once per request or command with `act_as`.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from billing.adapters.models import AuditEvent, utcnow


@dataclass(frozen=True, slots=True)
class Actor:
    type: str
    name: str
    request_id: str | None = None


SYSTEM = Actor("system", "billing")
_actor: ContextVar[Actor] = ContextVar("billing_audit_actor", default=SYSTEM)


def act_as(actor: Actor) -> None:
    """From now on in this request, command or task, changes are made by `actor`."""
    _actor.set(actor)


def current_actor() -> Actor:
    return _actor.get()


@contextmanager
def acting(actor: Actor) -> Iterator[None]:
    """Changes inside the block are made by `actor`; the one before is restored after."""
    token = _actor.set(actor)
    try:
        yield
    finally:
        _actor.reset(token)


def record(session: Session, action: str, object_type: str, object_id: str, **details: Any) -> None:
    """Add an audit row to the session's transaction; it commits with the change."""
    session.add(AuditEvent(**row(action, object_type, object_id, **details)))


def row(action: str, object_type: str, object_id: str, **details: Any) -> dict[str, Any]:
    """The audit row's columns, made by the current actor now: for a caller that writes
    the row itself, in the statement of its change."""
    actor = _actor.get()
    return {
        "occurred_at": utcnow(),
        "actor_type": actor.type,
        "actor": actor.name[:254],
        "action": action,
        "object_type": object_type,
        "object_id": object_id[:64],
        "request_id": actor.request_id,
        "details": json.dumps(details, default=str, sort_keys=True),
    }


def record_export(session: Session, file_name: str) -> None:
    """A report leaving the service as a file: who took it, and which."""
    record(session, "report.exported", "report", file_name[:64], file_name=file_name)
    session.commit()


@dataclass(frozen=True, slots=True)
class AuditPage:
    data: list[AuditEvent]
    has_more: bool


def list_events(
    session: Session,
    *,
    limit: int = 50,
    starting_after: int | None = None,
    action: str | None = None,
    actor: str | None = None,
    object_id: str | None = None,
    occurred_gte: datetime | None = None,
    occurred_lt: datetime | None = None,
) -> AuditPage:
    """Newest first; `starting_after` is the id of the last event already seen."""
    statement = select(AuditEvent)
    if action:
        # `invoice.` asks for every action on invoices; `invoice.voided` for one.
        if action.endswith("."):
            statement = statement.where(AuditEvent.action.startswith(action, autoescape=True))
        else:
            statement = statement.where(AuditEvent.action == action)
    if actor:
        statement = statement.where(AuditEvent.actor == actor)
    if object_id:
        statement = statement.where(AuditEvent.object_id == object_id)
    if occurred_gte:
        statement = statement.where(AuditEvent.occurred_at >= occurred_gte)
    if occurred_lt:
        statement = statement.where(AuditEvent.occurred_at < occurred_lt)
    if starting_after is not None:
        statement = statement.where(AuditEvent.id < starting_after)
    rows = list(session.scalars(statement.order_by(AuditEvent.id.desc()).limit(limit + 1)))
    return AuditPage(data=rows[:limit], has_more=len(rows) > limit)


def as_dict(event: AuditEvent) -> dict[str, Any]:
    """The event as the API shows it, its details parsed."""
    return {
        "id": event.id,
        "occurred_at": event.occurred_at,
        "actor_type": event.actor_type,
        "actor": event.actor,
        "action": event.action,
        "object_type": event.object_type,
        "object_id": event.object_id,
        "request_id": event.request_id,
        "details": json.loads(event.details or "{}"),
    }
