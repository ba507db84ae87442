"""Small per-process caches (keys, the price list): entries live a few seconds, and all
are dropped as soon as the shared generation in the database moves on."""

from __future__ import annotations

import time
from typing import Any, Generic, TypeVar, cast

from sqlalchemy import CursorResult, select, update
from sqlalchemy.orm import Session

from billing.adapters.models import CacheState

K = TypeVar("K")
V = TypeVar("V")


class TTLCache(Generic[K, V]):
    """Entries expire `seconds` after they were put; 0 turns the cache off."""

    def __init__(self, seconds: float, max_entries: int = 10_000) -> None:
        self.seconds = seconds
        self.max_entries = max_entries
        self._entries: dict[K, tuple[float, V]] = {}

    def get(self, key: K) -> V | None:
        entry = self._entries.get(key)
        if entry is None or entry[0] < time.monotonic():
            return None
        return entry[1]

    def put(self, key: K, value: V) -> None:
        if self.seconds <= 0:
            return
        if len(self._entries) >= self.max_entries:
            self._entries.clear()
        self._entries[key] = (time.monotonic() + self.seconds, value)

    def clear(self) -> None:
        self._entries.clear()


class Generation:
    """The shared cache generation (billing.models.CacheState), read at most every
    `check_seconds` per process. Caches filled under an older generation are dropped."""

    def __init__(self, check_seconds: float) -> None:
        self.check_seconds = check_seconds
        self._seen: int | None = None
        self._checked_at = float("-inf")

    def current(self, session: Session) -> int:
        now = time.monotonic()
        if self._seen is None or now - self._checked_at >= self.check_seconds:
            self._seen = session.scalar(select(CacheState.generation).where(CacheState.id == 1))
            self._seen = self._seen or 0
            self._checked_at = now
        return self._seen

    def forget(self) -> None:
        """Re-read the generation on the next look (after this process changed it)."""
        self._seen = None


def bump(session: Session) -> None:
    """Part of a change to keys or prices, in its transaction: every process's caches of
    them are dropped within CACHE_CHECK_SECONDS of the commit."""
    bumped = session.execute(
        update(CacheState).where(CacheState.id == 1).values(generation=CacheState.generation + 1)
    )
    if not cast(CursorResult[Any], bumped).rowcount:  # an UPDATE answers with a cursor
        session.add(CacheState(id=1, generation=1))


class SharedCache(TTLCache[K, V]):
    """A TTLCache that also empties itself when the shared generation moves on."""

    def __init__(self, seconds: float, generation: Generation, max_entries: int = 10_000) -> None:
        super().__init__(seconds, max_entries)
        self.generation = generation
        self._filled_under: int | None = None

    def lookup(self, session: Session, key: K) -> V | None:
        current = self.generation.current(session)
        if current != self._filled_under:
            self.clear()
            self._filled_under = current
        return self.get(key)
