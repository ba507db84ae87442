"""The fault run: nothing charged twice, nothing lost, whatever breaks and wherever.

gunicorn + a throwaway PostgreSQL database + the Stripe stand-in, with a fault-injecting
proxy (bench/fault_proxy.py) between the service and the stand-in. It drives:

  copies     1,000 concurrent copies of one card-on-file payment (same Idempotency-Key)
  payments   a worker killed (SIGKILL) at each step of a payment (its call held before
             Stripe, Stripe's answer held before our commit, and our answer held after
             our commit before it is written), and Stripe's reply lost, delayed past the
             timeout, answered 500 or timed out
  refunds    the same around a refund
  database   PostgreSQL connections terminated again and again while requests run

then recovers as production does (`payments reconcile-pending`, webhooks) and checks the
invariants. It prints a table of faults and invariants, and exits 1 if any failed.

    .venv/bin/python bench/faults.py [--copies 1000] [--concurrency 100] [--workers 2]
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
import uuid
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import partial
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
from fault_proxy import Fault, FaultProxy  # noqa: E402
from quotes import flask_cli, free_port, gunicorn, wait_until_ready  # noqa: E402

from billing.adapters.migrate import upgrade  # noqa: E402
from billing.adapters.standin import StripeStandIn  # noqa: E402
from billing.config import normalise_database_url  # noqa: E402

DEFAULT_POSTGRES = "postgresql://postgres@127.0.0.1:5432/postgres"
STRIPE_KEY, WEBHOOK_SECRET = "sk_test_faults", "whsec_faults"
SCOPES = "quotes:write,invoices:read,invoices:write,payments:write,refunds:write"
STRIPE_TIMEOUT = 2.0  # the service's timeout towards Stripe in this run
KILL_FAULTS = ("hold_then_drop", "hold_reply", "after_commit")
STRIPE_FAULTS = ("lose_reply", "delay_reply", "error500", "time_out")


@dataclass
class Check:
    fault: str
    count: int
    invariant: str
    ok: bool
    detail: str = ""


class Api:
    """The service over HTTP, as the booking system and the front desk call it."""

    def __init__(self, base_url: str, key: str) -> None:
        self.base_url, self.key = base_url, key
        self.local = threading.local()
        # Patients (and so bookings) numbered per client, under a tag of its own: two
        # clients of one database never re-quote each other's bookings.
        self.patients = itertools.count(1)
        self.tag = uuid.uuid4().hex[:4]

    def call(self, method: str, path: str, body: Any = None, key: str | None = None) -> Any:
        session = getattr(self.local, "session", None) or requests.Session()
        self.local.session = session
        headers = {"Authorization": f"Bearer {self.key}"}
        if key:
            headers["Idempotency-Key"] = key
        return session.request(method, self.base_url + path, json=body, headers=headers, timeout=60)

    def _set_up(self, patient: str) -> Iterator[Any]:
        """Quote and invoice an IV session for a new patient and save a card that works:
        each step's answer in turn, stopping at the first refused."""
        when = (datetime.now(UTC) + timedelta(days=5)).replace(microsecond=0).isoformat()
        booking = {
            "booking_id": f"BK-{patient}",
            "session_type": "iv_individual",
            "scheduled_at": when,
            "currency": "usd",
            "patients": [{"patient_id": patient, "name": "Fault Patient"}],
        }
        quote = self.call("POST", "/v1/quotes", booking)
        yield quote
        if quote.status_code != 201:
            return
        invoices = self.call("POST", "/v1/invoices", {"quote_id": quote.json()["id"]})
        yield invoices
        if invoices.status_code != 201:
            return
        card = {"payment_method": "pm_card_visa"}
        yield self.call("POST", f"/v1/patients/{patient}/payment-methods", card)

    def open_invoice(self) -> dict[str, Any]:
        """An open IV invoice of a new patient with a card on file."""
        answers = list(self._set_up(f"P-F{self.tag}{next(self.patients):05d}"))
        if len(answers) < 3 or answers[-1].status_code != 201:
            raise BenchError(f"could not set an invoice up: {answers[-1].text}")
        return dict(answers[1].json()["data"][0])

    def attempt(self) -> list[str]:
        """Set an invoice up and charge it, until a step is refused: each step's status,
        and a 503's code."""
        answers = list(self._set_up(f"P-D{self.tag}{next(self.patients):05d}"))
        seen = [_seen(answer) for answer in answers]
        if len(answers) == 3 and answers[-1].status_code == 201:
            invoice_id = answers[1].json()["data"][0]["id"]
            seen.append(_seen(self.pay(invoice_id, f"dbpay-{invoice_id}")))
        return seen

    def pay(self, invoice_id: str, key: str) -> Any:
        return self.call(
            "POST", f"/v1/invoices/{invoice_id}/payments", {"method": "card_on_file"}, key
        )

    def refund(self, invoice_id: str, amount: int, key: str) -> Any:
        body = {"amount": amount, "reason": "fault run"}
        return self.call("POST", f"/v1/invoices/{invoice_id}/refunds", body, key)

    def invoice(self, invoice_id: str) -> dict[str, Any]:
        return dict(self.call("GET", f"/v1/invoices/{invoice_id}").json())


