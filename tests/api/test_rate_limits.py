"""The API rate limit when its storage is away: Redis unreachable, the limit is counted in
this process's memory meanwhile; the service answers, and still refuses a flood."""

from __future__ import annotations

import logging
from collections.abc import Callable

import pytest
from flask import Flask


@pytest.fixture
def app_settings() -> dict[str, object]:
    # Nothing listens on port 1: every call to this "Redis" fails at once.
    return {"RATELIMIT_STORAGE_URI": "redis://127.0.0.1:1/0", "API_RATE_LIMIT": "3 per minute"}


def test_with_its_storage_down_the_limit_is_counted_in_memory(
    app: Flask, make_key: Callable[..., dict[str, str]], caplog: pytest.LogCaptureFixture
) -> None:
    client = app.test_client()
    busy, other = make_key("quotes:write"), make_key("quotes:write")
    with caplog.at_level(logging.WARNING, logger="billing.limits"):
        statuses = [client.get("/v1/catalog", headers=busy).status_code for _ in range(4)]
    assert statuses == [200, 200, 200, 429]
    assert any("counting in memory" in record.message for record in caplog.records)
    refused = client.get("/v1/catalog", headers=busy)
    assert refused.json["code"] == "rate_limited" and int(refused.headers["Retry-After"]) >= 1
    assert client.get("/v1/catalog", headers=other).status_code == 200
