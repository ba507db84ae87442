"""Webhook signing secrets at rest: sealed with Fernet under a key derived (HKDF-SHA256) from
the app's SECRET_KEY, opened with it or any of SECRET_KEY_FALLBACKS, so rotating SECRET_KEY
(the old one kept as a fallback) keeps every endpoint's signatures working.

A sealed value starts with `fernet:`. One without it is plain text from before secrets were
sealed (migration 0019 cannot read SECRET_KEY to seal them): it opens as it is, marked stale,
like one sealed under a retired key, so that the caller seals it again under the current key.
"""

from __future__ import annotations

import base64
from collections.abc import Sequence
from dataclasses import dataclass

from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

PREFIX = "fernet:"
# Binds the derived key to this one use: SECRET_KEY also signs pay links and sessions.
INFO = b"billing webhook signing secrets"


class UnreadableSecret(ValueError):
    """Sealed under a key that is neither SECRET_KEY nor one of SECRET_KEY_FALLBACKS."""


@dataclass(frozen=True, slots=True)
class Opened:
    plain: str
    stale: bool  # plain text at rest, or sealed under a retired key: seal it again


def _fernet(secret_key: str) -> Fernet:
    derived = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=INFO).derive(
        secret_key.encode()
    )
    return Fernet(base64.urlsafe_b64encode(derived))


class SecretBox:
    """Seals under `secret_key`; opens what it or any of `fallbacks` sealed."""

    def __init__(self, secret_key: str, fallbacks: Sequence[str] = ()) -> None:
        if not secret_key:
            raise ValueError("SECRET_KEY is empty: webhook signing secrets cannot be sealed.")
        self._current = _fernet(secret_key)
        self._retired = [_fernet(key) for key in fallbacks if key and key != secret_key]

    def seal(self, plain: str) -> str:
        return PREFIX + self._current.encrypt(plain.encode()).decode()

    def open(self, stored: str) -> Opened:
        if not stored.startswith(PREFIX):
            return Opened(stored, stale=True)
        token = stored[len(PREFIX) :].encode()
        try:
            return Opened(self._current.decrypt(token).decode(), stale=False)
        except InvalidToken:
            pass
        for retired in self._retired:
            try:
                return Opened(retired.decrypt(token).decode(), stale=True)
            except InvalidToken:
                continue
        raise UnreadableSecret(
            "The signing secret was sealed under a SECRET_KEY that is no longer configured "
            "(keep the old one in SECRET_KEY_FALLBACKS)."
        )
