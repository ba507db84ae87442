"""Benchmark webhook delivery: events per second through Celery workers to a receiver on
loopback, and the latency from the commit of an event to its arrival (p50, p99).

Run it on demand, never from the test suite:

    make bench-webhooks                     # or: .venv/bin/python bench/webhooks.py
    .venv/bin/python bench/webhooks.py --events 4000 --rate 100 --concurrency 4

It needs the local PostgreSQL (127.0.0.1:5432, user postgres) and Redis (127.0.0.1:6379).
It creates a throwaway database and a queue of its own, starts one Celery worker with
`--concurrency` processes (4 by default) and a receiver that answers 200 and checks each
signature, registers the receiver as a webhook endpoint for every event, then:

1. backlog: commits `--events` events (each in its own transaction, as requests would)
   without telling the workers, then tells them once, and measures deliveries per second
   from then to the last arrival: what the workers can send;
2. paced: commits events at `--rate` a second for `--seconds`, and measures the latency
   from each commit to its arrival at the receiver.

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
DEFAULT_REDIS = "redis://127.0.0.1:6379/0"


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
            "CELERY_BROKER_URL": args.redis,
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
        worker = subprocess.Popen(
            [
                str(Path(sys.executable).with_name("celery")),
                "-A",
                "billing.worker",
                "worker",
                "--pool=prefork",
                f"--concurrency={args.concurrency}",
                "-Q",
                queue,
                "--beat",
                f"--schedule={Path('/tmp') / (queue + '-schedule')}",
                "--loglevel=WARNING",
            ],
            env={**os.environ, **settings},
            cwd=REPO,
            start_new_session=True,
        )
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
            if not arrivals.wait_for(len(committed) + len(paced), 120):
                raise BenchError("not every paced event arrived")
            latency = [(arrivals.first[e] - at) * 1000 for e, at in paced.items()]
        finally:
            os.killpg(worker.pid, signal.SIGTERM)
            worker.wait(30)
            server.shutdown()
            app.extensions["billing.db"].engine.dispose()
    print(f"workers: 1 Celery worker, {args.concurrency} processes (prefork)")
    print(f"backlog: {burst_rate:,.0f} events delivered per second ({args.events} events)")
    print(
        f"latency: commit to arrival p50 {statistics.median(latency):.0f} ms, "
        f"p99 {percentile(latency, 0.99):.0f} ms, max {max(latency):.0f} ms "
        f"({len(latency)} events at {args.rate:g}/s)"
    )
    print(f"repeats: {arrivals.repeats}, bad signatures: {arrivals.bad}")
    return EXIT_INVALID if arrivals.repeats or arrivals.bad else EXIT_MET


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--postgres", default=DEFAULT_POSTGRES)
    parser.add_argument("--redis", default=DEFAULT_REDIS)
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
