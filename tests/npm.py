"""Tools from the npm registry that a test needs (a linter, axe-core), installed by the
test itself into .venv/npm once: the next machine has only what the repo's files install.
Without npm they skip with the reason, except under CI=true, where that fails."""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
from pathlib import Path

import pytest

PREFIX = Path(__file__).resolve().parents[1] / ".venv" / "npm"


def npm_package(spec: str, wanted: str) -> Path:
    """The file `wanted` (relative to node_modules) of the npm package `spec` (name@version),
    installed on first use."""
    path = PREFIX / "node_modules" / wanted
    if path.exists():
        return path
    npm = shutil.which("npm")
    if npm is None:
        if os.environ.get("CI"):
            pytest.fail(f"npm is required under CI for {spec}")
        pytest.skip(f"npm not found: {spec} cannot be installed")
    PREFIX.mkdir(parents=True, exist_ok=True)
    with open(PREFIX / ".lock", "w") as lock:  # pytest-xdist workers install one at a time
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not path.exists():
            subprocess.run(
                [npm, "install", "--no-audit", "--no-fund", "--silent", "--prefix", str(PREFIX)]
                + [spec],
                check=True,
                capture_output=True,
                timeout=300,
            )
    assert path.exists(), f"{spec} installed without {wanted}"
    return path
