"""`make run` speaks to a person: a few lines at start (where it serves, the database,
the Stripe stand-in, the worker, where emails go), then one readable line per request;
no warnings meant for other set-ups, no second access line."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from billing.adapters.standin import free_port

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


def test_make_run_says_a_few_lines_then_one_line_per_request(tmp_path: Path) -> None:
    port = free_port()
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("STRIPE_SECRET_KEY", "REDIS_URL", "CELERY_BROKER_URL", "DATABASE_URL")
    }
    env.pop("LOG_FORMAT", None)  # make run's own choice: text
    env["BILLING_INSTANCE_PATH"] = str(tmp_path / "instance")
    for command in (["db", "upgrade"], ["seed"]):
        subprocess.run(
            [str(BIN / "flask"), "--app", "billing", *command], env=env, cwd=REPO, check=True
        )
    server = subprocess.Popen(
        [str(BIN / "python"), "-m", "billing.devserver", "--port", str(port)],
        env=env,
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2).close()
                break
            except OSError:
                assert time.monotonic() < deadline and server.poll() is None
                time.sleep(0.2)
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/v1/catalog", timeout=5)
        except urllib.error.HTTPError as refused:
            assert refused.code == 401
        time.sleep(1)
    finally:
        server.terminate()
        output, _ = server.communicate(timeout=30)
    lines = [line for line in output.splitlines() if line.strip()]
    start = lines[: next(i for i, line in enumerate(lines) if line.startswith("GET "))]
    assert any(f"on http://127.0.0.1:{port}" in line for line in start)
    assert any(line.startswith("database: sqlite:///") for line in start)
    assert any("Stripe stand-in" in line for line in start)
    assert any(line.startswith("task queue:") for line in start)
    assert any(line.startswith("email:") for line in start)
    assert len(start) <= 8, start
    for noise in ("WARNING/MainProcess", "SecurityWarning", "No hostname", "development server"):
        assert noise not in output, noise
    requests = [line for line in lines if line.startswith(("GET ", "POST "))]
    assert [line.split()[:3] for line in requests] == [
        ["GET", "/healthz", "200"],
        ["GET", "/v1/catalog", "401"],
    ]
    assert '"event": "request"' not in output  # JSON is for production's log collectors
