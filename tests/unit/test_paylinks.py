"""Pay-link tokens: signed, tamper-evident, expiring."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from billing.domain import paylinks


def test_token_signature_and_expiry() -> None:
    now = datetime(2026, 11, 24, tzinfo=UTC)
    token = paylinks.sign("secret", "pl_1", now + timedelta(days=7))
    assert paylinks.verify(["secret"], token, now).link_id == "pl_1"
    with pytest.raises(paylinks.InvalidToken):
        paylinks.verify(["other secret"], token, now)
    with pytest.raises(paylinks.InvalidToken):
        paylinks.verify(["secret"], token.replace("pl_1", "pl_2"), now)
    with pytest.raises(paylinks.ExpiredToken):
        paylinks.verify(["secret"], token, now + timedelta(days=7))


def test_a_token_verifies_against_any_listed_key_and_no_other() -> None:
    now = datetime(2026, 11, 24, tzinfo=UTC)
    token = paylinks.sign("old key", "pl_1", now + timedelta(days=7))
    assert paylinks.verify(["new key", "old key"], token, now).link_id == "pl_1"
    for keys in (["new key"], [], ["", "new key"]):
        with pytest.raises(paylinks.InvalidToken):
            paylinks.verify(keys, token, now)
