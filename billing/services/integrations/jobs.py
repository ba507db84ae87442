"""One runner at a time for each scheduled job, on every machine: a lease in the database.

A job takes its lease (a row of job_leases) only when nobody holds it or its holder's
lease ran out (a crashed worker); it gives it back when done. So beat schedulers on
several machines, or a job that outlives its interval, never run one job twice at once.
A job that saves its progress (`move_cursor`) renews its lease with it, so its lease can
be short: a holder that dies stops everyone for no longer than that.
"""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import or_, update
from sqlalchemy.orm import Session

from billing.adapters.db import dialect_insert
from billing.adapters.models import utcnow
from billing.adapters.outbox import JobLease


@dataclass(slots=True)
class Lease:
    name: str
    holder: str
    cursor: str | None
    ttl: timedelta


def _holder() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def take(session: Session, name: str, ttl: timedelta, now: datetime | None = None) -> Lease | None:
    """The job's lease, or None when someone else holds it."""
    now = now or utcnow()
    insert = dialect_insert(session)
    session.execute(
        insert(JobLease).values(name=name).on_conflict_do_nothing(index_elements=["name"])
    )
    holder = _holder()
    taken = session.execute(
        update(JobLease)
        .where(JobLease.name == name, or_(JobLease.until.is_(None), JobLease.until < now))
        .values(holder=holder, until=now + ttl, last_started_at=now)
        .returning(JobLease.cursor)
    ).one_or_none()
    session.commit()
    return Lease(name, holder, taken[0], ttl) if taken is not None else None


def give_back(session: Session, lease: Lease, error: str | None = None) -> None:
    """Done (or failed with `error`): the next run may start."""
    session.rollback()
    session.execute(
        update(JobLease)
        .where(JobLease.name == lease.name, JobLease.holder == lease.holder)
        .values(
            until=None,
            holder=None,
            last_finished_at=utcnow(),
            last_error=error[:500] if error else None,
        )
    )
    session.commit()


class LeaseLost(RuntimeError):
    """The lease ran out and another runner took it: this one's work must not commit."""


def move_cursor(session: Session, lease: Lease, cursor: str) -> None:
    """In the caller's transaction: how far the job got, saved with the work it did; the
    lease lasts its ttl again from now (the holder is alive). LeaseLost, when another
    runner holds it now: the caller's transaction then rolls back, its work undone."""
    moved = session.execute(
        update(JobLease)
        .where(JobLease.name == lease.name, JobLease.holder == lease.holder)
        .values(cursor=cursor, until=utcnow() + lease.ttl)
        .returning(JobLease.name)
    ).one_or_none()
    if moved is None:
        raise LeaseLost(f"the lease of {lease.name} was taken over")
    lease.cursor = cursor


@contextmanager
def exclusive(session: Session, name: str, ttl: timedelta) -> Iterator[Lease | None]:
    """`with exclusive(...) as lease:` the body runs with the lease, or gets None."""
    lease = take(session, name, ttl)
    if lease is None:
        yield None
        return
    try:
        yield lease
    except Exception as error:
        give_back(session, lease, f"{type(error).__name__}: {error}")
        raise
    give_back(session, lease)
