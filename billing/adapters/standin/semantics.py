"""What Stripe's API does and localstripe leaves out (stand-in side only)."""

from __future__ import annotations

import asyncio
import re
from typing import Any


def add_saving_cards_with_payments() -> None:
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


# What Stripe's API does and localstripe leaves out, which our recovery relies on:
# an Idempotency-Key replays the first answer (Stripe keeps keys 24 h), and PaymentIntents
# can be searched by metadata. Stand-in side only, like the bridge above.
SEARCH_QUERY = re.compile(r"^metadata\['(?P<key>[\w-]+)'\]:'(?P<value>[^']*)'$")


def add_stripe_semantics(app: Any) -> None:
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
