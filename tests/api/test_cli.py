"""The command line: db upgrade, seed, keys create and keys revoke."""

from __future__ import annotations

import os
from typing import Any

import pytest
from sqlalchemy import func, select

from billing import create_app
from billing.adapters import db
from billing.adapters.models import ApiKey, PriceVersion


def test_upgrade_and_seed_make_a_usable_database(tmp_path) -> None:
    app = create_app({"DATABASE_URL": f"sqlite:///{tmp_path / 'fresh.sqlite3'}"})
    runner = app.test_cli_runner()
    assert runner.invoke(args=["db", "upgrade"]).exit_code == 0
    first = runner.invoke(args=["seed"])
    assert "added price version 1" in first.output
    second = runner.invoke(args=["seed"])
    assert "nothing added" in second.output
    with app.app_context():
        assert db.session().scalar(select(func.count()).select_from(PriceVersion)) == 1
    app.extensions["billing.db"].engine.dispose()


def test_created_key_is_on_the_last_line_and_works(app, client) -> None:
    runner = app.test_cli_runner()
    result = runner.invoke(
        args=["keys", "create", "booking-system", "--scopes", "quotes:write,invoices:read"]
    )
    assert result.exit_code == 0, result.output
    key = result.output.strip().splitlines()[-1]
    assert key.startswith("ck_")
    assert client.get("/v1/catalog", headers={"Authorization": f"Bearer {key}"}).status_code == 200

    revoked = runner.invoke(args=["keys", "revoke", "booking-system"])
    assert revoked.exit_code == 0
    assert client.get("/v1/catalog", headers={"Authorization": f"Bearer {key}"}).status_code == 401


def test_unknown_scope_is_refused_and_no_key_is_made(app) -> None:
    result = app.test_cli_runner().invoke(args=["keys", "create", "x", "--scopes", "quotes:wrte"])
    assert result.exit_code != 0
    assert "quotes:wrte" in result.output
    with app.app_context():
        assert db.session().scalar(select(func.count()).select_from(ApiKey)) == 0


def test_duplicate_key_name_is_refused(app) -> None:
    runner = app.test_cli_runner()
    runner.invoke(args=["keys", "create", "dup", "--scopes", "quotes:write"])
    result = runner.invoke(args=["keys", "create", "dup", "--scopes", "quotes:write"])
    assert result.exit_code != 0
    assert "already exists" in result.output


def test_revoking_an_unknown_key_fails_clearly(app) -> None:
    result = app.test_cli_runner().invoke(args=["keys", "revoke", "ghost"])
    assert result.exit_code != 0
    assert "ghost" in result.output


def test_stripe_sync_fails_loudly_when_stripe_cannot_be_reached(sqlite_url) -> None:
    app = create_app(
        {
            "TESTING": True,
            "DATABASE_URL": sqlite_url,
            "STRIPE_SECRET_KEY": "sk_test_gone",
            "STRIPE_API_BASE": "http://127.0.0.1:9",  # nothing listens there
            "STRIPE_MAX_NETWORK_RETRIES": 0,
        }
    )
    result = app.test_cli_runner().invoke(args=["stripe", "sync"])
    assert result.exit_code == 1, result.output
    assert "could not be reached" in result.output


def test_commands_fail_with_a_non_zero_exit_when_stripe_is_not_configured(app) -> None:
    runner = app.test_cli_runner()
    result = runner.invoke(args=["stripe", "sync"])
    assert result.exit_code == 1
    assert "STRIPE_SECRET_KEY" in result.output


def test_a_stand_in_left_behind_by_a_stopped_make_run_is_forgotten(tmp_path, capsys) -> None:
    import json
    import subprocess
    import sys

    from billing.config import OFFLINE_STRIPE_FILE, offline_stripe

    settings = {"STRIPE_SECRET_KEY": "sk_test_offline", "STRIPE_API_BASE": "http://127.0.0.1:1"}
    share = tmp_path / OFFLINE_STRIPE_FILE
    share.write_text(json.dumps({**settings, "server_pid": os.getpid()}))
    assert offline_stripe(str(tmp_path)) == settings  # make run is up: use its stand-in

    gone = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        check=True,
        capture_output=True,
        text=True,
    )
    share.write_text(json.dumps({**settings, "server_pid": int(gone.stdout)}))
    assert offline_stripe(str(tmp_path)) == {}
    assert not share.exists()
    assert "has stopped" in capsys.readouterr().err


def flask_command(*args: str, tmp_path: Any, **env: str) -> Any:
    """`flask --app billing ARGS` as an operator types it, in an instance of its own."""
    import subprocess
    import sys
    from pathlib import Path

    settings = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "SECRET_KEY")}
    settings |= {"BILLING_INSTANCE_PATH": str(tmp_path / "instance"), **env}
    return subprocess.run(
        [str(Path(sys.executable).with_name("flask")), "--app", "billing", *args],
        env=settings,
        cwd=Path(__file__).resolve().parents[2],
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_a_missing_key_is_one_line_too(tmp_path: Any) -> None:
    assert flask_command("db", "upgrade", tmp_path=tmp_path).returncode == 0
    ran = flask_command("keys", "revoke", "nobody", tmp_path=tmp_path)
    assert ran.returncode != 0 and ran.stderr.strip() == "Error: No key named 'nobody'."


@pytest.mark.parametrize(
    "args, env, says",
    [
        (("db", "upgrade", "no_such_revision"), {}, "no_such_revision"),
        (
            ("seed",),
            {"DATABASE_URL": "postgresql://postgres@127.0.0.1:5432/no_such_database_here"},
            "no_such_database_here",
        ),
        (("seed",), {"CLINIC_TIMEZONE": "Mars/Phobos"}, "CLINIC_TIMEZONE"),
        (("seed",), {"QUOTE_TTL_HOURS": "a day"}, "QUOTE_TTL_HOURS"),
        (("payments", "reconcile-pending", "--older-than", "-5"), {}, "-5"),
        (("keys", "create", "k", "--scopes", "no:such"), {}, "Unknown scopes"),
        (("keys", "revoke", "nobody"), {}, "not migrated? flask --app billing db upgrade"),
        (("stripe", "sync", "--since", "yesterday"), {}, "yesterday"),
        (("staff", "create"), {}, "Missing argument 'EMAIL'"),
        (("staff", "set-password"), {}, "Missing argument"),
        (("webhooks", "reseal", "--everything"), {}, "--everything"),
        (("payments", "settle-bookings", "extra"), {}, "extra"),
        (("keys", "no-such-command"), {}, "flask --app billing keys --help"),
    ],
)
def test_every_cli_mistake_is_one_line_and_a_non_zero_exit(
    tmp_path: Any, args: tuple[str, ...], env: dict[str, str], says: str
) -> None:
    ran = flask_command(*args, tmp_path=tmp_path, **env)
    assert ran.returncode != 0
    assert "Traceback" not in ran.stderr + ran.stdout
    said = [line for line in ran.stderr.splitlines() if line.strip()]
    assert says in ran.stderr
    assert len(said) == 1 and said[0].startswith("Error: "), ran.stderr
