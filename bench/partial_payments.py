"""Many parts of one bill at once: never collected beyond the total. Run it on demand:

    .venv/bin/python bench/partial_payments.py [--payments 50] [--workers 4] [--rounds 3]

gunicorn (`--workers`, sync) on a throwaway PostgreSQL database with the Stripe stand-in.
Each round makes one $500.00 invoice with a card on file, then fires `--payments` requests
at the same moment from as many threads, each its own Idempotency-Key: card-on-file
charges of $20.00 to $60.00 and cash of $20.00 to $60.00 mixed, so that together they ask
for several times the total. Then, per invoice: what Stripe collected plus the cash
recorded never exceeds the total; the answers that were refused say why (422
`amount_exceeds_balance`, 409 while another charge is in flight); the ledger equals
Stripe's charges; and the invoice's `balance_due` is the total less what was paid.

A second part spends the last $50.00 of an invoice: `--payments` cash and card requests
of exactly $50.00 at once, of which exactly one must succeed. A third spends the last
$50.00 of a gift card, and a fourth the last $50.00 of a patient's credit: `--uses`
requests at once (20 by default), each on an invoice of its own; exactly one must
succeed, and the invoices together must be paid exactly $50.00.

Exit 0 when every round holds, 1 otherwise, 2 on an invalid run.
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

import psycopg  # noqa: E402
import requests  # noqa: E402
from common import (  # noqa: E402
    EXIT_MET,
    BenchError,
    run_bench,
    throwaway_database,
)
from faults import Stripe  # noqa: E402
from quotes import flask_cli, gunicorn  # noqa: E402

from billing.adapters.migrate import normalise_database_url, upgrade  # noqa: E402
from billing.adapters.standin import StripeStandIn  # noqa: E402

DEFAULT_POSTGRES = "postgresql://postgres@127.0.0.1:5432/postgres"
SCOPES = "quotes:write,invoices:read,invoices:write,invoices:adjust,payments:write,payments:record"
TOTAL = 50000


class Desk:
    def __init__(self, base_url: str, key: str) -> None:
        self.base_url, self.key = base_url, key
        self.local = threading.local()

    def call(self, method: str, path: str, body: Any = None, idem: str | None = None) -> Any:
        session = getattr(self.local, "session", None) or requests.Session()
        self.local.session = session
        headers = {"Authorization": f"Bearer {self.key}"}
        if idem:
            headers["Idempotency-Key"] = idem
        url = self.base_url + path
        return session.request(method, url, json=body, headers=headers, timeout=120)

    def open_invoice(self, patient: str, booking_id: str | None = None) -> str:
        when = (datetime.now(UTC) + timedelta(days=5)).replace(microsecond=0).isoformat()
        booking = {
            "booking_id": booking_id or f"BK-{patient}",
            "session_type": "iv_individual",
            "scheduled_at": when,
            "currency": "usd",
            "patients": [{"patient_id": patient, "name": "Split Patient"}],
        }
        quote = self.call("POST", "/v1/quotes", booking)
        invoices = self.call("POST", "/v1/invoices", {"quote_id": quote.json()["id"]})
        card = self.call(
            "POST", f"/v1/patients/{patient}/payment-methods", {"payment_method": "pm_card_visa"}
        )
        if invoices.status_code != 201 or card.status_code != 201:
            raise BenchError(f"could not set an invoice up: {invoices.text} {card.text}")
        return str(invoices.json()["data"][0]["id"])


def at_once(desk: Desk, invoice_id: str, bodies: list[dict[str, Any]]) -> list[Any]:
    """Each body POSTed to the invoice's payments from its own thread, all at one moment."""
    barrier = threading.Barrier(len(bodies))
    answers: list[Any] = [None] * len(bodies)

    def pay(n: int) -> None:
        barrier.wait()
        answers[n] = desk.call(
            "POST", f"/v1/invoices/{invoice_id}/payments", bodies[n], idem=uuid.uuid4().hex
        )

    threads = [threading.Thread(target=pay, args=(n,)) for n in range(len(bodies))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(180)
    return answers


def each_at_once(desk: Desk, calls: list[tuple[str, dict[str, Any]]]) -> list[Any]:
    """Each (invoice, body) POSTed to that invoice's payments from its own thread, all at
    one moment."""
    barrier = threading.Barrier(len(calls))
    answers: list[Any] = [None] * len(calls)

    def pay(n: int) -> None:
        invoice_id, body = calls[n]
        barrier.wait()
        answers[n] = desk.call(
            "POST", f"/v1/invoices/{invoice_id}/payments", body, idem=uuid.uuid4().hex
        )

    threads = [threading.Thread(target=pay, args=(n,)) for n in range(len(calls))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(180)
    return answers


def last_fifty(desk: Desk, tag: str, uses: int) -> list[str]:
    """The last $50.00 of a gift card, then of a patient's credit, asked for `uses` times
    at once, each on its own invoice: what went wrong, if anything."""
    wrong: list[str] = []
    sold = desk.call(
        "POST",
        "/v1/gift-cards",
        {"amount": 10000, "currency": "usd", "purchaser_patient_id": f"P-G{tag}", "name": "Buyer"},
        idem=uuid.uuid4().hex,
    ).json()
    desk.call(
        "POST", f"/v1/invoices/{sold['invoice_id']}/payments", {"method": "cash"}, uuid.uuid4().hex
    )
    first = desk.open_invoice(f"P-G{tag}x")
    spend = {"method": "gift_card", "code": sold["code"], "amount": 5000}
    if (
        desk.call("POST", f"/v1/invoices/{first}/payments", spend, uuid.uuid4().hex).status_code
        != 201
    ):
        raise BenchError("could not spend the gift card's first $50.00")
    targets = [desk.open_invoice(f"P-G{tag}{n:03d}") for n in range(uses)]
    began = time.perf_counter()
    answers = each_at_once(desk, [(t, spend) for t in targets])
    took = time.perf_counter() - began
    said = Counter(outcome(a) for a in answers)
    left = desk.call("GET", f"/v1/gift-cards/{sold['code']}").json()["balance"]
    paid = sum(desk.call("GET", f"/v1/invoices/{t}").json()["amount_paid"] for t in targets)
    print(f"        a gift card's last $50.00, {uses} uses at once in {took:.1f} s: {dict(said)}")
    if said.get("201", 0) != 1 or left != 0 or paid != 5000:
        wrong.append(f"gift card: {said.get('201', 0)} winners, {left} left, {paid} paid")

    patient = f"P-C{tag}"
    source = desk.open_invoice(patient, f"BK-{patient}-source")
    desk.call("POST", f"/v1/invoices/{source}/payments", {"method": "cash"}, uuid.uuid4().hex)
    note = {"amount": 5000, "reason": "bench", "approved_by": "bench"}
    if (
        desk.call("POST", f"/v1/invoices/{source}/credit-notes", note, uuid.uuid4().hex).status_code
        != 201
    ):
        raise BenchError("could not give the patient $50.00 of credit")
    targets = [desk.open_invoice(patient, f"BK-{patient}-{n:03d}") for n in range(uses)]
    apply = {"method": "account_credit", "amount": 5000}
    began = time.perf_counter()
    answers = each_at_once(desk, [(t, apply) for t in targets])
    took = time.perf_counter() - began
    said = Counter(outcome(a) for a in answers)
    account = desk.call("GET", f"/v1/patients/{patient}/account").json()
    left = sum(b["credit"] for b in account["balances"])
    paid = sum(desk.call("GET", f"/v1/invoices/{t}").json()["amount_paid"] for t in targets)
    print(
        f"        a patient's last $50.00 of credit, {uses} uses at once in {took:.1f} s:"
        f" {dict(said)}"
    )
    if said.get("201", 0) != 1 or left != 0 or paid != 5000:
        wrong.append(f"credit: {said.get('201', 0)} winners, {left} left, {paid} paid")
    return wrong


def outcome(answer: Any) -> str:
    if answer is None:
        return "no answer"
    if answer.status_code == 201:
        return "201"
    try:
        return f"{answer.status_code} {answer.json().get('code')}"
    except ValueError:
        return str(answer.status_code)


def books(database_url: str, stripe: Stripe, desk: Desk, invoice_id: str) -> list[str]:
    """What is wrong with the invoice's money, if anything."""
    time.sleep(2)  # the stand-in's webhooks land
    paid_at_stripe, _, _ = stripe.money(invoice_id)
    with psycopg.connect(database_url, autocommit=True) as conn:
        charges, cash = conn.execute(
            "SELECT coalesce(sum(amount) FILTER (WHERE kind = 'charge'), 0),"
            " coalesce(sum(amount) FILTER (WHERE kind = 'received'), 0)"
            " FROM ledger_entries WHERE invoice_id = %s",
            (invoice_id,),
        ).fetchone() or (0, 0)
    invoice = desk.call("GET", f"/v1/invoices/{invoice_id}").json()
    wrong = []
    if paid_at_stripe + cash > TOTAL:
        wrong.append(f"collected {paid_at_stripe} at Stripe + {cash} cash > {TOTAL}")
    if charges != paid_at_stripe:
        wrong.append(f"ledger charges {charges} != Stripe's {paid_at_stripe}")
    if invoice["balance_due"] != TOTAL - invoice["amount_paid"]:
        wrong.append(f"balance_due {invoice['balance_due']} for paid {invoice['amount_paid']}")
    return wrong


def run(args: argparse.Namespace) -> int:
    rng = random.Random(args.seed)
    standin = StripeStandIn().start()
    failures: list[str] = []
    with throwaway_database(args.postgres, "billing_bench_parts") as url:
        upgrade(normalise_database_url(url))
        flask_cli("seed", database_url=url)
        key = flask_cli("keys", "create", "parts", "--scopes", SCOPES, database_url=url)
        env = {
            "PATH": str(REPO / ".venv" / "bin") + ":/usr/bin:/bin",
            "DATABASE_URL": url,
            "STRIPE_SECRET_KEY": "sk_test_parts",
            "STRIPE_WEBHOOK_SECRET": "whsec_parts",
            "STRIPE_API_BASE": standin.url,
            "SECRET_KEY": "bench-parts-" + "p" * 32,
            "API_RATE_LIMIT": "1000000 per minute",
            "DB_POOL_SIZE": "20",
            "LOG_LEVEL": "WARNING",
        }
        with tempfile.TemporaryDirectory(prefix="billing-parts-") as logs:
            with gunicorn(
                "parts",
                "billing:create_app()",
                workers=args.workers,
                env=env,
                log_path=Path(logs) / "gunicorn.log",
                ready_path="/readyz",
                ready_status=200,
                extra=["--timeout", "120"],
            ) as server:
                standin.register_webhook(f"{server.base_url}/v1/stripe/webhooks", "whsec_parts")
                desk = Desk(server.base_url, key.strip().splitlines()[-1])
                stripe = Stripe(standin)
                tag = uuid.uuid4().hex[:4]
                for round_ in range(args.rounds):
                    invoice_id = desk.open_invoice(f"P-S{tag}{round_:03d}")
                    bodies = [
                        {
                            "method": rng.choice(["card_on_file", "cash"]),
                            "amount": rng.randrange(2000, 6001, 100),
                        }
                        for _ in range(args.payments)
                    ]
                    began = time.perf_counter()
                    answers = at_once(desk, invoice_id, bodies)
                    took = time.perf_counter() - began
                    wrong = books(url, stripe, desk, invoice_id)
                    said = Counter(outcome(a) for a in answers)
                    asked = sum(int(b["amount"]) for b in bodies)
                    print(
                        f"round {round_ + 1}: {args.payments} parts asking {asked} of {TOTAL}"
                        f" in {took:.1f} s: {dict(said)}"
                        + (f"  WRONG: {wrong}" if wrong else "  books hold")
                    )
                    failures += wrong
                    failures += [f"500: {n}" for o, n in said.items() if o.startswith("500")]

                    # The last $50.00: one winner.
                    last = desk.open_invoice(f"P-L{tag}{round_:03d}")
                    first = desk.call(
                        "POST",
                        f"/v1/invoices/{last}/payments",
                        {"method": "cash", "amount": TOTAL - 5000},
                        idem=uuid.uuid4().hex,
                    )
                    if first.status_code != 201:
                        raise BenchError(f"could not pay the first part: {first.text}")
                    bodies = [
                        {"method": rng.choice(["card_on_file", "cash"]), "amount": 5000}
                        for _ in range(args.payments)
                    ]
                    answers = at_once(desk, last, bodies)
                    said = Counter(outcome(a) for a in answers)
                    wrong = books(url, stripe, desk, last)
                    winners = said.get("201", 0)
                    print(
                        f"        the last $50.00 asked for {args.payments} times at once:"
                        f" {dict(said)}" + (f"  WRONG: {wrong}" if wrong else "")
                    )
                    failures += wrong
                    if winners != 1:
                        failures.append(f"the last $50.00 had {winners} winners")
                    failures += last_fifty(desk, f"{tag}{round_:03d}", args.uses)
    print("\n" + ("every round held" if not failures else f"FAILED: {failures}"))
    return EXIT_MET if not failures else 1


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--postgres", default=DEFAULT_POSTGRES)
    parser.add_argument("--payments", type=int, default=50, help="requests at once")
    parser.add_argument("--workers", type=int, default=4, help="gunicorn workers")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--uses", type=int, default=20, help="uses of a gift card's or credit's last $50 at once"
    )
    parser.add_argument("--seed", type=int, default=1)
    return run_bench(parser, run)


if __name__ == "__main__":
    sys.exit(main())
