"""A local Stripe stand-in (localstripe) on loopback, for tests and the offline default.

Development only: localstripe is a dev dependency and is never imported in production.
It keeps its state in a file of our choosing (not the machine-wide /tmp file), binds to
127.0.0.1 only, and is told where to send the app's webhooks. In front of localstripe it
is as strict as Stripe on the pinned API version where our requests touch it (rules.py),
and it does what Stripe does that localstripe leaves out (semantics.py, and bridge.py for
the browser).
"""

from __future__ import annotations

import pickle
import random
import socket
import threading
import time
import urllib.parse
import urllib.request
import warnings
from pathlib import Path

from billing.adapters.standin.banks import add_bank_debits
from billing.adapters.standin.bridge import add_browser_bridge
from billing.adapters.standin.declines import add_declines_on_demand
from billing.adapters.standin.rules import add_api_rules
from billing.adapters.standin.semantics import (
    add_current_api_shapes,
    add_refund_failures,
    add_saving_cards_with_payments,
    add_stripe_semantics,
)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class StripeStandIn:
    """localstripe served from a background thread of this process."""

    def __init__(self, state_file: Path | None = None, port: int | None = None) -> None:
        self.state_file = state_file
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"

    def start(self) -> StripeStandIn:
        with warnings.catch_warnings():  # localstripe registers plain functions as handlers
            warnings.simplefilter("ignore", DeprecationWarning)
            from aiohttp import web
            from localstripe import resources, server

        state_file = self.state_file

        def dump(store: dict[str, object]) -> None:
            if state_file is not None:
                with open(state_file, "wb") as handle:
                    pickle.dump(store, handle, protocol=pickle.HIGHEST_PROTOCOL)

        resources.Store.dump_to_disk = dump
        # Its ids come from the global `random`, which test frameworks re-seed (Hypothesis
        # does per example): draw them from the OS instead, so they never repeat.
        resources.random = random.SystemRandom()
        add_browser_bridge(server.app, self.url)
        add_api_rules(server.app)  # before the idempotency replay: a refusal is not kept
        add_stripe_semantics(server.app)
        add_current_api_shapes(server.app)
        add_saving_cards_with_payments()
        add_refund_failures()
        add_bank_debits()  # after the current API's shapes, which it builds on
        add_declines_on_demand(server.app)
        if state_file is not None and state_file.exists():
            with open(state_file, "rb") as handle:
                resources.store.update(pickle.load(handle))

        def serve() -> None:
            web.run_app(
                server.app, host="127.0.0.1", port=self.port, handle_signals=False, print=None
            )

        threading.Thread(target=serve, name="stripe-stand-in", daemon=True).start()
        self._wait_until_up()
        return self

    def _wait_until_up(self, timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError(f"the Stripe stand-in did not start on port {self.port}")

    def register_webhook(self, url: str, secret: str, name: str = "billing") -> None:
        """Have the stand-in sign its events with `secret` and post them to `url`."""
        data = urllib.parse.urlencode({"url": url, "secret": secret}).encode()
        urllib.request.urlopen(f"{self.url}/_config/webhooks/{name}", data=data, timeout=5).close()

    def reset(self) -> None:
        """Forget every object (customers, intents, refunds)."""
        request = urllib.request.Request(f"{self.url}/_config/data", method="DELETE")
        urllib.request.urlopen(request, timeout=5).close()
