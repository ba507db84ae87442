"""Benchmark POST /v1/quotes under gunicorn and wrk, against a bare Flask baseline.

Run it on demand, never from the test suite:

    make bench                                  # or: .venv/bin/python bench/quotes.py
    .venv/bin/python bench/quotes.py --workers 8 --duration 30

It needs the local PostgreSQL server (127.0.0.1:5432, user postgres, trust auth; see
--postgres) and wrk (`apt-get install -y wrk`). It creates a throwaway database, migrates
and seeds it, creates an API key with scope quotes:write, and starts two gunicorns with
the same settings (`-w 4 -k sync` by default):

- the service, `billing:create_app()`, with LOG_LEVEL=WARNING so that the per-request log
  line does not dominate what is measured;
- the baseline, bench/bare_app.py, whose `POST /v1/quotes` only parses the JSON body and
  echoes it with 201: what Flask, gunicorn and the HTTP round trip cost by themselves.

Each is warmed up, then both are loaded by wrk (bench/quotes.lua: 16 connections, 2
threads) in three rounds of 5 s, taking turns (the order swapped every round, so that a
host whose speed drifts slows both alike), with the same rotation of realistic bookings:
individual IV sessions for new and returning patients, and group IM sessions of 2 to 5
patients who each have IV history or an IV
exemption, so the rules accept every one of them. It prints requests/s, p50 and p99
latency (the median round's) and the count of non-2xx responses for both, each round's
ratio, and checks the targets on the median round: the quote endpoint serves at least
30 % of the baseline's requests/s, with p99 at most 20 ms.
The database and both gunicorns are removed at the end, also on error or Ctrl-C.

Exit status: 0 when both targets are met, 1 when one is missed, 2 when the run is not
valid (non-2xx responses or socket errors, or a failed set-up), 130 when interrupted.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))  # the billing package is used from the checkout, not installed

from common import (  # noqa: E402
    EXIT_INTERRUPTED,
    EXIT_INVALID,
    EXIT_MET,
    EXIT_MISSED,
    BenchError,
    ignore_interrupts,
    interrupt,
    throwaway_database,
)

from billing.adapters.migrate import upgrade  # noqa: E402
from billing.config import normalise_database_url  # noqa: E402

BIN = Path(sys.executable).parent  # the venv's flask and gunicorn
WRK_SCRIPT = BENCH / "quotes.lua"
DEFAULT_POSTGRES = "postgresql://postgres@127.0.0.1:5432/postgres"
SERVICE_LOG_LEVEL = "WARNING"

# Targets for the quote endpoint, at 16 connections.
MIN_THROUGHPUT_RATIO = 0.30  # of the bare baseline's requests/s (issue 14)
MAX_P99_MS = 20.0


# --- The bookings ----------------------------------------------------------------------

PATIENT_NAMES = [
    "Ana Ruiz",
    "Ben Okafor",
    "Chloé Martin",
    "David Cohen",
    "Elif Yılmaz",
    "Farah Haddad",
    "Grace Kim",
    "Hiroshi Tanaka",
    "Isabel Souza",
    "Jamal Carter",
    "Katarzyna Nowak",
    "Liam O'Brien",
    "Maya Patel",
    "Noah Schmidt",
    "Olivia Brown",
    "Pedro Alves",
]
IV_EXEMPTION = {"reason": "difficult_venous_access", "approved_by": "Dr. Lee"}
CLINIC_TIMEZONE = timezone(timedelta(hours=-8))


def _patient(index: int) -> dict[str, Any]:
    name = PATIENT_NAMES[index]
    first, last = name.split(" ", 1)
    email = f"{first.lower()}.{last[0].lower()}@example.org".replace("é", "e")
    return {"patient_id": f"P-{1001 + index}", "name": name, "email": email}


def booking_bodies(count: int, now: datetime, seed: int = 412) -> list[dict[str, Any]]:
    """`count` bookings that the rules accept: 40 % individual IV, 60 % group IM of 2 to 5."""
    rng = random.Random(seed)
    local_now = now.astimezone(CLINIC_TIMEZONE)
    bodies = []
    for n in range(count):
        scheduled_at = (local_now + timedelta(days=3 + n % 4)).replace(
            hour=9 + n % 8, minute=0, second=0, microsecond=0
        )
        chosen = rng.sample(range(len(PATIENT_NAMES)), rng.randint(2, 5))
        if n % 5 < 2:
            # Individual IV: a new patient's first session (n % 5 == 0) or a returning one.
            session_type = "iv_individual"
            patients = [_patient(chosen[0])]
            if n % 5 == 1:
                patients[0]["prior_iv_sessions"] = rng.randint(1, 6)
        else:
            # Group IM: every patient has had an IV session or carries an IV exemption.
            session_type = "im_group"
            patients = [_patient(index) for index in chosen]
            for patient in patients:
                if rng.random() < 0.7:
                    patient["prior_iv_sessions"] = rng.randint(1, 12)
                else:
                    patient["iv_exemption"] = dict(IV_EXEMPTION)
        bodies.append(
            {
                "booking_id": f"BK-{scheduled_at.year}-{4000 + n:04d}",
                "session_type": session_type,
                "scheduled_at": scheduled_at.isoformat(timespec="seconds"),
                "currency": "usd",
                "patients": patients,
            }
        )
    return bodies


def describe_bodies(bodies: Sequence[dict[str, Any]]) -> str:
    individual = sum(body["session_type"] == "iv_individual" for body in bodies)
    group_sizes = [len(b["patients"]) for b in bodies if b["session_type"] == "im_group"]
    return (
        f"{len(bodies)} bookings in rotation: {individual} iv_individual, "
        f"{len(group_sizes)} im_group of {min(group_sizes)}-{max(group_sizes)} patients"
    )


# --- The database ----------------------------------------------------------------------


def flask_cli(*args: str, database_url: str) -> str:
    """Run `flask --app billing ARGS` on the database; returns its standard output."""
    command = [str(BIN / "flask"), "--app", "billing", *args]
    env = {**os.environ, "DATABASE_URL": database_url}
    done = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise BenchError(f"`flask --app billing {' '.join(args)}` failed:\n{done.stderr}")
    return done.stdout


def prepare_database(database_url: str) -> str:
    """Migrate and seed the database; returns a new API key with scope quotes:write."""
    upgrade(normalise_database_url(database_url))
    flask_cli("seed", database_url=database_url)
    output = flask_cli(
        "keys", "create", "bench", "--scopes", "quotes:write", database_url=database_url
    )
    return output.strip().splitlines()[-1]


# --- The servers -----------------------------------------------------------------------


@dataclass(frozen=True)
class Server:
    name: str
    base_url: str
    process: subprocess.Popen[bytes]
    log_path: Path


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def gunicorn_options(workers: int) -> list[str]:
    return ["-w", str(workers), "-k", "sync"]


@contextmanager
def gunicorn(
    name: str,
    app: str,
    *,
    workers: int,
    env: dict[str, str],
    log_path: Path,
    ready_path: str,
    ready_status: int,
    extra: Sequence[str] = (),
) -> Iterator[Server]:
    """Run `app` under gunicorn on a free loopback port until the block ends."""
    port = free_port()
    command = [
        str(BIN / "gunicorn"),
        *gunicorn_options(workers),
        "--bind",
        f"127.0.0.1:{port}",
        *extra,
        app,
    ]
    with open(log_path, "wb") as log:
        # A session of its own: Ctrl-C reaches this script, which then stops it in order.
        process = subprocess.Popen(
            command, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
    server = Server(name, f"http://127.0.0.1:{port}", process, log_path)
    try:
        wait_until_ready(server, ready_path, ready_status)
        yield server
    finally:
        stop(process)


def wait_until_ready(server: Server, path: str, status: int, timeout: float = 30.0) -> None:
    """Poll `path` until it answers `status`; fail early if gunicorn exits."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise BenchError(
                f"{server.name} gunicorn exited with status {server.process.returncode}:\n"
                + log_tail(server.log_path)
            )
        try:
            with urllib.request.urlopen(server.base_url + path, timeout=2) as response:
                answered = response.status
        except urllib.error.HTTPError as error:
            answered = error.code
        except (urllib.error.URLError, OSError):
            answered = None
        if answered == status:
            return
        time.sleep(0.1)
    raise BenchError(
        f"{server.name} did not answer {path} with {status} within {timeout:.0f} s:\n"
        + log_tail(server.log_path)
    )


