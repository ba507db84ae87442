"""Billing-Signature: what a booking system checks before it trusts a webhook."""

from __future__ import annotations

from billing.domain import signatures


def test_a_signed_body_verifies_and_nothing_else_does() -> None:
    secret, body, now = signatures.new_secret(), b'{"id": "evt_1"}', 1_800_000_000
    header = signatures.sign(secret, body, now)
    assert header.startswith(f"t={now},v1=") and len(header.split("v1=")[1]) == 64
    assert signatures.verify(secret, body, header, now + 10)
    assert not signatures.verify(secret, body + b" ", header, now)
    assert not signatures.verify("whsec_other", body, header, now)
    assert not signatures.verify(secret, body, header, now + 301)  # replayed too late
    assert not signatures.verify(secret, body, "v1=" + header.split("v1=")[1], now)
    assert not signatures.verify(secret, body, "garbage", now)
