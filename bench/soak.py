"""The soak run: half an hour of mixed traffic over two instances, with the faults a
production week brings spread through it, then every invariant of the fault run, no event
undelivered, and the memory of every process over time. Run it on demand:

    .venv/bin/python bench/soak.py [--minutes 30] [--clients 4]

Two gunicorn instances (2 workers each) on a throwaway PostgreSQL database, Redis for rate
limits and RabbitMQ as the broker, each behind a TCP proxy of the run's own (cut for the
outages: the machine's own servers are never stopped), two Celery workers (one with the
scheduler), the Stripe stand-in, and a booking system's webhook receiver on loopback.

Traffic, all along: quotes; invoices paid by card on file; partial refunds; the event
feed read; the month's reconciliation report. Faults, spread over the run:

  at 20 %  the broker away for 60 s
  at 40 %  a Celery worker SIGKILLed (started again 5 s later, as a supervisor would)
  at 60 %  Redis away for 60 s
  all along  100 PostgreSQL connections terminated, evenly spaced

At the end: money (ledger = Stripe per invoice, never charged twice, never refunded more
than paid, each refund made once and settled), no 500 in the instances' logs, every
event in the feed delivered, and the resident memory (RSS) of every process at the
start, the middle and the end, flat in the second half (within 15 %).
"""

from __future__ import annotations

import argparse
import os
import random
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable
from contextlib import ExitStack
from datetime import date
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

import psycopg  # noqa: E402
import requests  # noqa: E402
from common import (  # noqa: E402
    EXIT_INTERRUPTED,
    EXIT_INVALID,
    BenchError,
    ignore_interrupts,
    interrupt,
    throwaway_database,
)
from faults import Api, Run, Stripe  # noqa: E402
from quotes import flask_cli, free_port, gunicorn  # noqa: E402
from webhooks import Arrivals, start_worker  # noqa: E402

from billing.adapters.migrate import upgrade  # noqa: E402
from billing.adapters.standin import StripeStandIn  # noqa: E402
from billing.config import normalise_database_url  # noqa: E402
from tests.integrations.tcp_proxy import TcpProxy  # noqa: E402

DEFAULT_POSTGRES = "postgresql://postgres@127.0.0.1:5432/postgres"
# Resident memory may grow this much from the middle of the run to its end, no more.
GROWTH = 0.15
SCOPES = (
    "quotes:write,invoices:read,invoices:write,payments:write,refunds:write,"
    "events:read,webhooks:write,reports:read"
)


class Soak:
    def __init__(self, args: argparse.Namespace, api: Api, stop: threading.Event) -> None:
        self.args, self.api, self.stop = args, api, stop
        self.answers: Counter[str] = Counter()
        self.details: dict[str, str] = {}  # the first answer of each kind that is a 4xx/5xx
        self.errors: list[str] = []
        self.invoices: list[str] = []
        self.lock = threading.Lock()

    def note(self, what: str, answer: Any) -> None:
        status = answer.status_code
        code = answer.json().get("code") if status >= 400 else ""
        kind = f"{what} {status} {code}".strip()
        with self.lock:
            self.answers[kind] += 1
            if status >= 400:
                self.details.setdefault(kind, answer.text[:200])

    def client(self, number: int) -> None:
        """One client system's loop: a quote, an invoice paid, sometimes a refund, the
        feed and the month's report now and then."""
        rng = random.Random(number)
        while not self.stop.is_set():
            try:
                if rng.random() < 0.3:
                    self.note("quote", self.api.call("POST", "/v1/quotes", self.booking()))
                    continue
                invoice = self.api.open_invoice()
                paid = self.api.pay(invoice["id"], f"soak-pay-{uuid.uuid4().hex}")
                self.note("payment", paid)
                with self.lock:
                    self.invoices.append(invoice["id"])
                if paid.status_code == 201 and rng.random() < 0.3:
                    key = f"soak-refund-{uuid.uuid4().hex}"
                    self.note("refund", self.api.refund(invoice["id"], 10000, key))
                if rng.random() < 0.2:
                    self.note("feed", self.api.call("GET", "/v1/events?limit=100"))
                if rng.random() < 0.05:
                    month = date.today().strftime("%Y-%m")
                    first, today = f"{month}-01", date.today().isoformat()
                    report = f"/v1/reports/reconciliation?from={first}&to={today}"
                    self.note("report", self.api.call("GET", report))
            except (requests.RequestException, BenchError) as error:
                with self.lock:
                    self.errors.append(str(error)[:160])
                time.sleep(0.5)

    def booking(self) -> dict[str, Any]:
        patient = f"P-S{uuid.uuid4().hex[:10]}"
        return {
            "booking_id": f"BK-{patient}",
            "session_type": "iv_individual",
            "scheduled_at": time.strftime("%Y-%m-%dT10:00:00Z", time.gmtime(time.time() + 432000)),
            "currency": "usd",
            "patients": [{"patient_id": patient, "name": "Soak Patient"}],
        }


