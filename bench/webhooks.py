"""Benchmark webhook delivery: events per second through Celery workers to a receiver on
loopback, and the latency from the commit of an event to its arrival (p50, p99).

Run it on demand, never from the test suite:

    make bench-webhooks                     # or: .venv/bin/python bench/webhooks.py
    .venv/bin/python bench/webhooks.py --events 4000 --rate 100 --concurrency 4

It needs the local PostgreSQL (127.0.0.1:5432, user postgres) and a broker: RabbitMQ
(127.0.0.1:5672, the production broker) by default, `--broker redis://...` for Redis.
It creates a throwaway database and a queue of its own, starts two Celery workers with
`--concurrency` processes each (4 by default; the first runs the scheduler too) and a
receiver that answers 200 and checks each signature, registers the receiver as a webhook
endpoint for every event, then:

1. backlog: commits `--events` events (each in its own transaction, as requests would)
   without telling the workers, then tells them once, and measures deliveries per second
   from then to the last arrival: what the workers can send;
2. paced: commits events at `--rate` a second for `--seconds`, and measures the latency
   from each commit to its arrival at the receiver;
3. a worker killed: the same pace, and the second worker SIGKILLed half way through (it
   may hold the relay's lease or a delivery's); the latency of the events committed from
   the kill on (p50, p99, max) says how long a dead holder holds deliveries back.

Every event must arrive exactly once (at least once is promised; more would show as a
repeat) with a good signature, or the run is not valid (exit 2).
"""

from __future__ import annotations

import argparse
import http.server
import os
import signal
import statistics
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from common import (  # noqa: E402
    EXIT_INTERRUPTED,
    EXIT_INVALID,
    EXIT_MET,
    BenchError,
    ignore_interrupts,
    interrupt,
    throwaway_database,
)

from billing import create_app  # noqa: E402
from billing.adapters import db  # noqa: E402
from billing.adapters.migrate import upgrade  # noqa: E402
from billing.adapters.standin import free_port  # noqa: E402
from billing.adapters.webhook_sender import networks  # noqa: E402
from billing.domain import signatures  # noqa: E402
from billing.services.integrations import events, webhooks  # noqa: E402
from billing.services.integrations.settings import secret_box  # noqa: E402
from billing.web.auth import Caller  # noqa: E402

DEFAULT_POSTGRES = "postgresql://postgres@127.0.0.1:5432/postgres"
DEFAULT_BROKER = "amqp://guest:guest@127.0.0.1:5672//"


