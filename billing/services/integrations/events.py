"""The outbox of events: written in the transaction of the change, read as a feed, and
relayed into webhook deliveries by one relay at a time.

The feed is ordered by the writing transaction (PostgreSQL's transaction id) and then by
the event's number, and shows only events of transactions that have ended, so a reader
that pages through it with `starting_after` never skips an event that a slower
transaction commits after the reader went past it. SQLite writes one transaction at a
time, so there the number alone is the order.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, func, insert, select, text, true, tuple_
from sqlalchemy.orm import Session

from billing.adapters.models import new_id, utcnow
from billing.adapters.outbox import EVENTS_PUBLISHED, Event, WebhookDelivery, WebhookEndpoint
from billing.domain.errors import NotFound
from billing.domain.events import ENABLED
from billing.services.integrations import jobs
from schemas.events import event_object, snapshot

PUBLISHED = EVENTS_PUBLISHED  # session.info: tell the relay after the commit
RELAY = "relay-events"
# Short: each batch renews it, and a relay that dies holds every delivery back this long.
RELAY_TTL = timedelta(seconds=10)


def publish(session: Session, event_type: str, kind: str, obj: Any) -> str:
    """In the caller's transaction: `obj` (a `kind` of resource) changed as `event_type`;
    the event's id."""
    event = row(event_type, kind, snapshot(kind, obj))
    # Core on the session's connection: the ORM's bulk path costs more than the insert.
    session.connection().execute(insert(Event).values(**event))
    published(session)
    return str(event["public_id"])


def row(event_type: str, kind: str, shown: dict[str, Any]) -> dict[str, Any]:
    """An event's columns, for a caller that writes the row in the statement of its change
    (`shown`: the `kind` of resource as its endpoint shows it). Every event is made here,
    so every one carries only what schemas.events.WITHHELD leaves of the resource."""
    return {
        "public_id": new_id("evt"),
        "type": event_type,
        "created_at": utcnow(),
        "data": json.dumps({"object": event_object(kind, shown)}, default=str),
    }


def published(session: Session) -> None:
    """The session's transaction wrote events: the relay hears of them after the commit."""
    session.info[PUBLISHED] = True


@dataclass(frozen=True, slots=True)
class EventPage:
    data: list[Event]
    has_more: bool


def _position() -> Any:
    return tuple_(func.coalesce(Event.xid, 0), Event.id)


def _settled(session: Session) -> ColumnElement[bool]:
    """Events of transactions that have ended: no earlier one can still appear."""
    if session.get_bind().dialect.name != "postgresql":
        return true()
    horizon = text("pg_snapshot_xmin(pg_current_snapshot())::text::bigint")
    return Event.xid < horizon


def get_event(session: Session, public_id: str) -> Event:
    event = session.scalars(select(Event).where(Event.public_id == public_id)).one_or_none()
    if event is None:
        raise NotFound("event_not_found", f"No event {public_id!r}.")
    return event


def list_events(
    session: Session,
    *,
    limit: int = 50,
    starting_after: str | None = None,
    type: str | None = None,
) -> EventPage:
    """The feed, oldest first; `starting_after` is the last event the caller has."""
    statement = select(Event).where(_settled(session))
    if type:
        statement = statement.where(Event.type == type)
    if starting_after:
        after = get_event(session, starting_after)
        statement = statement.where(_position() > tuple_(after.xid or 0, after.id))
    rows = list(
        session.scalars(statement.order_by(func.coalesce(Event.xid, 0), Event.id).limit(limit + 1))
    )
    return EventPage(rows[:limit], has_more=len(rows) > limit)


def object_of(event: Event) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(event.data)
    return data


def relay(session: Session, batch: int = 500, now: datetime | None = None) -> list[str]:
    """Owe each new event to every enabled endpoint that wants it; the deliveries made.

    One relay at a time (a lease); how far it got is saved with the deliveries it made,
    so a crash in between makes neither a gap nor a second delivery.
    """
    made: list[str] = []
    with jobs.exclusive(session, RELAY, RELAY_TTL) as lease:
        if lease is None:
            return made
        while True:
            cursor = _parse(lease.cursor)
            statement = select(Event).where(_settled(session))
            if cursor is not None:
                statement = statement.where(_position() > tuple_(*cursor))
            events = list(
                session.scalars(
                    statement.order_by(func.coalesce(Event.xid, 0), Event.id).limit(batch)
                )
            )
            if not events:
                session.commit()
                return made
            endpoints = list(
                session.scalars(
                    select(WebhookEndpoint).where(
                        WebhookEndpoint.status == ENABLED, WebhookEndpoint.deleted_at.is_(None)
                    )
                )
            )
            rows: list[dict[str, Any]] = [
                {"id": new_id("whd"), "endpoint_id": ep.id, "event_id": event.id}
                for event in events
                for ep in endpoints
                if ep.wants(event.type) and ep.created_at <= event.created_at
            ]
            moment = now or utcnow()
            if rows:
                session.execute(
                    insert(WebhookDelivery),
                    [
                        {**row, "status": "pending", "attempts": 0}
                        | {"created_at": moment, "next_attempt_at": moment}
                        for row in rows
                    ],
                )
            last = events[-1]
            jobs.move_cursor(session, lease, f"{last.xid or 0}:{last.id}")
            session.commit()
            made += [row["id"] for row in rows]


def _parse(cursor: str | None) -> tuple[int, int] | None:
    if not cursor:
        return None
    xid, number = cursor.split(":")
    return int(xid), int(number)
