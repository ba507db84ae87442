"""A saved card that starts declining, as a real one does when its account runs dry or it
is reported lost (stand-in side only).

Stripe's test cards decline from the start (they are refused when saved) or, one of them,
always once saved; a card that worked and then declines for a reason, and maybe works
again days later, is what payment plans and their retries meet, and what no test card
does. So the stand-in lets a test say it: `POST /_config/cards/{pm}/decline` with
`decline_code` (insufficient_funds, lost_card, ...) makes the saved card's next charges
decline as Stripe declines them (402, `code: card_declined`, the `decline_code`, the
PaymentIntent's `last_payment_error` saying the same); an empty `decline_code` lets it
pay again.
"""

from __future__ import annotations

from typing import Any

MESSAGES = {
    "insufficient_funds": "Your card has insufficient funds.",
    "lost_card": "Your card has been declined.",
    "stolen_card": "Your card has been declined.",
    "fraudulent": "Your card has been declined.",
    "generic_decline": "Your card has been declined.",
}


def add_declines_on_demand(app: Any) -> None:
    from aiohttp import web
    from localstripe import resources

    if getattr(resources, "_billing_declines", False):
        return
    resources._billing_declines = True
    method_class, charge_class = resources.PaymentMethod, resources.Charge
    declined_before = method_class._charging_is_declined

    def charging_is_declined(self: Any) -> bool:
        return bool(getattr(self, "_decline_code", None)) or declined_before(self)

    method_class._charging_is_declined = charging_is_declined
    set_failure = charge_class._set_auth_failure

    def set_failure_with_reason(self: Any) -> None:
        set_failure(self)
        method = method_class._api_retrieve(self.payment_method)
        self._decline_code = getattr(method, "_decline_code", None)
        if self._decline_code:
            self.failure_message = MESSAGES.get(self._decline_code, self.failure_message)

    charge_class._set_auth_failure = set_failure_with_reason

    def raise_failure(self: Any) -> None:
        contents = {"code": self.failure_code, "charge": self.id}
        if getattr(self, "_decline_code", None):
            contents["decline_code"] = self._decline_code
        raise resources.UserError(402, self.failure_message, contents)

    charge_class._raise_failure = raise_failure
    intent_class = resources.PaymentIntent
    last_error = intent_class.last_payment_error

    def last_payment_error(self: Any) -> Any:
        error = last_error.fget(self)
        charge = self.latest_charge
        if error and charge is not None and getattr(charge, "_decline_code", None):
            error = {**error, "decline_code": charge._decline_code}
        return error

    intent_class.last_payment_error = property(last_payment_error)

    async def decline(request: Any) -> Any:
        form = await request.post()
        method = method_class._api_retrieve(request.match_info["id"])
        method._decline_code = str(form.get("decline_code") or "") or None
        return web.json_response({"id": method.id, "decline_code": method._decline_code})

    app.router.add_post("/_config/cards/{id}/decline", decline)