class Stripe:
    """What the stand-in itself holds, read past the proxy."""

    def __init__(self, standin: StripeStandIn) -> None:
        self.base = standin.url
        self.by_invoice: dict[str, list[dict[str, Any]]] | None = None
        self.by_intent: dict[str, list[dict[str, Any]]] = {}

    def preload(self) -> None:
        """Every PaymentIntent and refund read once, grouped by invoice and intent: the
        stand-in answers a search by scanning everything it holds, so asking per invoice
        after a long run would take hours."""
        by_invoice: dict[str, list[dict[str, Any]]] = {}
        charges: dict[str, str] = {}
        for intent in self._every("/v1/payment_intents"):
            ref = (intent.get("metadata") or {}).get("invoice_ref", "")
            by_invoice.setdefault(ref, []).append(intent)
            if intent.get("latest_charge"):
                charges[str(intent["latest_charge"])] = intent["id"]
        self.by_intent = {}
        for refund in self._every("/v1/refunds"):
            intent_id = refund.get("payment_intent") or charges.get(str(refund.get("charge")))
            self.by_intent.setdefault(str(intent_id), []).append(refund)
        self.by_invoice = by_invoice

    def _every(self, path: str) -> Iterator[dict[str, Any]]:
        after = ""
        while True:
            page = self.get(f"{path}?limit=100{after}")
            yield from page["data"]
            if not page.get("has_more") or not page["data"]:
                return
            after = f"&starting_after={page['data'][-1]['id']}"

    def get(self, path: str) -> dict[str, Any]:
        answer = requests.get(
            self.base + path, headers={"Authorization": f"Bearer {STRIPE_KEY}"}, timeout=30
        )
        return dict(answer.json())

    def intents(self, invoice_id: str) -> list[dict[str, Any]]:
        if self.by_invoice is not None:
            return self.by_invoice.get(invoice_id, [])
        query = urllib.parse.quote(f"metadata['invoice_ref']:'{invoice_id}'")
        return list(self.get(f"/v1/payment_intents/search?query={query}")["data"])

    def money(self, invoice_id: str) -> tuple[int, int, list[str]]:
        """(succeeded charges, refunds, our refund ids) of one invoice, at Stripe."""
        paid = refunded = 0
        ours: list[str] = []
        for intent in self.intents(invoice_id):
            if intent["status"] != "succeeded":
                continue
            paid += intent["amount"]
            if self.by_invoice is not None:
                listed = self.by_intent.get(intent["id"], [])
            else:
                listed = self.get(f"/v1/refunds?payment_intent={intent['id']}&limit=100")["data"]
            for refund in listed:
                refunded += refund["amount"]
                ours.append((refund.get("metadata") or {}).get("refund_id", ""))
        return paid, refunded, ours


