"""Idempotency-Key: a replay returns what the first request created, never a second one."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from billing.adapters.db import dialect_insert
from billing.adapters.models import IdempotencyKey
from billing.domain.errors import Conflict, Unprocessable

REPLAY_WAIT = timedelta(seconds=20)  # a replay waits this long for the first request
STALE_AFTER = timedelta(minutes=2)  # a request pending this long died: recovery may take over


@dataclass(frozen=True, slots=True)
class IdempotencyRequest:
    """One client's key and a fingerprint of the request it came with."""

    api_key_id: int
    key: str
    fingerprint: str


def fingerprint(method: str, path: str, body: Any) -> str:
    """Same method, path and JSON (whatever its key order or spacing) give the same print."""
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(f"{method} {path}\n{canonical}".encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class Claim:
    """Either this request owns the key (`row_id`) or it replays an earlier one."""

    row_id: int | None = None
    replay_of: str | None = None


def claim(session: Session, request: IdempotencyRequest, resource_type: str) -> Claim:
    """Take the key inside the caller's transaction.

    A concurrent holder makes this wait on the unique index until it commits
    (then this is a replay) or rolls back (then this request owns the key).
    """
    insert = dialect_insert(session)
    statement = (
        insert(IdempotencyKey)
        .values(
            api_key_id=request.api_key_id,
            key=request.key,
            fingerprint=request.fingerprint,
            resource_type=resource_type,
        )
        .on_conflict_do_nothing(index_elements=["api_key_id", "key"])
        .returning(IdempotencyKey.id)
    )
    row_id = session.execute(statement).scalar_one_or_none()
    if row_id is not None:
        return Claim(row_id=row_id)
    existing = session.scalars(
        select(IdempotencyKey).where(
            IdempotencyKey.api_key_id == request.api_key_id, IdempotencyKey.key == request.key
        )
    ).one()
    if existing.fingerprint != request.fingerprint or existing.resource_type != resource_type:
        raise Unprocessable(
            "idempotency_key_reused",
            "This Idempotency-Key was already used with a different request.",
            {"Idempotency-Key": ["already used with a different request body"]},
        )
    if existing.resource_id is None:
        raise Conflict(
            "idempotency_request_in_progress",
            "A request with this Idempotency-Key is still being processed; retry shortly.",
        )
    return Claim(replay_of=existing.resource_id)


def is_stuck(status: str, updated_at: datetime) -> bool:
    """A payment or refund whose outcome is unknown, or pending so long that the request
    that sent it has died: recovery may settle it."""
    stale = datetime.now(UTC) - updated_at > STALE_AFTER
    return status == "unknown" or (status == "pending" and stale)


def complete(session: Session, owned: Claim, resource_id: str) -> None:
    """Record what the request created, in the same transaction that created it."""
    session.execute(
        update(IdempotencyKey)
        .where(IdempotencyKey.id == owned.row_id)
        .values(resource_id=resource_id)
    )
