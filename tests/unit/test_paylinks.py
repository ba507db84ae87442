"""Pay-link tokens: signed, tamper-evident, expiring."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from billing import paylinks


def test_token_signature_and_expiry() -> None:
    now = datetime(2026, 11, 24, tzinfo=UTC)
    token = paylinks.sign("secret", "pl_1", now + timedelta(days=7))
    assert paylinks.verify("secret", token, now).link_id == "pl_1"
    with pytest.raises(paylinks.InvalidToken):
        paylinks.verify("other secret", token, now)
    with pytest.raises(paylinks.InvalidToken):
        paylinks.verify("secret", token.replace("pl_1", "pl_2"), now)
    with pytest.raises(paylinks.ExpiredToken):
        paylinks.verify("secret", token, now + timedelta(days=7))