class Run:
    def __init__(
        self,
        args: argparse.Namespace,
        database_url: str,
        api: Api,
        server: Any,
        proxy: FaultProxy,
        stripe: Stripe,
        env: dict[str, str],
    ) -> None:
        self.args, self.database_url, self.api, self.server = args, database_url, api, server
        self.proxy, self.stripe, self.env = proxy, stripe, env
        self.keys = iter(range(1, 1_000_000))
        self.checks: list[Check] = []
        self.seen: list[tuple[str, str, str]] = []  # (call, fault, what the caller got)

    def key(self, prefix: str) -> str:
        return f"{prefix}-{next(self.keys)}"

    def check(self, fault: str, count: int, invariant: str, ok: bool, detail: str = "") -> None:
        self.checks.append(Check(fault, count, invariant, ok, detail))

    def sql(self, statement: str, *params: Any) -> list[tuple[Any, ...]]:
        with psycopg.connect(self.database_url, autocommit=True) as conn:
            cursor = conn.execute(statement, params)
            return list(cursor.fetchall()) if cursor.description else []

    def kill_workers(self) -> int:
        """SIGKILL every gunicorn worker; the master starts new ones."""
        found = subprocess.run(
            ["pgrep", "-P", str(self.server.process.pid)], capture_output=True, text=True
        ).stdout.split()
        for pid in found:
            os.kill(int(pid), signal.SIGKILL)
        time.sleep(0.5)
        wait_until_ready(self.server, "/readyz", 200)
        return len(found)

    def recover(self) -> str:
        """What production runs every few minutes, after the webhooks have had their time."""
        time.sleep(STRIPE_TIMEOUT + 1.5)  # delayed calls land; the stand-in's webhooks arrive
        # Lost calls are only given up once too old to still land at Stripe (2 minutes):
        # let that time pass for the rows of this run.
        self.sql(
            "UPDATE refunds SET updated_at = updated_at - interval '3 minutes' "
            "WHERE status IN ('pending', 'unknown')"
        )
        env = {**self.env}
        return flask_cli_env(("payments", "reconcile-pending", "--older-than", "0"), env)

    # --- copies -----------------------------------------------------------------------

    def copies(self) -> None:
        invoice = self.api.open_invoice()
        key, count = self.key("copy"), self.args.copies
        before = self.proxy.count("POST", "/v1/payment_intents")

        def send(_index: int) -> tuple[int, str]:
            try:
                answer = self.api.pay(invoice["id"], key)
            except requests.RequestException as error:
                return -1, str(error)
            body = answer.json()
            body.pop("request_id", None)
            return answer.status_code, json.dumps(body, sort_keys=True)

        with ThreadPoolExecutor(self.args.concurrency) as pool:
            answers = list(pool.map(send, range(count)))
        statuses = Counter(status for status, _ in answers)
        bodies = {body for status, body in answers if status == 201}
        created = self.proxy.count("POST", "/v1/payment_intents") - before
        intents = self.stripe.intents(invoice["id"])
        name = f"{count} concurrent copies"
        self.check(
            name, count, "every copy answered 201", statuses == {201: count}, str(dict(statuses))
        )
        self.check(name, count, "identical responses", len(bodies) == 1, f"{len(bodies)} distinct")
        self.check(name, count, "exactly 1 PaymentIntent asked for", created == 1, f"{created}")
        self.check(
            name, count, "exactly 1 PaymentIntent at Stripe", len(intents) == 1, f"{len(intents)}"
        )

    # --- payments and refunds ---------------------------------------------------------

    def provoke(self, kind: str, path: str, call: Callable[[], Any]) -> str:
        """Make `call` meet fault `kind` on its way to Stripe at `path`; what it answered."""
        if kind == "after_commit":
            return self.killed_after_commit(call)
        fault = self.proxy.inject(Fault(kind, "POST", path, seconds=STRIPE_TIMEOUT + 1.0))
        answers: list[str] = []

        def run() -> None:
            try:
                answers.append(str(call().status_code))
            except requests.RequestException:
                answers.append("connection lost")

        worker = threading.Thread(target=run)
        worker.start()
        if kind in KILL_FAULTS:
            if not fault.reached.wait(20):
                raise BenchError(f"the request never reached Stripe's {path} ({kind})")
            self.kill_workers()
        fault.release.set()
        worker.join(60)
        return answers[0] if answers else "no answer"

    def killed_after_commit(self, call: Callable[[], Any]) -> str:
        """The worker killed after our commit, before its answer is written (fault_app)."""
        hold = Path(self.env["FAULT_HOLD_FILE"])
        reached = Path(f"{hold}.reached")
        reached.unlink(missing_ok=True)
        hold.touch()
        answers: list[str] = []

        def run() -> None:
            try:
                answers.append(str(call().status_code))
            except requests.RequestException:
                answers.append("connection lost")

        caller = threading.Thread(target=run)
        caller.start()
        deadline = time.monotonic() + 30
        while not reached.exists():
            if time.monotonic() > deadline:
                raise BenchError("the request never reached the hold after our commit")
            time.sleep(0.02)
        hold.unlink()
        self.kill_workers()
        caller.join(60)
        return answers[0] if answers else "no answer"

    def payments(self) -> list[str]:
        invoices: list[str] = []
        for kind in KILL_FAULTS + STRIPE_FAULTS:
            for _ in range(self.args.rounds):
                invoice = self.api.open_invoice()
                key = self.key("pay")
                got = self.provoke(
                    kind, "/v1/payment_intents", partial(self.api.pay, invoice["id"], key)
                )
                self.seen.append(("payment", kind, got))
                invoices.append(invoice["id"])
        return invoices

    def refunds(self) -> list[str]:
        invoices: list[str] = []
        for kind in KILL_FAULTS + STRIPE_FAULTS:
            for _ in range(self.args.rounds):
                invoice = self.api.open_invoice()
                paid = self.api.pay(invoice["id"], self.key("pay"))
                if paid.status_code != 201:
                    raise BenchError(f"could not pay an invoice: {paid.text}")
                key = self.key("refund")
                got = self.provoke(
                    kind, "/v1/refunds", partial(self.api.refund, invoice["id"], 20000, key)
                )
                self.seen.append(("refund", kind, got))
                invoices.append(invoice["id"])
        return invoices

    def money_checks(
        self, name: str, invoices: Sequence[str], refunds: bool, refund_the_rest: bool = True
    ) -> None:
        """The money invariants over `invoices`; with `refunds`, the refunds' too, and
        (unless not `refund_the_rest`) that what is left refunds at once."""
        statuses = self.sql(
            "SELECT p.status, count(*) FROM payments p WHERE p.invoice_id = ANY(%s) "
            "GROUP BY p.status",
            list(invoices),
        )
        stuck = {status: n for status, n in statuses if status in ("pending", "unknown")}
        self.check(name, len(invoices), "no payment left pending or unknown", not stuck, str(stuck))
        twice, unmatched, unpaid, overrefunded, duplicated = [], [], [], [], []
        for invoice_id in invoices:
            intents = self.stripe.intents(invoice_id)
            if sum(1 for i in intents if i["status"] == "succeeded") > 1:
                twice.append(invoice_id)
            paid, refunded, ours = self.stripe.money(invoice_id)
            ledger = self.sql(
                "SELECT coalesce(sum(amount) FILTER (WHERE kind = 'charge'), 0), "
                "coalesce(sum(amount) FILTER (WHERE kind = 'refund'), 0) "
                "FROM ledger_entries WHERE invoice_id = %s",
                invoice_id,
            )[0]
            if (paid, refunded) != (int(ledger[0]), int(ledger[1])):
                unmatched.append(f"{invoice_id}: stripe {paid}/{refunded} ledger {ledger}")
            status = self.api.invoice(invoice_id)["status"]
            if status in ("paid", "partially_refunded", "refunded") and paid == 0:
                unpaid.append(invoice_id)
            if refunded > paid:
                overrefunded.append(invoice_id)
            if len(ours) != len(set(ours)):
                duplicated.append(invoice_id)
        self.check(
            name,
            len(invoices),
            "at most one succeeded PaymentIntent per invoice",
            not twice,
            ", ".join(twice),
        )
        self.check(
            name,
            len(invoices),
            "ledger = Stripe (charges, refunds) per invoice",
            not unmatched,
            "; ".join(unmatched[:3]),
        )
        self.check(
            name,
            len(invoices),
            "no invoice paid without a succeeded PaymentIntent",
            not unpaid,
            ", ".join(unpaid),
        )
        if refunds:
            self.check(
                name,
                len(invoices),
                "refunded never exceeds paid",
                not overrefunded,
                ", ".join(overrefunded),
            )
            self.check(
                name,
                len(invoices),
                "each refund made at Stripe at most once",
                not duplicated,
                ", ".join(duplicated),
            )
            open_refunds = self.sql(
                "SELECT count(*) FROM refunds WHERE invoice_id = ANY(%s) "
                "AND status NOT IN ('succeeded', 'failed')",
                list(invoices),
            )[0][0]
            self.check(
                name,
                len(invoices),
                "every refund settled (succeeded or failed)",
                open_refunds == 0,
                f"{open_refunds} open",
            )
            if not refund_the_rest:
                return
            refused = []
            for invoice_id in invoices:
                invoice = self.api.invoice(invoice_id)
                rest = invoice["amount_paid"] - invoice["amount_refunded"]
                answer = self.api.refund(invoice_id, rest, self.key("rest"))
                if answer.status_code != 201:
                    refused.append(f"{invoice_id}: {answer.status_code} {answer.text[:80]}")
            self.check(
                name,
                len(invoices),
                "nothing stays reserved (the rest refunds at once)",
                not refused,
                "; ".join(refused[:3]),
            )

    # --- database ---------------------------------------------------------------------

    def database_drops(self) -> None:
        stop = threading.Event()
        answers: Counter[str] = Counter()
        bad: list[str] = []
        lock = threading.Lock()
        name = normalise_database_url(self.database_url).rsplit("/", 1)[1]
        terminated = 0

        def terminate() -> None:
            nonlocal terminated
            while not stop.is_set():
                with psycopg.connect(self.args.postgres, autocommit=True) as admin:
                    rows = admin.execute(
                        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                        "WHERE datname = %s AND pid <> pg_backend_pid()",
                        (name,),
                    ).fetchall()
                terminated += len(rows)
                time.sleep(0.3)

        def load(_index: int) -> None:
            deadline = time.monotonic() + self.args.db_seconds
            while time.monotonic() < deadline:
                try:
                    seen = self.api.attempt()
                except requests.RequestException as error:
                    with lock:
                        bad.append(str(error)[:120])
                    continue
                with lock:
                    answers.update(seen)

        killer = threading.Thread(target=terminate)
        killer.start()
        with ThreadPoolExecutor(4) as pool:
            list(pool.map(load, range(4)))
        stop.set()
        killer.join()
        log = Path(self.server.log_path).read_text(errors="replace")
        Path(tempfile.gettempdir(), "billing-faults-gunicorn.log").write_text(log)
        errors_500 = log.count('"status": 500') + log.count("Error handling request")
        problems = self.sql(
            "SELECT (SELECT count(*) FROM invoices i WHERE NOT EXISTS "
            "  (SELECT 1 FROM invoice_lines l WHERE l.invoice_id = i.id)), "
            "(SELECT count(*) FROM quotes q WHERE NOT EXISTS "
            "  (SELECT 1 FROM quote_lines l WHERE l.quote_id = q.id)), "
            "(SELECT count(*) FROM invoices i WHERE i.status = 'paid' AND NOT EXISTS "
            "  (SELECT 1 FROM ledger_entries e WHERE e.invoice_id = i.id AND e.kind = 'charge'))"
        )[0]
        numbers = [
            int(n)
            for (n,) in self.sql("SELECT split_part(number, '-', 2) FROM invoices ORDER BY 1")
        ]
        gapless = numbers == list(range(1, len(numbers) + 1))
        fault = f"{terminated} backends terminated"
        total = sum(answers.values())
        expected = {"200", "201", "402", "409", "503 database_unavailable"}
        self.seen.append(("requests", fault, str(dict(answers))))
        self.check(
            fault,
            total,
            "every answer normal or a clean 503 database_unavailable",
            not bad and set(answers) <= expected,
            str(dict(answers)) + (f" {bad[:2]}" if bad else ""),
        )
        self.check(
            fault,
            total,
            "no 500 and no unhandled error in the service's log",
            errors_500 == 0,
            f"{errors_500}",
        )
        self.check(
            fault,
            total,
            "no half-written rows (lines, ledger)",
            problems == (0, 0, 0),
            str(problems),
        )
        self.check(fault, total, "invoice numbers without gaps", gapless, f"{len(numbers)} numbers")


