"""What Stripe's API does and localstripe leaves out (stand-in side only)."""

from __future__ import annotations

import asyncio
import re
from typing import Any

from billing.adapters.standin.rules import EMULATED_API_VERSION


def add_current_api_shapes(app: Any) -> None:
    """What the pinned API version has and localstripe's older shapes lack, emulated:

    - `allowed_payment_method_types` on PaymentIntents and SetupIntents (localstripe keeps
      the same list under the name Stripe removed); `excluded_payment_method_types` and
      card options such as `stored_credential_usage` change nothing here;
    - a SetupIntent created with `payment_method` and `confirm=true` is confirmed at once;
      one that succeeds for a customer attaches its card to that customer, as Stripe does,
      so the card can be charged off-session; its 3-D Secure step is answered through
      `POST /v1/setup_intents/{id}/_authenticate`, as localstripe does for PaymentIntents;
    - Stripe's test card 4000002500003155 asks for authentication until it is set up for
      later use, and no more afterwards; 4000002760003184 asks for it every time;
    - a PaymentIntent says what it collected (`amount_received`);
    - events are rendered in the emulated version (`api_version`).
    """
    from localstripe import resources

    if getattr(resources, "_billing_current_api", False):
        return
    resources._billing_current_api = True
    intent_init = resources.PaymentIntent.__init__

    def intent_init_with_allowed_types(
        self: Any,
        allowed_payment_method_types: list[str] | None = None,
        excluded_payment_method_types: list[str] | None = None,
        **data: Any,
    ) -> None:
        if allowed_payment_method_types is not None:
            data["payment_method_types"] = allowed_payment_method_types
        intent_init(self, **data)

    resources.PaymentIntent.__init__ = intent_init_with_allowed_types
    # What Stripe collected: the whole amount once succeeded (no partial captures here).
    resources.PaymentIntent.amount_received = property(
        lambda self: self.amount if self.status == "succeeded" else 0
    )
    _add_setup_intents_of_the_current_api(app, resources)
    event_init = resources.Event.__init__

    def event_in_the_emulated_version(self: Any, *args: Any, **kwargs: Any) -> None:
        event_init(self, *args, **kwargs)
        self.api_version = EMULATED_API_VERSION

    resources.Event.__init__ = event_in_the_emulated_version


def _add_setup_intents_of_the_current_api(app: Any, resources: Any) -> None:
    from localstripe.server import api_extra

    setup_class = resources.SetupIntent
    attach = setup_class._attach_pm

    def create(
        cls: Any,
        /,
        confirm: Any = None,
        payment_method: str | None = None,
        mandate_data: Any = None,
        allowed_payment_method_types: list[str] | None = None,
        excluded_payment_method_types: list[str] | None = None,
        **data: Any,
    ) -> Any:
        if allowed_payment_method_types is not None:
            data["payment_method_types"] = allowed_payment_method_types
        setup = cls(**data)
        setup._mandate_data = mandate_data  # a bank account's mandate (banks.py)
        if payment_method is not None and resources.try_convert_to_bool(confirm):
            cls._api_confirm(setup.id, payment_method=payment_method)
        elif payment_method is not None:
            setup.payment_method = resources.PaymentMethod._api_retrieve(payment_method).id
            setup.status = "requires_confirmation"
        return setup

    def set_up(setup: Any, method: Any) -> None:
        method._billing_set_up = True
        if setup.customer:
            method.customer = setup.customer

    def attach_for_the_customer(self: Any, method: Any) -> None:
        attach(self, method)
        if self.status == "succeeded":
            set_up(self, method)

    def authenticate(id: str, client_secret: Any = None, success: Any = False) -> Any:
        setup = cls_retrieve(id)
        if client_secret != setup.client_secret:
            raise resources.UserError(401, "Unauthorized")
        if setup.status != "requires_action":
            raise resources.UserError(400, "Bad request")
        setup.next_action = None
        if resources.try_convert_to_bool(success):
            setup.status = "succeeded"
            set_up(setup, resources.PaymentMethod._api_retrieve(setup.payment_method))
        else:
            setup.status, setup.payment_method = "requires_payment_method", None
        return setup

    cls_retrieve = setup_class._api_retrieve
    setup_class._api_create = classmethod(create)
    setup_class._attach_pm = attach_for_the_customer
    url = "/v1/setup_intents/{id}/_authenticate"
    app.router.add_route("POST", url, api_extra(authenticate, url))
    asks = resources.PaymentMethod._requires_authentication

    def asks_until_set_up(self: Any) -> bool:
        if (
            getattr(self, "_billing_set_up", False)
            and getattr(self, "_card_number", None) in SET_UP_ONCE
        ):
            return False
        return bool(asks(self))

    resources.PaymentMethod._requires_authentication = asks_until_set_up


