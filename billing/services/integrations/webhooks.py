"""Webhooks to client systems: endpoints registered by API, each event owed to every
endpoint that wants it, delivered at least once by workers, signed like Stripe's.

A delivery is claimed with a lease before it is sent, so two workers never send it at the
same time; a worker that dies mid-send lets its lease run out and another sends it
again. Failures are retried after WEBHOOK_RETRY_BASE_SECONDS, doubling each time, for
three days; an endpoint that has failed for three days is disabled, and an event says so.

An endpoint is its client system's own: another client's is not found, not forbidden, so
that none learns what others registered. Hearing events needs `events:read` as well as
`webhooks:write`: an endpoint receives what the feed shows. Signing secrets are kept sealed
and opened only to sign; one sealed under a retired SECRET_KEY (or before secrets were
sealed) is sealed again under the current one when it is next opened.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol

from sqlalchemy import insert, or_, select, update
from sqlalchemy.orm import Session

from billing.adapters.models import utcnow
from billing.adapters.outbox import (
    DELIVERIES_TO_SEND,
    Event,
    WebhookAttempt,
    WebhookDelivery,
    WebhookEndpoint,
)
from billing.adapters.secrets_box import SecretBox, UnreadableSecret
from billing.adapters.webhook_sender import (
    IPNetwork,
    Sent,
    UnsafeDestination,
    WebhookSender,
    check,
)
from billing.domain import signatures
from billing.domain.errors import Conflict, Forbidden, NotFound, field_error
from billing.domain.events import (
    ABANDONED,
    DELIVERED,
    DELIVERING,
    DISABLED,
    ENABLED,
    FAILED,
    PENDING,
    retry_delay_seconds,
)
from billing.services.access import audit
from billing.services.integrations import events

HAND_OVER = DELIVERIES_TO_SEND  # session.info: give these to workers after commit
HEARING = "events:read"  # the scope that reads the feed: needed to have events sent too


class Caller(Protocol):
    """Who asks (billing.web.auth.Caller is one): the client system that owns what it
    registers, and the scopes of the key it asks with."""

    @property
    def client(self) -> str: ...

    @property
    def scopes(self) -> frozenset[str]: ...


@dataclass(frozen=True, slots=True)
class Delivering:
    sender: WebhookSender
    box: SecretBox
    retry_base_seconds: float = 60.0
    retry_window: timedelta = timedelta(days=3)
    disable_after: timedelta = timedelta(days=3)
    lease: timedelta = timedelta(seconds=60)


@dataclass(frozen=True, slots=True)
class NewEndpoint:
    """An endpoint just registered, and its signing secret in plain text: shown only now."""

    endpoint: WebhookEndpoint
    secret: str


def _may_hear(caller: Caller) -> None:
    if HEARING not in caller.scopes:
        raise Forbidden(
            "insufficient_scope",
            f"Receiving events needs the {HEARING} scope as well as webhooks:write: an "
            "endpoint hears what the event feed shows.",
        )


def create_endpoint(
    session: Session,
    caller: Caller,
    url: str,
    event_types: list[str],
    allowed: list[IPNetwork],
    box: SecretBox,
    description: str | None = None,
) -> NewEndpoint:
    """Register an endpoint of the caller's client system."""
    _may_hear(caller)
    try:
        check(url, allowed)
    except UnsafeDestination as error:
        raise field_error("unsafe_webhook_url", "url", str(error)) from None
    secret = signatures.new_secret()
    endpoint = WebhookEndpoint(
        owner_client=caller.client,
        url=url,
        event_types=",".join(event_types),
        description=description,
        secret=box.seal(secret),
        status=ENABLED,
        created_at=utcnow(),
    )
    session.add(endpoint)
    session.flush()
    audit.record(session, "webhook_endpoint.created", "webhook_endpoint", endpoint.id, url=url)
    session.commit()
    return NewEndpoint(endpoint, secret)


def get_endpoint(session: Session, caller: Caller, endpoint_id: str) -> WebhookEndpoint:
    """One of the caller's client's endpoints; another client's is not found either."""
    endpoint = session.get(WebhookEndpoint, endpoint_id)
    if (
        endpoint is None
        or endpoint.deleted_at is not None
        or endpoint.owner_client != caller.client
    ):
        raise NotFound("webhook_endpoint_not_found", f"No webhook endpoint {endpoint_id!r}.")
    return endpoint


