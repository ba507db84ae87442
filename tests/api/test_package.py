"""The installable package: the wheel holds the service and nothing else, and installed
on its own it migrates, seeds and serves from any working directory."""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "-q",
            "--no-deps",
            "--no-build-isolation",
            "-w",
            str(out),
            str(REPO),
        ],
        check=True,
        capture_output=True,
    )
    [built] = out.glob("clinic_billing-*.whl")
    return built


def test_wheel_holds_the_service_its_migrations_and_pages_only(wheel: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    for expected in (
        "billing/__init__.py",
        "billing/services/payments/charges.py",
        "billing/templates/pay/pay.html",
        "billing/static/pay.js",
        "billing/migrations/env.py",
        "billing/migrations/script.py.mako",
        "billing/migrations/versions/0005_collect_once.py",
        "billing/migrations/versions/0006_cache_state.py",
        "schemas/invoices.py",
    ):
        assert expected in names
    # Everything the service is made of, so a new package or template folder left out of
    # pyproject.toml fails here rather than in production.
    root = Path(__file__).resolve().parents[2]
    shipped = {".py", ".html", ".txt", ".css", ".js", ".mako"}
    source = {
        str(path.relative_to(root))
        for folder in ("billing", "schemas")
        for path in (root / folder).rglob("*")
        if path.is_file() and path.suffix in shipped and "__pycache__" not in path.parts
    }
    source |= {
        "billing/" + str(path.relative_to(root))
        for path in (root / "migrations").rglob("*")
        if path.is_file() and path.suffix in shipped and "__pycache__" not in path.parts
    }
    assert source - set(names) == set()
    tops = {name.split("/")[0] for name in names if not name.startswith("clinic_billing-")}
    assert tops == {"billing", "schemas"}  # no bench/, tests/ or a top-level migrations/


def test_installed_wheel_migrates_seeds_and_serves_elsewhere(wheel: Path, tmp_path: Path) -> None:
    target = tmp_path / "site"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "-q",
            "--no-deps",
            "--target",
            str(target),
            str(wheel),
        ],
        check=True,
        capture_output=True,
    )
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {
        **os.environ,
        "PYTHONPATH": str(target),  # the installed copy, not this checkout
        "DATABASE_URL": f"sqlite:///{tmp_path / 'billing.sqlite3'}",
        "SECRET_KEY": "package-test",
    }

    def run(*args: str) -> str:
        done = subprocess.run(
            [sys.executable, *args], cwd=elsewhere, env=env, capture_output=True, text=True
        )
        assert done.returncode == 0, done.stderr
        return done.stdout

    assert "database at head" in run("-m", "flask", "--app", "billing", "db", "upgrade")
    assert "added price version" in run("-m", "flask", "--app", "billing", "seed")
    served = run(
        "-c",
        "import billing; c = billing.create_app().test_client(); "
        "print(billing.__file__); print(c.get('/v1/catalog').status_code); "
        "print(c.get('/static/pay.js').status_code); print(c.get('/pay/x').status_code)",
    ).split()
    assert served[0].startswith(str(target))
    assert served[1:] == ["401", "200", "404"]  # the API, static files, the pay page's 404
