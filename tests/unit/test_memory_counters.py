"""The API limit's in-memory counters (one instance without Redis): they count as
`limits`' MemoryStorage does, without a new sweeping thread for every request."""

from __future__ import annotations

import time

from limits import parse
from limits.storage import MemoryStorage
from limits.strategies import SlidingWindowCounterRateLimiter

from billing.web.limits import MemoryCounters


def timers_started(storage: MemoryStorage, hits: int) -> int:
    """Hits 25 ms apart, as a busy worker's requests come: how many sweep threads ran.
    (The timers themselves are kept, not their ids: a finished one's id can be reused.)"""
    limiter = SlidingWindowCounterRateLimiter(storage)
    item = parse("1000 per minute")
    timers = [storage.timer]
    for _ in range(hits):
        assert limiter.hit(item, "caller")
        if storage.timer is not timers[-1]:
            timers.append(storage.timer)
        time.sleep(0.025)
    return len(timers)


def test_a_busy_caller_does_not_start_a_thread_per_request() -> None:
    assert timers_started(MemoryStorage(), 20) >= 10  # the library's own sweep, 10 ms
    assert timers_started(MemoryCounters(), 20) <= 2


def test_counts_and_refuses_like_the_library() -> None:
    item = parse("3 per minute")
    ours = SlidingWindowCounterRateLimiter(MemoryCounters())
    theirs = SlidingWindowCounterRateLimiter(MemoryStorage())
    assert [ours.hit(item, "k") for _ in range(5)] == [theirs.hit(item, "k") for _ in range(5)]
    assert [ours.hit(item, "k") for _ in range(2)] == [False, False]


def test_expired_counters_are_still_swept_away() -> None:
    storage = MemoryCounters()
    storage.SWEEP_SECONDS = 0.05
    storage.incr("gone", expiry=0.01)
    deadline = time.monotonic() + 5
    while "gone" in storage.storage:
        assert time.monotonic() < deadline, "the expired counter was never freed"
        storage.incr("other", expiry=60)  # a write schedules the sweep
        time.sleep(0.02)
    assert storage.get("other") >= 1