def stop(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM is gunicorn's graceful stop; kill its process group if that hangs."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def log_tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


# --- Checking and loading --------------------------------------------------------------


def post_json(url: str, body: dict[str, Any], api_key: str) -> tuple[int, bytes]:
    request = urllib.request.Request(
        url,
        data=json.dumps(body).encode(),
        method="POST",
        headers={"Content-Type": "application/json", "Authorization": f"Bearer {api_key}"},
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def check_bodies(server: Server, bodies: Sequence[dict[str, Any]], api_key: str) -> None:
    """Every booking must get a 201 before we time anything; a refusal is a broken bench."""
    for body in bodies:
        status, answer = post_json(server.base_url + "/v1/quotes", body, api_key)
        if status != 201:
            raise BenchError(
                f"{server.name} answered {status} to booking {body['booking_id']}:\n"
                f"{answer.decode(errors='replace')[:2000]}\nbody: {json.dumps(body)}"
            )


@dataclass(frozen=True)
class Result:
    requests: int
    requests_per_s: float
    p50_ms: float
    p99_ms: float
    non_2xx: int
    socket_errors: int
    statuses: dict[int, int]

    @property
    def valid(self) -> bool:
        return self.requests > 0 and self.non_2xx == 0 and self.socket_errors == 0


def wrk(url: str, seconds: int, args: argparse.Namespace, env: dict[str, str]) -> Result:
    command = [
        "wrk",
        f"-t{args.threads}",
        f"-c{args.connections}",
        f"-d{seconds}s",
        "--latency",
        "-s",
        str(WRK_SCRIPT),
        url,
    ]
    done = subprocess.run(command, env=env, capture_output=True, text=True)
    figures = dict(
        line.removeprefix("BENCH ").split("=", 1)
        for line in done.stdout.splitlines()
        if line.startswith("BENCH ")
    )
    if done.returncode != 0 or "requests_per_s" not in figures:
        raise BenchError(f"wrk failed on {url}:\n{done.stdout}{done.stderr}")
    return Result(
        requests=int(figures["requests"]),
        requests_per_s=float(figures["requests_per_s"]),
        p50_ms=float(figures["p50_ms"]),
        p99_ms=float(figures["p99_ms"]),
        non_2xx=int(figures["non_2xx"]),
        socket_errors=int(figures["socket_errors"]),
        statuses={
            int(key.removeprefix("status_")): int(value)
            for key, value in figures.items()
            if key.startswith("status_")
        },
    )


def warm_up(server: Server, args: argparse.Namespace, env: dict[str, str]) -> None:
    """All workers, connection pools and caches: not measured."""
    if args.warmup > 0:
        print(f"warming up {server.name}: {args.warmup} s ...")
        wrk(server.base_url + "/v1/quotes", args.warmup, args, env)


@dataclass(frozen=True)
class Round:
    quote: Result
    bare: Result

    @property
    def ratio(self) -> float:
        return (
            self.quote.requests_per_s / self.bare.requests_per_s
            if self.bare.requests_per_s
            else 0.0
        )


def measure(
    service: Server, bare: Server, args: argparse.Namespace, env: dict[str, str]
) -> list[Round]:
    """`--rounds` rounds of `--duration / --rounds` seconds each for both servers, the
    order swapped every round: a host whose speed drifts (other tenants, frequency) then
    slows both alike, rather than whichever ran second."""
    seconds = max(1, round(args.duration / args.rounds))
    print(f"measuring: {args.rounds} rounds of {seconds} s for each server, alternating ...")
    rounds = []
    for number in range(args.rounds):
        order = (service, bare) if number % 2 == 0 else (bare, service)
        results = {
            server.name: wrk(server.base_url + "/v1/quotes", seconds, args, env) for server in order
        }
        rounds.append(Round(results[service.name], results[bare.name]))
    return rounds


def combined(results: Sequence[Result]) -> Result:
    """All rounds of one server: their requests and errors added, rates and latencies
    the median round's."""
    return Result(
        requests=sum(r.requests for r in results),
        requests_per_s=statistics.median(r.requests_per_s for r in results),
        p50_ms=statistics.median(r.p50_ms for r in results),
        p99_ms=statistics.median(r.p99_ms for r in results),
        non_2xx=sum(r.non_2xx for r in results),
        socket_errors=sum(r.socket_errors for r in results),
        statuses={
            code: sum(r.statuses.get(code, 0) for r in results)
            for code in sorted({code for r in results for code in r.statuses})
        },
    )


# --- Report ----------------------------------------------------------------------------


def report(
    rounds: Sequence[Round], args: argparse.Namespace, bodies: Sequence[dict[str, Any]]
) -> int:
    quote = combined([r.quote for r in rounds])
    bare = combined([r.bare for r in rounds])
    pool_size = os.environ.get("DB_POOL_SIZE") or "5 (default)"
    print()
    print(f"gunicorn:  {' '.join(gunicorn_options(args.workers))}, on 127.0.0.1, same for both")
    print(
        f"service:   billing:create_app(), LOG_LEVEL={SERVICE_LOG_LEVEL}, DB_POOL_SIZE={pool_size}"
    )
    print("baseline:  bench/bare_app.py:create_bare_app(), JSON echo")
    print(
        f"wrk:       -t{args.threads} -c{args.connections}, {args.rounds} rounds of "
        f"{max(1, round(args.duration / args.rounds))} s each, alternating, after a "
        f"{args.warmup} s warm-up; {describe_bodies(bodies)}"
    )
    print(f"host:      {os.cpu_count()} CPUs, shared by wrk, both gunicorns and PostgreSQL")
    print()
    print(
        f"{'endpoint':<24}{'req/s':>10}{'p50 ms':>10}{'p99 ms':>10}{'non-2xx':>10}{'sock err':>10}"
    )
    for label, result in (("quote POST /v1/quotes", quote), ("bare  POST /v1/quotes", bare)):
        print(
            f"{label:<24}{result.requests_per_s:>10.1f}{result.p50_ms:>10.2f}"
            f"{result.p99_ms:>10.2f}{result.non_2xx:>10}{result.socket_errors:>10}"
        )
    print()
    print(f"{'round':<8}{'quote req/s':>14}{'bare req/s':>14}{'ratio':>9}{'quote p99 ms':>15}")
    for number, one in enumerate(rounds, 1):
        print(
            f"{number:<8}{one.quote.requests_per_s:>14.1f}{one.bare.requests_per_s:>14.1f}"
            f"{one.ratio:>9.1%}{one.quote.p99_ms:>15.2f}"
        )
    ratio = statistics.median(one.ratio for one in rounds)
    print()
    print(f"quote / bare throughput (median round): {ratio:.1%}")

    throughput_met = ratio >= MIN_THROUGHPUT_RATIO
    latency_met = quote.p99_ms <= MAX_P99_MS
    print(
        f"target: quote throughput >= {MIN_THROUGHPUT_RATIO:.0%} of bare: "
        f"{'met' if throughput_met else 'MISSED'} ({ratio:.1%})"
    )
    print(
        f"target: quote p99 <= {MAX_P99_MS:.0f} ms at {args.connections} connections: "
        f"{'met' if latency_met else 'MISSED'} ({quote.p99_ms:.2f} ms)"
    )

    invalid = [(name, r) for name, r in (("quote", quote), ("bare", bare)) if not r.valid]
    for name, result in invalid:
        statuses = ", ".join(f"{code}: {n}" for code, n in sorted(result.statuses.items()))
        print()
        print("!" * 78)
        print(f"!!! INVALID BENCHMARK: the {name} endpoint had {result.non_2xx} non-2xx responses")
        print(f"!!! ({statuses or 'none'}) and {result.socket_errors} socket errors.")
        print("!!! Its figures time failures, not quotes. Do not use them.")
        print("!" * 78)
    if invalid:
        return EXIT_INVALID
    return EXIT_MET if throughput_met and latency_met else EXIT_MISSED


# --- Main ------------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--workers", type=int, default=4, help="gunicorn workers (default 4)")
    parser.add_argument(
        "--duration", type=int, default=15, help="measured seconds per endpoint (default 15)"
    )
    parser.add_argument(
        "--rounds",
        type=int,
        default=3,
        help="rounds the measured seconds are cut into, alternating the servers (default 3)",
    )
    parser.add_argument(
        "--warmup", type=int, default=3, help="warm-up seconds per endpoint (default 3)"
    )
    parser.add_argument("--connections", type=int, default=16, help="wrk connections (default 16)")
    parser.add_argument("--threads", type=int, default=2, help="wrk threads (default 2)")
    parser.add_argument(
        "--bodies", type=int, default=50, help="bookings in the rotation (default 50)"
    )
    parser.add_argument(
        "--postgres",
        default=DEFAULT_POSTGRES,
        help=f"admin URL of the PostgreSQL server to create the database on ({DEFAULT_POSTGRES})",
    )
    return parser.parse_args(argv)


def run(args: argparse.Namespace, stack: ExitStack) -> int:
    workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="billing-bench-")))
    bodies = booking_bodies(args.bodies, datetime.now(UTC))
    bodies_path = workdir / "bodies.jsonl"
    bodies_path.write_text("".join(json.dumps(body) + "\n" for body in bodies))

    print("creating and migrating a throwaway database ...")
    database_url = stack.enter_context(throwaway_database(args.postgres, "billing_bench"))
    api_key = prepare_database(database_url)

    print(f"starting gunicorn ({' '.join(gunicorn_options(args.workers))}) twice ...")
    service_env = {
        **os.environ,
        "DATABASE_URL": database_url,
        "LOG_LEVEL": SERVICE_LOG_LEVEL,
        # One key sends every request: its rate limit (600 a minute by default) would
        # turn the run into a measure of 429s.
        "API_RATE_LIMIT": "100000000 per minute",
    }
    service = stack.enter_context(
        gunicorn(
            "quote service",
            "billing:create_app()",
            workers=args.workers,
            env=service_env,
            log_path=workdir / "service.log",
            ready_path="/healthz",
            ready_status=200,
        )
    )
    bare = stack.enter_context(
        gunicorn(
            "bare baseline",
            "bare_app:create_bare_app()",
            workers=args.workers,
            env=dict(os.environ),
            log_path=workdir / "bare.log",
            ready_path="/healthz",
            ready_status=404,  # it has no /healthz: any answer means it serves
            extra=["--pythonpath", str(BENCH)],
        )
    )
    for server in (service, bare):
        check_bodies(server, bodies, api_key)

    wrk_env = {**os.environ, "BENCH_BODIES": str(bodies_path), "BENCH_API_KEY": api_key}
    for server in (service, bare):
        warm_up(server, args, wrk_env)
    return report(measure(service, bare, args, wrk_env), args, bodies)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if shutil.which("wrk") is None:
        print(
            "bench: wrk is not installed. Install it with `apt-get install -y wrk` "
            "(Debian/Ubuntu), then run the benchmark again.",
            file=sys.stderr,
        )
        return EXIT_INVALID
    signal.signal(signal.SIGTERM, interrupt)
    try:
        with ExitStack() as stack:
            try:
                return run(args, stack)
            finally:
                ignore_interrupts()
                print("cleaning up: stopping gunicorn ...")
    except BenchError as error:
        print(f"bench: error: {error}", file=sys.stderr)
        return EXIT_INVALID
    except KeyboardInterrupt:
        print("bench: interrupted; gunicorns stopped and database dropped", file=sys.stderr)
        return EXIT_INTERRUPTED


if __name__ == "__main__":
    sys.exit(main())
