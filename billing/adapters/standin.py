"""A local Stripe stand-in (localstripe) on loopback, for tests and the offline default.

Development only: localstripe is a dev dependency and is never imported in production.
It keeps its state in a file of our choosing (not the machine-wide /tmp file), binds to
127.0.0.1 only, and is told where to send the app's webhooks.
"""

from __future__ import annotations

import asyncio
import json
import pickle
import random
import re
import socket
import threading
import time
import urllib.parse
import urllib.request
import warnings
from pathlib import Path
from typing import Any


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
        _add_browser_bridge(server.app, self.url)
        _add_stripe_semantics(server.app)
        _add_saving_cards_with_payments()
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


# What Stripe.js does and localstripe's fake leaves out, added on the stand-in's side so
# the pay page keeps Stripe's documented calls; never active with a real Stripe key (the
# page then loads Stripe.js from Stripe):
# - `confirmCardPayment(secret, {payment_method: {card}})` confirms the PaymentIntent
#   with the card entered, showing the 3-D Secure step only when the card asks for it;
# - the Payment Element (`elements({clientSecret}).create("payment")`), which the fake
#   lacks: drawn as the fake's card fields, and `confirmPayment({elements})` confirms
#   through the same route; `handleNextAction({clientSecret})` shows its 3-D Secure step.
BRIDGE_JS = """
;(function () {
  const fakeStripe = Stripe;
  Stripe = (apiKey) => {
    const stripe = fakeStripe(apiKey);
    const authenticate = stripe.confirmCardPayment;
    stripe.confirmCardPayment = async (clientSecret, data) => {
      const card = data && data.payment_method && data.payment_method.card;
      if (!card || !card.value) {
        return authenticate(clientSecret, data);
      }
      const response = await fetch(`${LOCALSTRIPE_BASE_API}/_config/bridge/confirm_card_payment`, {
        method: 'POST',
        headers: {'Content-Type': 'text/plain'},  // a simple request: no CORS preflight
        body: JSON.stringify({client_secret: clientSecret, card: card.value.card}),
      });
      const body = await response.json();
      if (body.error) {
        return {error: body.error};
      }
      if (body.status === 'requires_action') {
        return authenticate(clientSecret, data);
      }
      return {paymentIntent: body};
    };
    const cardElements = stripe.elements;
    stripe.elements = (options) => {
      const inner = cardElements();
      return {
        clientSecret: (options || {}).clientSecret,
        create: (type, more) => inner.create('card', more),
        getElement: () => inner.getElement('card'),
        fetchUpdates: async () => ({}),
        submit: async () => ({}),
      };
    };
    stripe.confirmPayment = async ({elements, confirmParams, redirect}) => {
      const result = await stripe.confirmCardPayment(elements.clientSecret, {
        payment_method: {card: elements.getElement('payment')},
      });
      const done = result.paymentIntent && result.paymentIntent.status === 'succeeded';
      if (done && redirect !== 'if_required' && confirmParams && confirmParams.return_url) {
        window.location.assign(confirmParams.return_url);
      }
      return result;
    };
    stripe.handleNextAction = async ({clientSecret}) => authenticate(clientSecret);
    return stripe;
  };
})();
"""


def _add_browser_bridge(app: Any, base_url: str) -> None:
    from aiohttp import ClientSession, web

    if getattr(app, "_billing_bridge", False):
        return
    app._billing_bridge = True
    headers = {"Authorization": "Bearer sk_test_stand_in_bridge"}

    @web.middleware
    async def append_bridge(request: Any, handler: Any) -> Any:
        response = await handler(request)
        if request.path == "/js.stripe.com/v3/" and response.status == 200:
            return web.Response(
                text=response.text + BRIDGE_JS, content_type="application/javascript"
            )
        return response

    async def confirm_card_payment(request: Any) -> Any:
        data = json.loads(await request.text())
        secret = str(data.get("client_secret", ""))
        card = data.get("card") or {}
        intent_id = secret.split("_secret_")[0]
        async with ClientSession(base_url, headers=headers) as stripe:
            async with stripe.get(f"/v1/payment_intents/{intent_id}") as answer:
                intent = await answer.json()
            if answer.status != 200 or intent.get("client_secret") != secret:
                return web.json_response({"error": {"message": "Unknown payment."}}, status=404)
            _allow_retry_after_decline(intent_id)
            form = {"type": "card", **{f"card[{k}]": str(v) for k, v in card.items()}}
            async with stripe.post("/v1/payment_methods", data=form) as answer:
                method = await answer.json()
            if answer.status != 200:
                return web.json_response(method, status=answer.status)
            update = {"payment_method": method["id"]}
            async with stripe.post(f"/v1/payment_intents/{intent_id}", data=update) as answer:
                await answer.read()
            async with stripe.post(f"/v1/payment_intents/{intent_id}/confirm") as answer:
                return web.json_response(await answer.json(), status=answer.status)

    app.middlewares.append(append_bridge)
    app.router.add_post("/_config/bridge/confirm_card_payment", confirm_card_payment)


