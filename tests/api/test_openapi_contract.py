"""The OpenAPI document tells the truth: schemathesis generates requests from the app's own
/openapi.json and every answer must be documented, in status and in body.

It runs against the app served over HTTP on PostgreSQL, with the Stripe stand-in behind
it and a key holding every scope; each operation gets at least FUZZ_EXAMPLES generated
cases, and the stateful phase follows the document's links (quote -> invoice -> payment
-> refund). Any server error, undocumented status or body that breaks its schema fails.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient

from billing.adapters import db
from billing.domain.access import SCOPES
from billing.services.access import keys

# Bounded to keep `make test` within its time (alone on these machines: the coverage phase
# 35 s, 25 generated cases per operation 40 s, the links 18 s); `make fuzz` runs 300 per
# operation. FUZZ_PHASES runs some phases only (examples,coverage,fuzzing,stateful).
FUZZ_EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "25"))
CHECKS = "not_a_server_error,status_code_conformance,response_schema_conformance"


@pytest.mark.parametrize("stripe_app", ["postgresql"], indirect=True)
def test_no_response_differs_from_the_document(stripe_app: Flask, tmp_path: Path) -> None:
    with stripe_app.app_context():
        _, plain = keys.create_key(db.session(), "fuzzer", sorted(SCOPES))
    command = [
        str(Path(sys.executable).with_name("schemathesis")),
        "run",
        f"{stripe_app.config['LIVE_URL']}/openapi.json",
        "--header",
        f"Authorization: Bearer {plain}",
        "--checks",
        CHECKS,
        "--max-examples",
        str(FUZZ_EXAMPLES),
        "--phases",
        os.environ.get("FUZZ_PHASES", "examples,coverage,fuzzing,stateful"),
        "--request-timeout",
        "20",
        # One worker: as fast on two cores, and CPython 3.11.7's ast.parse can fail
        # spuriously when two threads parse at once (gh-106905), as Hypothesis does.
        "--workers",
        "1",
    ]
    if os.environ.get("FUZZ_SEED"):
        command += ["--seed", os.environ["FUZZ_SEED"]]
    run = subprocess.run(
        command,
        cwd=tmp_path,  # its example database and cache stay out of the repository
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "NO_COLOR": "1"},
    )
    report = run.stdout + run.stderr
    assert run.returncode == 0, report[-20000:]
    assert "generated" in report and " 0 generated" not in report, report[-3000:]


def test_a_year_outside_what_reports_support_is_a_field_error(
    client: FlaskClient, make_key: Callable[..., dict[str, str]]
) -> None:
    headers = make_key("reports:read")
    for month in ("0000-01", "9999-12", "1969-12"):
        answer = client.get(f"/v1/reports/month-end?month={month}", headers=headers)
        assert answer.status_code == 422, (month, answer.json)
        assert answer.mimetype == "application/problem+json"
        assert "month" in answer.json["errors"]
    for start in ("0001-01-01", "9999-12-30"):
        answer = client.get(
            f"/v1/reports/reconciliation?from={start}&to=9999-12-31", headers=headers
        )
        assert answer.status_code == 422, (start, answer.json)
        assert set(answer.json["errors"]) & {"from", "to"}