class Arrivals:
    """The receiver's record: when each event first arrived, and any repeat or bad one."""

    def __init__(self, secret: str) -> None:
        self.secret = secret
        self.first: dict[str, float] = {}
        self.repeats = 0
        self.bad = 0
        self.lock = threading.Lock()

    def serve(self, port: int) -> http.server.ThreadingHTTPServer:
        arrivals = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *_args: Any) -> None:
                pass

            def do_POST(self) -> None:
                at = time.time()
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                good = signatures.verify(
                    arrivals.secret, body, self.headers.get(signatures.HEADER, ""), int(at)
                )
                event_id = self.headers.get("Billing-Event-Id", "")
                with arrivals.lock:
                    if not good:
                        arrivals.bad += 1
                    elif event_id in arrivals.first:
                        arrivals.repeats += 1
                    else:
                        arrivals.first[event_id] = at
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

        server = http.server.ThreadingHTTPServer(("127.0.0.1", port), Handler)
        server.daemon_threads = True
        threading.Thread(target=server.serve_forever, daemon=True).start()
        return server

    def wait_for_all(self, event_ids: list[str], seconds: float) -> bool:
        """Every one of `event_ids` arrived, within `seconds`."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            with self.lock:
                if all(e in self.first for e in event_ids):
                    return True
            time.sleep(0.05)
        return False

    def wait_for(self, count: int, seconds: float) -> bool:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            with self.lock:
                if len(self.first) >= count:
                    return True
            time.sleep(0.05)
        return False


def publish(app: Any, count: int, rate: float | None, kick: bool = True) -> dict[str, float]:
    """Commit `count` events, one transaction each (at `rate` a second, or flat out); the
    time each commit returned, by event id. Without `kick`, no worker is told of them."""
    committed: dict[str, float] = {}
    gap = 1.0 / rate if rate else 0.0
    start = time.monotonic()
    with app.app_context():
        session = db.session()
        for n in range(count):
            if gap:
                time.sleep(max(0.0, start + n * gap - time.monotonic()))
            public_id = events.publish(
                session, "quote.created", "quote", {"id": f"qt_bench{n:08d}"}
            )
            if not kick:
                session.info.pop(events.PUBLISHED, None)
            session.commit()
            committed[public_id] = time.time()
    return committed


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def run(args: argparse.Namespace) -> int:
    queue = f"billing-bench-{uuid.uuid4().hex[:8]}"
    with throwaway_database(args.postgres, "billing_bench_hooks") as url:
        upgrade(url)
        settings = {
            "DATABASE_URL": url,
            "CELERY_BROKER_URL": args.broker,
            "TASK_QUEUE": queue,
            "WEBHOOK_ALLOWED_NETWORKS": "127.0.0.0/8",
            "SECRET_KEY": "bench",
            "LOG_LEVEL": "WARNING",
            "SWEEP_SECONDS": "2",
        }
        app = create_app({"TESTING": True, **settings, "SWEEP_SECONDS": 2.0})
        port = free_port()
        with app.app_context():
            endpoint = webhooks.create_endpoint(
                db.session(),
                Caller(0, "bench", frozenset({"webhooks:write", "events:read"}), "bench"),
                f"http://127.0.0.1:{port}/hook",
                ["*"],
                networks("127.0.0.0/8"),
                secret_box(app.config),
            )
        arrivals = Arrivals(endpoint.secret)
        server = arrivals.serve(port)
        workers = [
            start_worker(settings, args.concurrency, name, beat=name == "w1")
            for name in ("w1", "w2")
        ]
        try:
            time.sleep(args.warmup)
            print(f"backlog: {args.events} events committed, then one kick ...", flush=True)
            committed = publish(app, args.events, None, kick=False)
            kicked = time.time()
            app.extensions["celery"].send_task("billing.relay_events")
            if not arrivals.wait_for(len(committed), 300):
                raise BenchError(f"only {len(arrivals.first)} of {len(committed)} arrived")
            last_arrival = max(arrivals.first[e] for e in committed)
            burst_rate = len(committed) / (last_arrival - kicked)
            paced_count = int(args.rate * args.seconds)
            print(f"paced: {paced_count} events at {args.rate:g}/s ...", flush=True)
            paced = publish(app, paced_count, args.rate)
            expected = len(committed) + len(paced)
            if not arrivals.wait_for(expected, 120):
                raise BenchError("not every paced event arrived")
            latency = [(arrivals.first[e] - at) * 1000 for e, at in paced.items()]
            print(f"a worker killed: {paced_count} events at {args.rate:g}/s ...", flush=True)
            killer = threading.Timer(args.seconds / 2, os.killpg, (workers[1].pid, signal.SIGKILL))
            killer.start()
            through = publish(app, paced_count, args.rate)
            killed_at = time.time() - args.seconds / 2
            if not arrivals.wait_for(expected + len(through), 120):
                raise BenchError("not every event arrived after the worker was killed")
            after_kill = [
                (arrivals.first[e] - at) * 1000 for e, at in through.items() if at >= killed_at
            ]
        finally:
            for worker in workers:
                if worker.poll() is None:
                    os.killpg(worker.pid, signal.SIGTERM)
                    worker.wait(30)
            server.shutdown()
            app.extensions["billing.db"].engine.dispose()
    broker = args.broker.split(":")[0]
    print(f"workers: 2 Celery workers, {args.concurrency} processes each (prefork), {broker}")
    print(f"backlog: {burst_rate:,.0f} events delivered per second ({args.events} events)")
    print(
        f"latency: commit to arrival {summary(latency)} ({len(latency)} events at {args.rate:g}/s)"
    )
    print(f"after a worker's SIGKILL: {summary(after_kill)} ({len(after_kill)} events)")
    print(f"repeats: {arrivals.repeats}, bad signatures: {arrivals.bad}")
    return EXIT_INVALID if arrivals.repeats or arrivals.bad else EXIT_MET


def summary(latency: list[float]) -> str:
    return (
        f"p50 {statistics.median(latency):.0f} ms, p99 {percentile(latency, 0.99):.0f} ms, "
        f"max {max(latency):.0f} ms"
    )


def start_worker(
    settings: dict[str, str], concurrency: int, name: str, beat: bool
) -> subprocess.Popen[bytes]:
    command = [
        str(Path(sys.executable).with_name("celery")),
        "-A",
        "billing.worker",
        "worker",
        "--pool=prefork",
        f"--concurrency={concurrency}",
        "-Q",
        settings["TASK_QUEUE"],
        f"--hostname={name}.{settings['TASK_QUEUE']}@%h",  # unique on a shared broker
        "--loglevel=WARNING",
    ]
    if beat:
        command += ["--beat", f"--schedule={Path('/tmp') / (settings['TASK_QUEUE'] + '-schedule')}"]
    return subprocess.Popen(
        command, env={**os.environ, **settings}, cwd=REPO, start_new_session=True
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--postgres", default=DEFAULT_POSTGRES)
    parser.add_argument("--broker", default=DEFAULT_BROKER, help="RabbitMQ (amqp://) or Redis")
    parser.add_argument("--events", type=int, default=2000)
    parser.add_argument("--rate", type=float, default=50.0)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--warmup", type=float, default=5.0)
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, interrupt)
    try:
        return run(args)
    except BenchError as error:
        ignore_interrupts()
        print(f"error: {error}", file=sys.stderr)
        return EXIT_INVALID
    except KeyboardInterrupt:
        ignore_interrupts()
        return EXIT_INTERRUPTED


if __name__ == "__main__":
    sys.exit(main())
