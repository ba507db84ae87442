"""The OpenAPI document passes Redocly's `recommended` rules with no error: what Ajv-based
validators, mock servers and Java/Kotlin/C# generators need (a `type` beside every
`nullable`, 64-bit integers, `servers`, links by operationId, problem+json for 500s).
Redocly CLI comes from the npm registry, installed by this test into .venv/npm once."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
from flask.testing import FlaskClient

from tests.npm import npm_package

REDOCLY = "@redocly/cli@2.77.0"


@pytest.mark.parametrize("app", ["sqlite"], indirect=True)
def test_the_document_has_no_error_by_redoclys_recommended_rules(
    client: FlaskClient, tmp_path: Path
) -> None:
    document = tmp_path / "openapi.json"
    document.write_text(json.dumps(client.get("/openapi.json").json))
    linted = subprocess.run(
        [
            str(npm_package(REDOCLY, ".bin/redocly")),
            "lint",
            str(document),
            "--extends",
            "recommended",
            "--format",
            "json",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "REDOCLY_TELEMETRY": "off", "REDOCLY_SUPPRESS_UPDATE_NOTICE": "true"},
    )
    report = json.loads(linted.stdout[linted.stdout.index("{") :])
    errors = [p for p in report["problems"] if p["severity"] == "error"]
    assert errors == [], [(p["ruleId"], p["message"], p["location"]) for p in errors][:10]
