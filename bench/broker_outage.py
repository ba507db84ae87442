"""Broker outages under load: every event delivered within 10 s of the broker's return,
with no one restarting anything. Run it on demand, never from the test suite:

    .venv/bin/python bench/broker_outage.py [--outages 5,60,5,60,5,60] [--rate 20]

RabbitMQ (127.0.0.1:5672, the production broker; `--broker redis://...` to compare) is
reached through a TCP proxy of this run's own, which is cut for each outage (the
machine's broker itself is never stopped: other programs use it). A throwaway PostgreSQL
database, one Celery worker with the scheduler, the web app in this process committing
events at `--rate` a second all along (outage or not), and a receiver on loopback. For
each outage it reports the events committed during it and how long after the broker's
return the last of them arrived; the run is valid only if every event arrives exactly
once (exit 2 otherwise) and meets the 10 s target (exit 1 otherwise).
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
import time
import uuid
from pathlib import Path
from urllib.parse import urlsplit

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
from webhooks import DEFAULT_BROKER, DEFAULT_POSTGRES, Arrivals, publish, start_worker  # noqa: E402

from billing import create_app  # noqa: E402
from billing.adapters import db  # noqa: E402
from billing.adapters.migrate import upgrade  # noqa: E402
from billing.adapters.standin import free_port  # noqa: E402
from billing.adapters.webhook_sender import networks  # noqa: E402
from billing.services.integrations import webhooks  # noqa: E402
from billing.services.integrations.settings import secret_box  # noqa: E402
from billing.web.auth import Caller  # noqa: E402
from tests.integrations.tcp_proxy import TcpProxy  # noqa: E402

TARGET_SECONDS = 10.0


def run(args: argparse.Namespace) -> int:
    upstream = urlsplit(args.broker)
    proxy = TcpProxy((upstream.hostname or "127.0.0.1", upstream.port or 5672)).start()
    broker = args.broker.replace(f":{upstream.port or 5672}", f":{proxy.port}", 1)
    queue = f"billing-outage-{uuid.uuid4().hex[:8]}"
    results: list[tuple[float, int, float]] = []
    with throwaway_database(args.postgres, "billing_bench_outage") as url:
        upgrade(url)
        settings = {
            "DATABASE_URL": url,
            "CELERY_BROKER_URL": broker,
            "TASK_QUEUE": queue,
            "WEBHOOK_ALLOWED_NETWORKS": "127.0.0.0/8",
            "SECRET_KEY": "bench-outage",
            "LOG_LEVEL": "WARNING",
            "SWEEP_SECONDS": "1",
        }
        app = create_app({"TESTING": True, **settings, "SWEEP_SECONDS": 1.0})
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
        worker = start_worker(settings, args.concurrency, "w1", beat=True)
        committed: dict[str, float] = {}
        stop = threading.Event()

        def load() -> None:
            while not stop.is_set():
                committed.update(publish(app, int(args.rate), args.rate))

        loader = threading.Thread(target=load, daemon=True)
        try:
            time.sleep(args.warmup)
            loader.start()
            for seconds in args.outages:
                time.sleep(args.between)
                print(f"broker away for {seconds:g} s ...", flush=True)
                cut = time.time()
                proxy.cut()
                time.sleep(seconds)
                proxy.restore()
                back = time.time()
                during = [e for e, at in list(committed.items()) if cut <= at < back]
                if not arrivals.wait_for_all(during, 120):
                    raise BenchError(f"events of the {seconds:g} s outage never arrived")
                last = max(arrivals.first[e] for e in during) - back if during else 0.0
                results.append((seconds, len(during), last))
                print(
                    f"  {len(during)} events committed meanwhile; last arrived {last:.1f} s "
                    "after the return",
                    flush=True,
                )
            stop.set()
            loader.join(30)
            if not arrivals.wait_for(len(committed), 120):
                raise BenchError(f"{len(committed) - len(arrivals.first)} events never arrived")
        finally:
            stop.set()
            if worker.poll() is None:
                os.killpg(worker.pid, signal.SIGTERM)
                worker.wait(30)
            proxy.cut()
            server.shutdown()
            app.extensions["billing.db"].engine.dispose()
    print(f"\n{'outage':>8}  {'events meanwhile':>16}  {'last arrived after return':>26}")
    for seconds, count, last in results:
        print(f"{seconds:>7g}s  {count:>16}  {last:>25.1f}s")
    print(f"events: {len(committed)}, repeats: {arrivals.repeats}, bad signatures: {arrivals.bad}")
    if arrivals.repeats or arrivals.bad:
        return EXIT_INVALID
    return EXIT_MET if all(last <= TARGET_SECONDS for _, _, last in results) else 1


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--postgres", default=DEFAULT_POSTGRES)
    parser.add_argument("--broker", default=DEFAULT_BROKER, help="RabbitMQ (amqp://) or Redis")
    parser.add_argument(
        "--outages",
        type=lambda text: [float(part) for part in text.split(",")],
        default=[5.0, 60.0, 5.0, 60.0, 5.0, 60.0],
        help="seconds, comma-separated",
    )
    parser.add_argument("--between", type=float, default=10.0, help="seconds between outages")
    parser.add_argument("--rate", type=float, default=10.0, help="events a second")
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
