"""The task queue: Celery, wired as Flask's documentation shows (each task runs in an app
context). The broker is CELERY_BROKER_URL: RabbitMQ (`amqp://...`) in production, or
Redis (REDIS_URL) where no RabbitMQ runs.

A broker outage of any length costs only delay: workers reconnect every second or two,
forever (Celery's own waits grow to 30 s, and it gives up after 100 tries); a commit's
hint to the workers is skipped while the broker is away (a breaker), and the scheduler's
sweep sends whatever is owed once it is back, from our own tables (the outbox). RabbitMQ
is the broker to run: its transport hands a dead worker's unacknowledged tasks to another
at once, and survives losing its connection, where kombu's Redis transport has been seen
to stop consuming for good ("Couldn't ack", then an AttributeError).

With no broker, `make run` runs a worker and the scheduler in its own process on an
in-memory broker: what must survive a restart is in our tables, which the sweep resends.
"""

from __future__ import annotations

import functools
import logging
import threading
import time
import warnings
from datetime import timedelta
from pathlib import Path
from typing import Any

from celery import Celery, Task
from celery.beat import EmbeddedService
from celery.exceptions import SecurityWarning
from celery.schedules import crontab
from celery.worker.consumer import Consumer
from flask import Flask
from sqlalchemy import event
from sqlalchemy.orm import Session, sessionmaker

from billing.adapters import breakers
from billing.adapters.outbox import DELIVERIES_TO_SEND, EMAILS_QUEUED, EVENTS_PUBLISHED

log = logging.getLogger("billing.queue")
MEMORY = "memory://localhost/"  # a host named, or kombu says it assumed one


def schedule(config: dict[str, Any]) -> dict[str, Any]:
    """What beat runs, and how often (each job also holds a lease while it runs)."""
    every = {
        "sweep": timedelta(seconds=config["SWEEP_SECONDS"]),
        "reconcile_pending": timedelta(minutes=5),
        "settle_bookings": timedelta(minutes=5),
        "apply_credit": timedelta(minutes=1),
        "update_estimates": timedelta(minutes=1),
        "run_schedule": timedelta(minutes=1),
        "stripe_sync": crontab(minute=7),  # hourly
        "expire": timedelta(minutes=15),
        "reminders": crontab(minute=17),  # hourly
        "statements": crontab(minute=37, hour="*/6"),  # a month's, once it has ended
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
        broker_connection_max_retries=None,  # never give up on the broker
        broker_heartbeat=10,  # RabbitMQ: a silently dead link is noticed within seconds
        worker_consumer="billing.adapters.queue:PromptConsumer",
        worker_cancel_long_running_tasks_on_connection_loss=True,
        broker_transport_options={
            "visibility_timeout": 3600,  # Redis: when an unacknowledged task is given again
            "socket_timeout": 5,
            "socket_connect_timeout": 5,
        },
        beat_schedule=schedule(app.config),
        timezone="UTC",
        worker_hijack_root_logger=False,
    )
    celery.set_default()
    app.extensions["celery"] = celery
    from billing import tasks  # noqa: F401  (registers them with this Celery app)

    return celery


class PromptConsumer(Consumer):  # type: ignore[misc]  # Celery ships no type hints
    """Celery's consumer, trying the broker again every second or two while it is away
    (Celery's own waits grow to 30 s: a worker could idle half a minute after the broker
    came back)."""

    def ensure_connected(self, conn: Any) -> Any:
        conn.ensure_connection = functools.partial(
            conn.ensure_connection, interval_start=0.5, interval_step=0.5, interval_max=2
        )
        return super().ensure_connected(conn)


class Kicks:
    """After a commit that wrote events or emails, ask a worker to send them now (at most
    every `gap` seconds a process; the scheduler's sweep catches anything else). Only a
    hint: with the broker away it is skipped at once (a breaker), never waited for."""

    def __init__(self, gap: float = 0.05) -> None:
        self.gap = gap
        self.last: dict[str, float] = {}
        self.broker = breakers.breaker("broker")

    def __call__(self, session: Session) -> None:
        from billing import tasks

        for delivery_id in session.info.pop(DELIVERIES_TO_SEND, []):
            self._send(tasks.deliver_webhook, delivery_id)
        for flag, task in (
            (EVENTS_PUBLISHED, tasks.relay_events),
            (EMAILS_QUEUED, tasks.send_emails),
        ):
            wrote = session.info.pop(flag, False)
            if wrote and time.monotonic() - self.last.get(flag, 0) >= self.gap:
                self.last[flag] = time.monotonic()
                self._send(task)

    def _send(self, task: Any, *args: object) -> None:
        try:
            # No retries: a hint that waits would hold the request that committed.
            self.broker.call(task.apply_async, args, retry=False)
        except breakers.Open:
            return  # the broker failed moments ago: the sweep sends it on its return
        except Exception as error:  # the broker away: the sweep sends it later
            log.warning("could not queue %s: %s", task.name, error)


def kick_after_commit(factory: sessionmaker[Session]) -> None:
    kicks = Kicks()
    event.listen(factory, "after_commit", kicks)
    event.listen(factory, "after_rollback", _forget)


def _forget(session: Session) -> None:
    for flag in (EVENTS_PUBLISHED, EMAILS_QUEUED, DELIVERIES_TO_SEND):
        session.info.pop(flag, None)


def run_embedded(celery: Celery, instance_path: str) -> None:
    """`make run`: a worker and the scheduler in threads of this process, quietly: the
    process's own output stays its own (Celery would take print() over as its log), and a
    developer running as root is not warned about a worker that only runs here."""
    celery.conf.worker_redirect_stdouts = False
    warnings.filterwarnings("ignore", category=SecurityWarning)
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
