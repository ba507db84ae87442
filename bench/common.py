"""What both benchmarks need: a throwaway PostgreSQL database and tidy interrupts."""

from __future__ import annotations

import argparse
import signal
import sys
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import FrameType
from urllib.parse import urlsplit

import psycopg
from psycopg import sql

EXIT_MET, EXIT_MISSED, EXIT_INVALID, EXIT_INTERRUPTED = 0, 1, 2, 130


class BenchError(Exception):
    """The benchmark could not be set up or run; the message says why."""


@contextmanager
def throwaway_database(admin_url: str, prefix: str, keep: bool = False) -> Iterator[str]:
    """A new, empty database on the server of `admin_url`; dropped on the way out."""
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    try:
        admin = psycopg.connect(admin_url, autocommit=True, connect_timeout=5)
    except psycopg.OperationalError as error:
        raise BenchError(f"cannot connect to PostgreSQL at {admin_url}: {error}") from None
    with admin:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    url = urlsplit(admin_url)._replace(path=f"/{name}").geturl()
    try:
        yield url
    finally:
        if keep:
            print(f"kept the database: {url}")
        else:
            print("dropping the database ...")
            with psycopg.connect(admin_url, autocommit=True, connect_timeout=5) as admin:
                admin.execute(
                    sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
                )


def interrupt(signum: int, _frame: FrameType | None) -> None:
    """SIGTERM as Ctrl-C, so the clean-up runs either way."""
    raise KeyboardInterrupt(f"signal {signum}")


def ignore_interrupts() -> None:
    """Let the clean-up finish even if Ctrl-C is pressed again."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)


def run_bench(parser: argparse.ArgumentParser, run: Callable[[argparse.Namespace], int]) -> int:
    """Parse the arguments and run: Ctrl-C stops the run in order (exit 130), an invalid
    run says why (exit 2)."""
    args = parser.parse_args()
    signal.signal(signal.SIGINT, interrupt)
    try:
        return run(args)
    except BenchError as error:
        print(f"invalid run: {error}", file=sys.stderr)
        return EXIT_INVALID
    except KeyboardInterrupt:
        ignore_interrupts()
        return EXIT_INTERRUPTED
