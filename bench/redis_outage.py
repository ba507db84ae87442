"""Quotes while Redis is away: latency stays within twice its normal, and readiness stays
200 (degraded), whether Redis refuses connections or stops answering. Run it on demand:

    .venv/bin/python bench/redis_outage.py [--quotes 400] [--workers 2]

gunicorn (`--workers`, sync) on a throwaway PostgreSQL database with the rate limits in
Redis (127.0.0.1:6379), reached through a TCP proxy of the run's own; the machine's Redis
is never stopped. One client quotes one after another, `--quotes` per phase:

  up        Redis answering
  refused   the proxy closed: every connection refused at once
  silent    the proxy accepts and never answers (a host gone, a paused server): the case
            that costs a connect or read timeout per request without the breaker
  back      Redis answering again

For each phase: p50, p99 and max of the quotes' latency, how many answered 201, and what
/readyz said. The run meets its target (exit 0) when every quote is a 201 and each outage
phase's p50 is at most twice the `up` phase's; exit 1 otherwise, 2 on an invalid run.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

import requests  # noqa: E402
from common import (  # noqa: E402
    EXIT_MET,
    run_bench,
    throwaway_database,
)
from quotes import gunicorn, prepare_database  # noqa: E402

from tests.integrations.tcp_proxy import TcpProxy  # noqa: E402

DEFAULT_POSTGRES = "postgresql://postgres@127.0.0.1:5432/postgres"
PHASES = ("up", "refused", "silent", "back")


def quote_body(n: int) -> dict[str, object]:
    when = time.strftime("%Y-%m-%dT10:00:00Z", time.gmtime(time.time() + 7 * 86400))
    return {
        "booking_id": f"BK-R{n:06d}-{uuid.uuid4().hex[:6]}",
        "session_type": "iv_individual",
        "scheduled_at": when,
        "currency": "usd",
        "patients": [{"patient_id": f"P-R{n:06d}", "name": "Redis Patient"}],
    }


def phase(base_url: str, key: str, count: int, start: int) -> tuple[list[float], int, str]:
    """`count` quotes one after another: their latencies (ms), how many were 201, and
    what /readyz answered after them."""
    session = requests.Session()
    headers = {"Authorization": f"Bearer {key}"}
    latencies, created = [], 0
    for n in range(start, start + count):
        began = time.perf_counter()
        answer = session.post(f"{base_url}/v1/quotes", json=quote_body(n), headers=headers)
        latencies.append((time.perf_counter() - began) * 1000)
        created += answer.status_code == 201
    ready = session.get(f"{base_url}/readyz", timeout=30)
    said = (
        ready.json().get("status", "")
        if ready.headers.get("content-type", "").startswith("application/json")
        else ""
    )
    return latencies, created, f"{ready.status_code} {said}".strip()


def run(args: argparse.Namespace) -> int:
    proxy = TcpProxy(("127.0.0.1", 6379)).start()
    prefix = f"bench-redis-{uuid.uuid4().hex[:8]}"
    results = {}
    with throwaway_database(args.postgres, "billing_bench_redis") as url:
        key = prepare_database(url)
        env = {
            "PATH": str(REPO / ".venv" / "bin") + ":/usr/bin:/bin",
            "DATABASE_URL": url,
            "REDIS_URL": f"redis://127.0.0.1:{proxy.port}/9",
            "RATE_LIMIT_KEY_PREFIX": prefix,
            "API_RATE_LIMIT": "1000000 per minute",
            "SECRET_KEY": "bench-redis-" + "r" * 32,
            "LOG_LEVEL": "WARNING",
        }
        with tempfile.TemporaryDirectory(prefix="billing-redis-") as logs:
            with gunicorn(
                "redis",
                "billing:create_app()",
                workers=args.workers,
                env=env,
                log_path=Path(logs) / "gunicorn.log",
                ready_path="/readyz",
                ready_status=200,
            ) as server:
                phase(server.base_url, key, 50, 0)  # warm up
                for number, name in enumerate(PHASES):
                    if name == "refused":
                        proxy.cut()
                    elif name == "silent":
                        proxy.hang()
                    elif name == "back":
                        proxy.restore()
                        time.sleep(args.probe_wait)  # the breaker's next probe
                    print(f"{name}: {args.quotes} quotes ...", flush=True)
                    results[name] = phase(server.base_url, key, args.quotes, (number + 1) * 100_000)
    proxy.cut()
    normal = statistics.median(results["up"][0])
    print(f"\n{'phase':<8} {'201s':>6} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8}  readyz")
    met = True
    for name in PHASES:
        latencies, created, ready = results[name]
        ordered = sorted(latencies)
        p50 = statistics.median(ordered)
        p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
        print(f"{name:<8} {created:>6} {p50:>8.1f} {p99:>8.1f} {ordered[-1]:>8.1f}  {ready}")
        met &= created == len(latencies) and not ready.startswith("503")
        if name in ("refused", "silent"):
            met &= p50 <= 2 * normal
    print(json.dumps({n: round(statistics.median(r[0]), 1) for n, r in results.items()}))
    return EXIT_MET if met else 1


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--postgres", default=DEFAULT_POSTGRES)
    parser.add_argument("--quotes", type=int, default=400, help="quotes per phase")
    parser.add_argument("--workers", type=int, default=2, help="gunicorn workers")
    parser.add_argument("--probe-wait", type=float, default=6.0, help="seconds before `back`")
    return run_bench(parser, run)


if __name__ == "__main__":
    sys.exit(main())