def _seen(answer: Any) -> str:
    if answer.status_code == 503:
        return f"503 {answer.json().get('code')}"
    return str(answer.status_code)


def flask_cli_env(args: Sequence[str], env: dict[str, str]) -> str:
    command = [str(Path(sys.executable).parent / "flask"), "--app", "billing", *args]
    done = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise BenchError(f"`flask --app billing {' '.join(args)}` failed:\n{done.stderr}")
    return done.stdout


def report(checks: Sequence[Check]) -> bool:
    width = max(len(c.fault) for c in checks)
    print(f"\n{'fault injected':<{width}}  {'count':>5}  {'result':<6}  invariant")
    for c in checks:
        print(
            f"{c.fault:<{width}}  {c.count:>5}  {'PASS' if c.ok else 'FAIL':<6}  {c.invariant}"
            + (f"  [{c.detail}]" if c.detail and not c.ok else "")
        )
    failed = sum(1 for c in checks if not c.ok)
    print(f"\n{len(checks) - failed} passed, {failed} failed")
    return failed == 0


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--postgres", default=DEFAULT_POSTGRES, help="an admin URL")
    parser.add_argument("--copies", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, default=100)
    parser.add_argument("--workers", type=int, default=2, help="gunicorn workers")
    parser.add_argument("--rounds", type=int, default=2, help="invoices per fault kind")
    parser.add_argument("--db-seconds", type=float, default=8.0, help="database-drop run")
    parser.add_argument("--keep", action="store_true", help="keep the database afterwards")
    return parser.parse_args(argv)


