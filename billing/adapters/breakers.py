"""Circuit breakers for what the service can do without for a while: Redis and the task
queue's broker. After a failure the breaker opens and callers skip the call at once for
RESET_SECONDS, instead of each request waiting on a connect timeout (a Redis outage once
took a quote from 9 ms to 642 ms); then one call probes, and a success closes it again.

While open, what relies on them degrades: rate limits count in each process's memory,
a commit's "send it now" hint to the workers is skipped (the scheduler's sweep sends it
within seconds of the broker's return), and readiness reports the dependency as degraded.
Each app makes its own (a test's outage never opens another app's breaker).
"""

from __future__ import annotations

import logging
from typing import Any

import pybreaker

log = logging.getLogger("billing.breakers")

RESET_SECONDS = 5.0
Open = pybreaker.CircuitBreakerError
Breaker = pybreaker.CircuitBreaker


class _Said(pybreaker.CircuitBreakerListener):
    """One log line when a dependency goes away, and one when it is back."""

    def state_change(self, breaker: Breaker, old: Any, new: Any) -> None:
        if new.name == pybreaker.STATE_OPEN:
            log.warning(
                "%s unreachable: skipped for %.0f s at a time", breaker.name, breaker.reset_timeout
            )
        elif new.name == pybreaker.STATE_CLOSED and old.name != pybreaker.STATE_CLOSED:
            log.warning("%s reachable again", breaker.name)


def breaker(name: str, reset_seconds: float = RESET_SECONDS) -> Breaker:
    """Opens at the first failure; lets one call probe after `reset_seconds`."""
    return pybreaker.CircuitBreaker(
        fail_max=1, reset_timeout=reset_seconds, name=name, listeners=[_Said()]
    )


def state(of: Breaker) -> str:
    """`closed` (working), `open` (failing fast) or `half-open` (probing)."""
    return str(of.current_state)