def rss_kib(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        return 0
    return 0


def family(pid: int) -> list[int]:
    """A process and its children (gunicorn's and Celery's workers)."""
    found = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout
    return [pid, *(int(child) for child in found.split())]


def run(args: argparse.Namespace, stack: ExitStack) -> int:
    database_url = stack.enter_context(throwaway_database(args.postgres, "billing_soak"))
    upgrade(normalise_database_url(database_url))
    flask_cli("seed", database_url=database_url)
    key = (
        flask_cli("keys", "create", "soak", "--scopes", SCOPES, database_url=database_url)
        .strip()
        .splitlines()[-1]
    )
    standin = StripeStandIn().start()
    redis_proxy = TcpProxy(("127.0.0.1", 6379)).start()
    broker_proxy = TcpProxy(("127.0.0.1", 5672)).start()
    stack.callback(redis_proxy.cut)
    stack.callback(broker_proxy.cut)
    queue = f"billing-soak-{uuid.uuid4().hex[:8]}"
    env = {
        **os.environ,
        "DATABASE_URL": database_url,
        "REDIS_URL": f"redis://127.0.0.1:{redis_proxy.port}/9",
        "CELERY_BROKER_URL": f"amqp://guest:guest@127.0.0.1:{broker_proxy.port}//",
        "TASK_QUEUE": queue,
        "RATE_LIMIT_KEY_PREFIX": queue,
        "STRIPE_SECRET_KEY": "sk_test_soak",
        "STRIPE_WEBHOOK_SECRET": "whsec_soak",
        "STRIPE_API_BASE": standin.url,
        "SECRET_KEY": "soak-" + "s" * 40,
        "WEBHOOK_ALLOWED_NETWORKS": "127.0.0.0/8",
        "API_RATE_LIMIT": "1000000 per minute",
        "AUTH_FAILURE_LIMIT": "1000000 per minute",
        "LOG_LEVEL": "INFO",
        "SWEEP_SECONDS": "2",
        "DB_POOL_SIZE": "10",
    }
    logs = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="billing-soak-")))
    servers = [
        stack.enter_context(
            gunicorn(
                f"soak-{n}",
                "billing:create_app()",
                workers=2,
                env=env,
                log_path=logs / f"gunicorn-{n}.log",
                ready_path="/readyz",
                ready_status=200,
                extra=["--timeout", "120"],
            )
        )
        for n in (1, 2)
    ]
    standin.register_webhook(f"{servers[0].base_url}/v1/stripe/webhooks", "whsec_soak")
    api = Api(servers[0].base_url, key)
    receiver_port = free_port()
    registered = api.call(
        "POST",
        "/v1/webhook-endpoints",
        {"url": f"http://127.0.0.1:{receiver_port}/hook", "events": ["*"]},
    )
    if registered.status_code != 201:
        raise BenchError(f"could not register the receiver: {registered.text}")
    arrivals = Arrivals(registered.json()["secret"])
    receiver = arrivals.serve(receiver_port)
    stack.callback(receiver.shutdown)
    celery_env = {k: v for k, v in env.items() if isinstance(v, str)}
    workers = {name: start_worker(celery_env, 2, name, beat=name == "w1") for name in ("w1", "w2")}

    def stop_workers() -> None:
        for process in workers.values():
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
                process.wait(30)

    stack.callback(stop_workers)
    stop = threading.Event()
    soak = Soak(args, Api(servers[0].base_url, key), stop)
    second = Soak(args, Api(servers[1].base_url, key), stop)
    seconds = args.minutes * 60
    memory: dict[str, dict[str, int]] = {}

    def measure(when: str) -> None:
        """RSS per role, its processes summed (a restarted process counts as its role)."""
        roles = {f"{s.name} (gunicorn, 2 workers)": s.process.pid for s in servers}
        roles |= {f"celery {name} (2 processes)": w.pid for name, w in workers.items()}
        memory[when] = {
            role: sum(rss_kib(pid) for pid in family(root)) for role, root in roles.items()
        }

    faults: list[tuple[float, str, Callable[[], None]]] = [
        (0.2, "broker away 60 s", lambda: outage(broker_proxy, 60)),
        (0.4, "worker w2 SIGKILLed", lambda: kill_and_restart(workers, celery_env)),
        (0.6, "Redis away 60 s", lambda: outage(redis_proxy, 60)),
    ]
    terminated = [0]

    def terminate_connections() -> None:
        name = normalise_database_url(database_url).rsplit("/", 1)[1]
        gap = seconds / (args.kills + 1)
        for _ in range(args.kills):
            if stop.wait(gap):
                return
            with psycopg.connect(args.postgres, autocommit=True) as admin:
                admin.execute(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE pid = "
                    "(SELECT pid FROM pg_stat_activity WHERE datname = %s "
                    " AND pid <> pg_backend_pid() ORDER BY random() LIMIT 1)",
                    (name,),
                )
            terminated[0] += 1

    started = time.monotonic()
    measure("start")
    threads = [threading.Thread(target=soak.client, args=(n,)) for n in range(args.clients // 2)]
    threads += [
        threading.Thread(target=second.client, args=(100 + n,))
        for n in range(args.clients - args.clients // 2)
    ]
    threads.append(threading.Thread(target=terminate_connections))
    for thread in threads:
        thread.start()
    print(f"soak: {args.minutes:g} min, {args.clients} clients over two instances", flush=True)
    middle_taken = False
    while (elapsed := time.monotonic() - started) < seconds:
        if faults and elapsed >= faults[0][0] * seconds:
            _, what, act = faults.pop(0)
            print(f"  {elapsed / 60:5.1f} min: {what}", flush=True)
            act()
        if not middle_taken and elapsed >= seconds / 2:
            measure("middle")
            middle_taken = True
        time.sleep(1)
    stop.set()
    for thread in threads:
        thread.join(120)
    measure("end")
    print("  traffic stopped; waiting for the last deliveries, then checking ...", flush=True)
    feed = all_events(api)
    delivered = arrivals.wait_for_all(feed, 180)
    missing = [e for e in feed if e not in arrivals.first]
    run_checks = Run(args, database_url, api, servers[0], None, Stripe(standin), env)
    run_checks.recover()
    invoices = soak.invoices + second.invoices
    # Refunds too (the soak makes them), but the rest is left paid: the run's books stay
    # as the traffic left them, for a look afterwards.
    run_checks.stripe.preload()
    run_checks.money_checks(
        f"{len(invoices)} invoices paid in the soak", invoices, refunds=True, refund_the_rest=False
    )
    logs = [Path(s.log_path).read_text(errors="replace") for s in servers]
    five_hundreds = sum(
        log.count('"status": 500') + log.count("Error handling request") for log in logs
    )
    for role in sorted(memory["start"]):
        middle, end = memory["middle"].get(role, 0), memory["end"].get(role, 0)
        run_checks.check(
            "resident memory",
            1,
            f"{role}: flat in the second half (end within {GROWTH:.0%} of the middle)",
            end <= middle * (1 + GROWTH),
            f"{middle / 1024:.0f} -> {end / 1024:.0f} MiB",
        )
    print(f"\nanswers: {dict(soak.answers + second.answers)}")
    for kind, text in {**soak.details, **second.details}.items():
        print(f"  first {kind}: {text}")
    print(f"client errors: {len(soak.errors + second.errors)} {(soak.errors + second.errors)[:3]}")
    print(f"connections terminated: {terminated[0]}; 500s in the logs: {five_hundreds}")
    print(
        f"events: {len(feed)} in the feed, {len(missing)} undelivered, repeats {arrivals.repeats}"
    )
    print("\nresident memory (MiB): process, start / middle / end")
    for name in sorted(memory["start"]):
        row = [memory[when].get(name, 0) / 1024 for when in ("start", "middle", "end")]
        print(f"  {name:<28} {row[0]:7.1f} {row[1]:7.1f} {row[2]:7.1f}")
    failed = [c for c in run_checks.checks if not c.ok]
    for check in run_checks.checks:
        detail = "" if check.ok else f"  [{check.detail}]"
        print(f"  {'PASS' if check.ok else 'FAIL'}  {check.invariant}{detail}")
    ok = delivered and not missing and not failed and five_hundreds == 0
    return 0 if ok else 1


def outage(proxy: TcpProxy, seconds: float) -> None:
    proxy.cut()
    time.sleep(seconds)
    proxy.restore()


def kill_and_restart(workers: dict[str, subprocess.Popen[bytes]], env: dict[str, str]) -> None:
    os.killpg(workers["w2"].pid, signal.SIGKILL)
    workers["w2"].wait(10)
    time.sleep(5)  # a supervisor notices, and starts it again
    workers["w2"] = start_worker(env, 2, "w2", beat=False)


def all_events(api: Api) -> list[str]:
    found: list[str] = []
    after = ""
    while True:
        page = api.call("GET", f"/v1/events?limit=500{after}").json()
        found += [event["id"] for event in page["data"]]
        if not page["has_more"]:
            return found
        after = f"&starting_after={found[-1]}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--postgres", default=DEFAULT_POSTGRES)
    parser.add_argument("--minutes", type=float, default=30.0)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--kills", type=int, default=100, help="connections terminated")
    parser.add_argument("--rounds", type=int, default=0, help="(unused; the fault run's)")
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, interrupt)
    try:
        with ExitStack() as stack:
            try:
                return run(args, stack)
            finally:
                ignore_interrupts()
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
    except BenchError as error:
        print(f"soak run not valid: {error}", file=sys.stderr)
        return EXIT_INVALID


if __name__ == "__main__":
    sys.exit(main())