def run(args: argparse.Namespace, stack: ExitStack) -> int:
    database_url = stack.enter_context(
        throwaway_database(args.postgres, "billing_faults", args.keep)
    )
    upgrade(normalise_database_url(database_url))
    flask_cli("seed", database_url=database_url)
    key = (
        flask_cli("keys", "create", "faults", "--scopes", SCOPES, database_url=database_url)
        .strip()
        .splitlines()[-1]
    )
    standin = StripeStandIn().start()
    proxy = FaultProxy(standin.url, free_port()).start()
    env = {
        **os.environ,
        "DATABASE_URL": database_url,
        "STRIPE_SECRET_KEY": STRIPE_KEY,
        "STRIPE_WEBHOOK_SECRET": WEBHOOK_SECRET,
        "STRIPE_API_BASE": proxy.url,
        "STRIPE_TIMEOUT_SECONDS": str(STRIPE_TIMEOUT),
        "STRIPE_MAX_NETWORK_RETRIES": "0",
        "SECRET_KEY": "fault-run",
        "LOG_LEVEL": "INFO",
        "DB_POOL_SIZE": "10",
        # The run calls far faster than a client system: no rate limits in its way.
        "API_RATE_LIMIT": "1000000 per minute",
        "AUTH_FAILURE_LIMIT": "1000000 per minute",
        "FAULT_HOLD_FILE": str(Path(tempfile.gettempdir()) / f"billing-fault-hold-{os.getpid()}"),
        "PYTHONPATH": os.pathsep.join(filter(None, [str(BENCH), os.environ.get("PYTHONPATH")])),
    }
    log_dir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="billing-faults-")))
    server = stack.enter_context(
        gunicorn(
            "faults",
            "fault_app:create()",
            workers=args.workers,
            env=env,
            log_path=log_dir / "gunicorn.log",
            ready_path="/readyz",
            ready_status=200,
            extra=["--timeout", "120"],
        )
    )
    standin.register_webhook(f"{server.base_url}/v1/stripe/webhooks", WEBHOOK_SECRET)
    fault_run = Run(
        args, database_url, Api(server.base_url, key), server, proxy, Stripe(standin), env
    )
    started = time.monotonic()
    print(f"fault run: gunicorn -w {args.workers}, PostgreSQL, the stand-in behind a fault proxy")
    print(f"1. {args.copies} concurrent copies of one payment ...")
    fault_run.copies()
    print(
        "2. payments: workers killed at each step, Stripe's replies lost, late, 500, timed out ..."
    )
    paid = fault_run.payments()
    print("3. refunds: the same around a refund ...")
    refunded = fault_run.refunds()
    print("   recovering: webhooks, then payments reconcile-pending ...")
    print("   " + fault_run.recover().strip().splitlines()[-1])
    fault_run.money_checks("payments: kills and Stripe faults", paid, refunds=False)
    fault_run.money_checks("refunds: kills and Stripe faults", refunded, refunds=True)
    print(f"4. PostgreSQL connections terminated for {args.db_seconds:.0f} s under load ...")
    fault_run.database_drops()
    print(f"done in {time.monotonic() - started:.0f} s")
    print("\nwhat the caller got when the fault struck:")
    for call, kind, got in fault_run.seen:
        print(f"  {call:<8} {kind:<16} {got}")
    return 0 if report(fault_run.checks) else 1


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
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
        print(f"fault run not valid: {error}", file=sys.stderr)
        return EXIT_INVALID


if __name__ == "__main__":
    sys.exit(main())
