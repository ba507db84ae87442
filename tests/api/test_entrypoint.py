"""The Docker image's entrypoint starts what its role asks for (stand-in programs record
what would have run: no Docker engine runs on these machines)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

ENTRYPOINT = Path(__file__).resolve().parents[2] / "docker-entrypoint.sh"


@pytest.fixture
def bin_dir(tmp_path: Path) -> Path:
    for program in ("flask", "gunicorn", "celery"):
        stub = tmp_path / program
        stub.write_text(f'#!/bin/sh\necho "{program} $*" >> "$RAN"\n')
        stub.chmod(0o755)
    return tmp_path


def run(bin_dir: Path, *args: str, **env: str) -> tuple[int, list[str], str]:
    ran = bin_dir / "ran.txt"
    ran.write_text("")
    base = {"PATH": f"{bin_dir}:/usr/bin:/bin", "RAN": str(ran), "PORT": "8000"}
    base["BILLING_ROLE_FILE"] = str(bin_dir / "role")
    done = subprocess.run(
        ["sh", str(ENTRYPOINT), *args],
        env={**base, "WEB_CONCURRENCY": "4", **env},
        capture_output=True,
        text=True,
        cwd=bin_dir,
    )
    return done.returncode, ran.read_text().splitlines(), done.stderr


SET = {"DATABASE_URL": "postgresql://db/billing", "SECRET_KEY": "s", "REDIS_URL": "redis://r"}


def test_the_web_role_migrates_then_serves_with_the_metrics_hooks(bin_dir: Path) -> None:
    code, ran, _ = run(bin_dir, **SET)
    assert code == 0
    assert ran[0] == "flask --app billing db upgrade"
    assert ran[1].startswith("gunicorn --config python:billing.gunicorn_conf --bind 0.0.0.0:8000")


def test_worker_and_beat_start_celery_and_need_a_broker(bin_dir: Path) -> None:
    assert run(bin_dir, "worker", **SET)[1] == [
        "celery -A billing.worker worker --loglevel INFO --concurrency 4"
    ]
    assert run(bin_dir, "beat", **SET)[1][0].startswith("celery -A billing.worker beat")
    code, ran, err = run(bin_dir, "worker", DATABASE_URL="x", SECRET_KEY="s")
    assert code != 0 and ran == [] and "REDIS_URL" in err


def test_a_secret_key_is_required_and_other_commands_run_as_given(bin_dir: Path) -> None:
    code, _, err = run(bin_dir, DATABASE_URL="postgresql://db/billing")
    assert code != 0 and "SECRET_KEY" in err
    assert run(bin_dir, "flask", "--app", "billing", "seed", **SET)[1] == [
        "flask --app billing seed"
    ]
    assert os.access(ENTRYPOINT, os.X_OK)
