"""The task queue: Celery, wired as Flask's documentation shows (each task runs in an app
context), with Redis as the broker when REDIS_URL (or CELERY_BROKER_URL) is set.

With neither, `make run` runs a worker and the scheduler in its own process on an
in-memory broker: what must survive a restart is in our tables (the outbox), which the
scheduler's sweep sends again.
"""

from __future__ import annotations

import logging
import threading
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

from celery import Celery, Task
from celery.beat import EmbeddedService
from celery.schedules import crontab
from flask import Flask
from sqlalchemy import event
from sqlalchemy.orm import Session, sessionmaker

from billing.services.integrations import emails, events, webhooks

log = logging.getLogger("billing.queue")
MEMORY = "memory://"


def schedule(config: dict[str, Any]) -> dict[str, Any]:
    """What beat runs, and how often (each job also holds a lease while it runs)."""
    every = {
        "sweep": timedelta(seconds=config["SWEEP_SECONDS"]),
        "reconcile_pending": timedelta(minutes=5),
        "settle_bookings": timedelta(minutes=5),
        "stripe_sync": crontab(minute=7),  # hourly
        "expire": timedelta(minutes=15),
        "reminders": crontab(minute=17),  # hourly
    }
    return {name: {"task": f"billing.{name}", "schedule": when} for name, when in every.items()}


def init_app(app: Flask) -> Celery:
    class FlaskTask(Task):  # type: ignore[misc]  # Celery ships no type hints
        def __call__(self, *args: object, **kwargs: object) -> object:
            with app.app_context():
                return self.run(*args, **kwargs)

    celery = Celery(app.import_name, task_cls=FlaskTask)
    celery.conf.update(
        broker_url=app.config["CELERY_BROKER_URL"] or MEMORY,
        task_default_queue=app.config["TASK_QUEUE"],
        task_ignore_result=True,
        # A task is acknowledged when it has run, so a worker that dies mid-task leaves
        # it for another; every task here is safe to run twice.
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        broker_connection_retry_on_startup=True,
        broker_transport_options={"visibility_timeout": 3600},
        beat_schedule=schedule(app.config),
        timezone="UTC",
        worker_hijack_root_logger=False,
    )
    celery.set_default()
    app.extensions["celery"] = celery
    from billing import tasks  # noqa: F401  (registers them with this Celery app)

    return celery


class Kicks:
    """After a commit that wrote events or emails, ask a worker to send them now (at most
    every `gap` seconds a process; the scheduler's sweep catches anything else)."""

    def __init__(self, gap: float = 0.05) -> None:
        self.gap = gap
        self.last: dict[str, float] = {}

    def __call__(self, session: Session) -> None:
        from billing import tasks

        for delivery_id in session.info.pop(webhooks.HAND_OVER, []):
            self._send(tasks.deliver_webhook, delivery_id)
        for flag, task in (
            (events.PUBLISHED, tasks.relay_events),
            (emails.PUBLISHED, tasks.send_emails),
        ):
            wrote = session.info.pop(flag, False)
            if wrote and time.monotonic() - self.last.get(flag, 0) >= self.gap:
                self.last[flag] = time.monotonic()
                self._send(task)

    @staticmethod
    def _send(task: Any, *args: object) -> None:
        try:
            task.delay(*args)
        except Exception as error:  # the broker away: the sweep sends it later
            log.warning("could not queue %s: %s", task.name, error)


def kick_after_commit(factory: sessionmaker[Session]) -> None:
    kicks = Kicks()
    event.listen(factory, "after_commit", kicks)
    event.listen(factory, "after_rollback", _forget)


def _forget(session: Session) -> None:
    for flag in (events.PUBLISHED, emails.PUBLISHED, webhooks.HAND_OVER):
        session.info.pop(flag, None)


def run_embedded(celery: Celery, instance_path: str) -> None:
    """`make run`: a worker and the scheduler in threads of this process."""
    worker = celery.Worker(
        pool="solo",
        concurrency=1,
        without_heartbeat=True,
        without_mingle=True,
        without_gossip=True,
        loglevel="WARNING",
        quiet=True,
    )
    threading.Thread(target=worker.start, name="celery-worker", daemon=True).start()
    beat = EmbeddedService(
        celery, thread=True, schedule_filename=str(Path(instance_path) / "celerybeat-schedule")
    )
    beat.daemon = True
    beat.start()