def list_endpoints(session: Session, caller: Caller) -> list[WebhookEndpoint]:
    """The caller's client's endpoints, newest first."""
    return list(
        session.scalars(
            select(WebhookEndpoint)
            .where(
                WebhookEndpoint.owner_client == caller.client,
                WebhookEndpoint.deleted_at.is_(None),
            )
            .order_by(WebhookEndpoint.created_at.desc())
        )
    )


def delete_endpoint(session: Session, caller: Caller, endpoint_id: str) -> WebhookEndpoint:
    """Stop sending to an endpoint; what it was still owed is abandoned."""
    endpoint = get_endpoint(session, caller, endpoint_id)
    now = utcnow()
    endpoint.deleted_at = now
    _stop(session, endpoint, now, "deleted")
    audit.record(session, "webhook_endpoint.deleted", "webhook_endpoint", endpoint.id)
    session.commit()
    return endpoint


@dataclass(frozen=True, slots=True)
class DeliveryView:
    delivery: WebhookDelivery
    event: Event
    log: list[WebhookAttempt]


def list_deliveries(
    session: Session,
    caller: Caller,
    endpoint_id: str,
    limit: int = 50,
    starting_after: str | None = None,
) -> tuple[list[DeliveryView], bool]:
    """An endpoint's delivery log, newest first, each with every attempt made."""
    get_endpoint(session, caller, endpoint_id)
    statement = select(WebhookDelivery, Event).join(Event, Event.id == WebhookDelivery.event_id)
    statement = statement.where(WebhookDelivery.endpoint_id == endpoint_id)
    if starting_after:
        after = session.get(WebhookDelivery, starting_after)
        if after is None or after.endpoint_id != endpoint_id:
            raise NotFound("delivery_not_found", f"No delivery {starting_after!r}.")
        statement = statement.where(
            (WebhookDelivery.created_at < after.created_at)
            | ((WebhookDelivery.created_at == after.created_at) & (WebhookDelivery.id < after.id))
        )
    rows = session.execute(
        statement.order_by(WebhookDelivery.created_at.desc(), WebhookDelivery.id.desc()).limit(
            limit + 1
        )
    ).all()
    views = [DeliveryView(d, e, _log(session, d.id)) for d, e in rows[:limit]]
    return views, len(rows) > limit


def _log(session: Session, delivery_id: str) -> list[WebhookAttempt]:
    return list(
        session.scalars(
            select(WebhookAttempt)
            .where(WebhookAttempt.delivery_id == delivery_id)
            .order_by(WebhookAttempt.id)
        )
    )


def redeliver(
    session: Session, caller: Caller, event_id: str, endpoint_id: str | None = None
) -> list[DeliveryView]:
    """Send an event again now, to the caller's client's endpoints that want its type: the
    one named, or every enabled one."""
    _may_hear(caller)
    event = events.get_event(session, event_id)
    if endpoint_id is not None:
        targets = [get_endpoint(session, caller, endpoint_id)]
        if targets[0].status != ENABLED:
            raise field_error("webhook_endpoint_disabled", "endpoint_id", "It is disabled.")
        if not targets[0].wants(event.type):
            raise Conflict(
                "event_not_subscribed",
                f"Endpoint {endpoint_id} does not subscribe to {event.type} events; "
                "it is sent only the types it asked for.",
            )
    else:
        targets = [e for e in list_endpoints(session, caller) if e.status == ENABLED]
    made = [
        WebhookDelivery(endpoint_id=t.id, event_id=event.id, status=PENDING, attempts=0)
        for t in targets
        if t.wants(event.type)
    ]
    session.add_all(made)
    session.flush()
    audit.record(session, "event.redelivered", "event", event.public_id, deliveries=len(made))
    session.info.setdefault(HAND_OVER, []).extend(d.id for d in made)  # to workers, now
    session.commit()
    return [DeliveryView(d, event, []) for d in made]


FRESH_GRACE = timedelta(seconds=5)


