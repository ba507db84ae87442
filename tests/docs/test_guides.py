"""The README and every guide in docs/ run exactly as written: each ```sh block, in order,
against `make run`'s server in a fresh instance (SQLite, the Stripe stand-in, the
in-process worker), each step's output held to what the text says (tests/docs/guides.py
says how a guide writes that)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from billing.adapters.standin import free_port
from tests.docs.guides import outputs, problems, script, steps_of

REPO = Path(__file__).resolve().parents[2]
GUIDES = ["README.md", *(str(p.relative_to(REPO)) for p in sorted((REPO / "docs").glob("*.md")))]
RUNS_ELSEWHERE = {"docs/design.md"}  # the contract: no commands to run
BIN = Path(sys.executable).parent
# Settings a developer's shell may hold that would point the server elsewhere.
OUTSIDE = ("STRIPE_SECRET_KEY", "REDIS_URL", "CELERY_BROKER_URL", "DATABASE_URL", "SECRET_KEY")


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[int, dict[str, str]]]:
    """`make run` in a folder of its own: migrated, seeded, then the dev server."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k not in OUTSIDE}
    env |= {
        "BILLING_INSTANCE_PATH": str(tmp_path / "instance"),
        "TMPDIR": str(tmp_path),
        "PATH": f"{BIN}{os.pathsep}{env.get('PATH', '')}",
        "LOG_LEVEL": "WARNING",
    }
    flask = [str(BIN / "flask"), "--app", "billing"]
    for command in (["db", "upgrade"], ["seed"]):
        subprocess.run([*flask, *command], env=env, cwd=REPO, check=True, capture_output=True)
    log = open(tmp_path / "server.log", "wb")  # noqa: SIM115 (open for the server's life)
    server = subprocess.Popen(
        [str(BIN / "python"), "-m", "billing.devserver", "--port", str(port)],
        env=env,
        cwd=REPO,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    deadline = time.monotonic() + 60
    while True:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=2):
                break
        except OSError:
            if server.poll() is not None or time.monotonic() > deadline:
                log.close()
                raise RuntimeError((tmp_path / "server.log").read_text()) from None
            time.sleep(0.2)
    yield port, env
    server.terminate()
    server.wait(30)
    log.close()


@pytest.mark.parametrize("guide", [g for g in GUIDES if g not in RUNS_ELSEWHERE])
def test_the_guide_runs_as_written(guide: str, served: tuple[int, dict[str, str]]) -> None:
    port, env = served
    steps = steps_of((REPO / guide).read_text())
    assert steps, f"{guide} has no ```sh block to run"
    ran = subprocess.run(
        ["bash"],
        input=script(steps, port),
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=600,
    )
    results = outputs(ran.stdout)
    found: list[str] = []
    for index, step in enumerate(steps):
        if index not in results:
            found.append(f"line {step.line}: never ran ({ran.stderr[-300:]})")
            break
        output, status = results[index]
        found += problems(step, output, status)
    assert found == [], f"{guide} does not do what it says:\n" + "\n".join(found)
