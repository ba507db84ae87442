"""On PostgreSQL the feed shows an event once every transaction that began before it (on
the whole server) has ended: a test running beside this one may hold one for a moment.
Tests that read the feed right after writing wait for that moment to pass."""

from __future__ import annotations

import time

from flask import Flask
from sqlalchemy import func, select

from billing.adapters import db
from billing.adapters.outbox import Event
from billing.services.integrations.events import _settled


def wait_until_settled(app: Flask, seconds: float = 15.0) -> None:
    deadline = time.monotonic() + seconds
    with app.app_context():
        session = db.session()
        while True:
            every = session.scalar(select(func.count()).select_from(Event))
            shown = session.scalar(select(func.count()).select_from(Event).where(_settled(session)))
            session.rollback()
            if every == shown:
                return
            if time.monotonic() > deadline:
                raise AssertionError(f"{every - shown} event(s) still unsettled after {seconds} s")
            time.sleep(0.05)