def _add_saving_cards_with_payments() -> None:
    """What Stripe does with a PaymentIntent's `setup_future_usage`, which localstripe
    refuses as unexpected: accept it, and attach the card to the intent's customer when the
    payment succeeds, so it can be charged off-session later."""
    from localstripe import resources

    intent_class = resources.PaymentIntent
    if getattr(intent_class, "_billing_saving", False):
        return
    intent_class._billing_saving = True
    update, succeeded = intent_class._update, intent_class._on_success

    def _update(self: Any, **data: Any) -> None:
        if "setup_future_usage" in data:
            self._setup_future_usage = data.pop("setup_future_usage") or None
        update(self, **data)

    def _on_success(self: Any) -> None:
        if getattr(self, "_setup_future_usage", None) and self.customer and self.payment_method:
            method = resources.PaymentMethod._api_retrieve(self.payment_method)
            method.customer = self.customer
        succeeded(self)

    intent_class._update = _update
    intent_class._on_success = _on_success


def _allow_retry_after_decline(intent_id: str) -> None:
    """Stripe lets a declined PaymentIntent be confirmed again with another card;
    localstripe keeps the failed charge and refuses. Forget it, as Stripe would."""
    from localstripe import resources

    intent = resources.PaymentIntent._api_retrieve(intent_id)
    if intent.status == "requires_payment_method" and intent.latest_charge is not None:
        intent.latest_charge = None


# What Stripe's API does and localstripe leaves out, which our recovery relies on:
# an Idempotency-Key replays the first answer (Stripe keeps keys 24 h), and PaymentIntents
# can be searched by metadata. Stand-in side only, like the bridge above.
SEARCH_QUERY = re.compile(r"^metadata\['(?P<key>[\w-]+)'\]:'(?P<value>[^']*)'$")


def _add_stripe_semantics(app: Any) -> None:
    from aiohttp import web

    if getattr(app, "_billing_semantics", False):
        return
    app._billing_semantics = True
    answers: dict[tuple[str, str], tuple[int, bytes]] = {}
    locks: dict[tuple[str, str], asyncio.Lock] = {}

    @web.middleware
    async def idempotency(request: Any, handler: Any) -> Any:
        key = request.headers.get("Idempotency-Key")
        if request.method != "POST" or not key:
            return await handler(request)
        slot = (request.headers.get("Authorization", ""), key)
        async with locks.setdefault(slot, asyncio.Lock()):
            if slot not in answers:
                response = await handler(request)
                if response.status >= 500:  # Stripe saves no result for a request it failed
                    return response
                answers[slot] = (response.status, response.body)
            status, body = answers[slot]
        return web.Response(
            body=body,
            status=status,
            content_type="application/json",
            headers={"Idempotent-Replayed": "true"},
        )

    async def search_payment_intents(request: Any) -> Any:
        from localstripe import resources

        match = SEARCH_QUERY.match(request.query.get("query", ""))
        if match is None:
            return web.json_response({"error": {"message": "Unsupported query."}}, status=400)
        found = [
            intent._export()
            for key, intent in list(resources.store.items())
            if key.startswith("payment_intent:")
            and (intent.metadata or {}).get(match["key"]) == match["value"]
        ]
        return web.json_response(
            {"object": "search_result", "data": found, "has_more": False, "url": request.path}
        )

    app.middlewares.append(idempotency)
    # Before localstripe's own /v1/payment_intents/{id}, which would take "search" as an id.
    app.router.add_get("/v1/payment_intents/search", search_payment_intents)
    resource = app.router._resources.pop()
    app.router._resources.insert(0, resource)