def due(
    session: Session,
    now: datetime | None = None,
    limit: int = 500,
    fresh_grace: timedelta = FRESH_GRACE,
) -> list[str]:
    """Deliveries whose (next) attempt is due, or whose worker went away mid-send. A new
    one is handed to a worker when it is made, so it counts only once `fresh_grace` has
    passed without its first attempt (its message lost as the broker went away), and
    then once per `fresh_grace` at most (`resending` marks it): a backlog is not queued
    over and over."""
    now = now or utcnow()
    waiting = (WebhookDelivery.status == PENDING) & (WebhookDelivery.next_attempt_at <= now)
    retry = waiting & (WebhookDelivery.attempts > 0)
    lost = (
        waiting
        & (WebhookDelivery.created_at <= now - fresh_grace)
        & or_(WebhookDelivery.lease_until.is_(None), WebhookDelivery.lease_until < now)
    )
    stranded = (WebhookDelivery.status == DELIVERING) & (WebhookDelivery.lease_until < now)
    return list(
        session.scalars(
            select(WebhookDelivery.id)
            .where(or_(retry, lost, stranded))
            .order_by(WebhookDelivery.next_attempt_at)
            .limit(limit)
        )
    )


def resending(
    session: Session, delivery_ids: list[str], fresh_grace: timedelta = FRESH_GRACE
) -> None:
    """`due`'s deliveries are being queued again: a waiting one is not again for
    `fresh_grace` (its lease, unused while it waits, says so; a worker's claim ignores it)."""
    if delivery_ids:
        session.execute(
            update(WebhookDelivery)
            .where(WebhookDelivery.id.in_(delivery_ids), WebhookDelivery.status == PENDING)
            .values(lease_until=utcnow() + fresh_grace)
        )
    session.commit()


def body_of(event: Event) -> bytes:
    """The event as the feed shows it: what a delivery POSTs."""
    return json.dumps(
        {
            "id": event.public_id,
            "type": event.type,
            "created_at": event.created_at.isoformat(),
            "data": events.object_of(event),
        },
        separators=(",", ":"),
    ).encode()


def deliver(session: Session, delivering: Delivering, delivery_id: str) -> str:
    """Send one delivery if it is due and nobody else is sending it; its status after."""
    now = utcnow()
    lease_until = now + delivering.lease
    claimed = session.execute(
        update(WebhookDelivery)
        .where(
            WebhookDelivery.id == delivery_id,
            or_(
                (WebhookDelivery.status == PENDING) & (WebhookDelivery.next_attempt_at <= now),
                (WebhookDelivery.status == DELIVERING) & (WebhookDelivery.lease_until < now),
            ),
        )
        .values(status=DELIVERING, lease_until=lease_until, last_attempt_at=now)
        .returning(WebhookDelivery.endpoint_id, WebhookDelivery.event_id)
    ).one_or_none()
    if claimed is None:
        status = session.scalar(
            select(WebhookDelivery.status).where(WebhookDelivery.id == delivery_id)
        )
        session.commit()
        return status or "missing"
    endpoint, event = session.execute(
        select(WebhookEndpoint, Event)
        .join(WebhookDelivery, WebhookDelivery.endpoint_id == WebhookEndpoint.id)
        .join(Event, Event.id == WebhookDelivery.event_id)
        .where(WebhookDelivery.id == delivery_id)
    ).one()
    if endpoint.status != ENABLED:
        session.execute(
            update(WebhookDelivery)
            .where(WebhookDelivery.id == delivery_id)
            .values(status=ABANDONED, lease_until=None)
        )
        session.commit()
        return ABANDONED
    try:
        secret = _signing_secret(endpoint, delivering.box)
    except UnreadableSecret as error:
        session.commit()
        return _record(session, delivering, delivery_id, lease_until, Sent(None, str(error), 0))
    body = body_of(event)
    headers = {
        "Content-Type": "application/json",
        "User-Agent": "clinic-billing-webhooks/1",
        signatures.HEADER: signatures.sign(secret, body, int(now.timestamp())),
        "Billing-Event-Id": event.public_id,
        "Billing-Delivery-Id": delivery_id,
    }
    url = endpoint.url
    session.commit()  # no transaction stays open while the endpoint answers
    sent = delivering.sender.post(url, body, headers)
    if sent.ok and _delivered(session, delivery_id, endpoint.id, lease_until, sent):
        return DELIVERED
    return _record(session, delivering, delivery_id, lease_until, sent)


def reseal_secrets(session: Session, box: SecretBox) -> int:
    """Seal every endpoint's secret under the current SECRET_KEY (after a rotation, before
    the old key leaves SECRET_KEY_FALLBACKS); how many were sealed again."""
    resealed = 0
    for endpoint in session.scalars(select(WebhookEndpoint).with_for_update()):
        opened = box.open(endpoint.secret)
        if opened.stale:
            endpoint.secret = box.seal(opened.plain)
            resealed += 1
    session.commit()
    return resealed