# Test cards that need 3-D Secure only until set up for later payments (Stripe's docs).
SET_UP_ONCE = ("4000002500003155",)


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


# Stripe's test card whose refunds fail: a refund of a charge made with it is made
# (succeeded), and some time later the card's bank returns it (Stripe's docs, "Testing:
# refunds"). Here "some time" is REFUND_FAILS_AFTER seconds.
REFUND_FAILS = ("4000000000005126",)
REFUND_FAILS_AFTER = 1.0


def add_refund_failures() -> None:
    """What Stripe does when a refund fails after it was made, which localstripe never
    does: the Refund turns `failed` with a `failure_reason`; a balance transaction of type
    `refund_failure` (source: the refund, amount positive: the money is back in the
    balance) reverses the refund's own, and is the Refund's `failure_balance_transaction`;
    the charge no longer counts it in `amount_refunded`; and the events
    `charge.refund.updated`, `refund.updated` and `refund.failed` are sent. Only for
    refunds of charges made with a card of REFUND_FAILS."""
    from localstripe import resources
    from localstripe.webhooks import schedule_webhook

    refund_class = resources.Refund
    if getattr(refund_class, "_billing_failures", False):
        return
    refund_class._billing_failures = True
    refund_init = refund_class.__init__

    def card_number(charge_id: str) -> str | None:
        charge = resources.Charge._api_retrieve(charge_id)
        source = getattr(charge, "payment_method", None) or getattr(charge, "source", None)
        source_id = getattr(source, "id", source)
        for kind in (resources.PaymentMethod, resources.Card):
            found = resources.store.get(f"{kind.object}:{source_id}")
            if found is not None:
                return getattr(found, "_card_number", None)
        return None

    def fail(refund: Any) -> None:
        if refund.status == "failed":
            return
        refund.status = "failed"
        refund.failure_reason = "expired_or_canceled_card"
        txn = balance_transaction(
            refund.amount, refund.currency, "REFUND FAILURE", refund.id, "refund_failure"
        )
        refund.failure_balance_transaction = txn.id
        for event_type in ("charge.refund.updated", "refund.updated", "refund.failed"):
            schedule_webhook(resources.Event(event_type, refund))

    def refund_init_that_may_fail(self: Any, *args: Any, **kwargs: Any) -> None:
        refund_init(self, *args, **kwargs)
        if card_number(self.charge) not in REFUND_FAILS:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # not made in a request: nothing will fail it
            return
        loop.call_later(REFUND_FAILS_AFTER, fail, self)

    refund_class.__init__ = refund_init_that_may_fail
    resources.Charge.amount_refunded = property(
        lambda self: sum(r.amount for r in self.refunds._list if r.status != "failed")
    )


def balance_transaction(
    amount: int,
    currency: str,
    description: str,
    source: str,
    kind: str,
    category: str | None = None,
    made_from: str | None = None,
) -> Any:
    """A balance transaction of a type localstripe does not make (`kind`: refund_failure,
    adjustment): made as a refund transaction of `made_from` (a charge or refund it knows,
    by default `source`), then turned into what Stripe makes, naming `source`."""
    from localstripe import resources

    txn = resources.BalanceTransaction(
        amount=-amount,
        currency=currency,
        description=description,
        exchange_rate=1.0,
        reporting_category="refund",
        source=made_from or source,
        type="refund",
    )
    txn.amount, txn.type, txn.reporting_category, txn.source = (
        amount,
        kind,
        category or kind,
        source,
    )
    return txn