def _signing_secret(endpoint: WebhookEndpoint, box: SecretBox) -> str:
    """The endpoint's secret in plain text, sealed again under the current SECRET_KEY when it
    was under a retired one or not sealed at all (committed with the delivery's claim)."""
    opened = box.open(endpoint.secret)
    if opened.stale:
        endpoint.secret = box.seal(opened.plain)
    return opened.plain


def _delivered(
    session: Session, delivery_id: str, endpoint_id: str, lease_until: datetime, sent: Sent
) -> bool:
    """The common case in three statements: log it, mark it delivered (if our lease still
    stands), and the endpoint is no longer failing."""
    now = utcnow()
    session.execute(
        insert(WebhookAttempt).values(
            delivery_id=delivery_id,
            attempted_at=now,
            status_code=sent.status_code,
            duration_ms=sent.duration_ms,
        )
    )
    ours = session.execute(
        update(WebhookDelivery)
        .where(
            WebhookDelivery.id == delivery_id,
            WebhookDelivery.status == DELIVERING,
            WebhookDelivery.lease_until == lease_until,
        )
        .values(
            status=DELIVERED,
            delivered_at=now,
            attempts=WebhookDelivery.attempts + 1,
            last_status_code=sent.status_code,
            last_error=None,
            lease_until=None,
        )
        .returning(WebhookDelivery.id)
    ).scalar_one_or_none()
    if ours is None:  # our lease ran out and another worker took it over: theirs now
        session.commit()
        return True
    session.execute(
        update(WebhookEndpoint)
        .where(WebhookEndpoint.id == endpoint_id, WebhookEndpoint.failing_since.is_not(None))
        .values(failing_since=None)
    )
    session.commit()
    return True


def _record(
    session: Session, delivering: Delivering, delivery_id: str, lease_until: datetime, sent: Sent
) -> str:
    now = utcnow()
    session.add(
        WebhookAttempt(
            delivery_id=delivery_id,
            attempted_at=now,
            status_code=sent.status_code,
            error=sent.error,
            duration_ms=sent.duration_ms,
        )
    )
    delivery = session.scalars(
        select(WebhookDelivery)
        .where(WebhookDelivery.id == delivery_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    ).one()
    endpoint = session.scalars(
        select(WebhookEndpoint)
        .where(WebhookEndpoint.id == delivery.endpoint_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    ).one()
    if delivery.status != DELIVERING or delivery.lease_until != lease_until:
        session.commit()  # our lease ran out and another worker took it over: theirs now
        return delivery.status
    delivery.attempts += 1
    delivery.last_status_code, delivery.last_error = sent.status_code, sent.error
    delivery.lease_until = None
    if sent.ok:
        delivery.status, delivery.delivered_at = DELIVERED, now
        endpoint.failing_since = None
        session.commit()
        return DELIVERED
    delay = timedelta(seconds=retry_delay_seconds(delivering.retry_base_seconds, delivery.attempts))
    if now + delay - delivery.created_at > delivering.retry_window:
        delivery.status = FAILED
    else:
        delivery.status, delivery.next_attempt_at = PENDING, now + delay
    endpoint.failing_since = endpoint.failing_since or now
    if endpoint.status == ENABLED and now - endpoint.failing_since >= delivering.disable_after:
        _stop(session, endpoint, now, "failing for 3 days")
        delivery.status = ABANDONED
        audit.record(session, "webhook_endpoint.disabled", "webhook_endpoint", endpoint.id)
        events.publish(session, "webhook_endpoint.disabled", "webhook_endpoint", endpoint)
    session.commit()
    return delivery.status


def _stop(session: Session, endpoint: WebhookEndpoint, now: datetime, reason: str) -> None:
    """Disable an endpoint and give up what it was still owed."""
    endpoint.status, endpoint.disabled_at, endpoint.disabled_reason = DISABLED, now, reason
    session.execute(
        update(WebhookDelivery)
        .where(
            WebhookDelivery.endpoint_id == endpoint.id,
            WebhookDelivery.status.in_((PENDING, DELIVERING)),
        )
        .values(status=ABANDONED, lease_until=None)
    )
