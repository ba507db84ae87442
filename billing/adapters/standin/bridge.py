"""What Stripe.js does in a browser and localstripe's fake leaves out (stand-in side only)."""

from __future__ import annotations

import json
import re
from typing import Any

# What Stripe.js does and localstripe's fake leaves out, added on the stand-in's side so
# the pay page keeps Stripe's documented calls; never active with a real Stripe key (the
# page then loads Stripe.js from Stripe):
# - `confirmCardPayment(secret, {payment_method: {card}})` confirms the PaymentIntent
#   with the card entered, showing the 3-D Secure step only when the card asks for it;
# - the Payment Element (`elements({clientSecret}).create("payment")`), which the fake
#   lacks: drawn as the fake's card fields, and `confirmPayment({elements})` confirms
#   through the same route; `handleNextAction({clientSecret})` shows its 3-D Secure step;
# - what Stripe.js on the pinned API version refuses: the Elements option
#   `paymentMethodTypes` throws, as it does there (`allowedPaymentMethodTypes` instead);
# - a card number typed with spaces, as Stripe's card field takes it;
# - a US bank account in the Payment Element when the PaymentIntent allows
#   `us_bank_account`: a choice of card or bank account, the account holder's name,
#   routing and account numbers typed in (standing in for Financial Connections) and the
#   debit mandate shown; `confirmPayment` accepts the mandate online from this browser and
#   confirms, and the payment is `processing` (banks.py).
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
    const field = (id, label, more) => `<p><label for="${id}">${label}</label> `
      + `<input id="${id}" type="text" autocomplete="off" ${more || ''}></p>`;
    const offerBanks = async (where, cardBox, clientSecret, chosen) => {
      const query = encodeURIComponent(clientSecret || '');
      const response = await fetch(
        `${LOCALSTRIPE_BASE_API}/_config/bridge/payment_method_types?client_secret=${query}`);
      const types = response.ok ? (await response.json()).types : [];
      if (!types.includes('us_bank_account')) {
        return;
      }
      const choice = document.createElement('fieldset');
      choice.innerHTML = '<legend>Pay with (localstripe)</legend>'
        + '<label><input type="radio" name="ls-method" value="card" checked> Card</label> '
        + '<label><input type="radio" name="ls-method" value="us_bank_account"> '
        + 'US bank account</label>';
      const bankBox = document.createElement('div');
      bankBox.hidden = true;
      bankBox.innerHTML = field('ls-bank-name', 'Account holder name', 'autocomplete="name"')
        + field('ls-bank-routing', 'Routing number', 'inputmode="numeric"')
        + field('ls-bank-account', 'Account number', 'inputmode="numeric"')
        + '<p>By paying, you authorize the clinic to debit the bank account above for this '
        + 'amount, through Stripe, and to take it again if the debit fails.</p>';
      where.insertBefore(choice, cardBox);
      where.appendChild(bankBox);
      choice.addEventListener('change', () => {
        chosen.method = choice.querySelector('input:checked').value;
        cardBox.hidden = chosen.method !== 'card';
        bankBox.hidden = !cardBox.hidden;
      });
      chosen.bank = () => ({
        name: document.getElementById('ls-bank-name').value,
        routing_number: document.getElementById('ls-bank-routing').value,
        account_number: document.getElementById('ls-bank-account').value,
      });
    };
    const cardElements = stripe.elements;
    stripe.elements = (options) => {
      if (options && options.paymentMethodTypes) {
        throw new Error('IntegrationError: paymentMethodTypes is not supported on this API '
          + 'version; use allowedPaymentMethodTypes.');
      }
      const inner = cardElements();
      const clientSecret = (options || {}).clientSecret;
      const chosen = {method: 'card', bank: null};
      return {
        clientSecret: clientSecret,
        chosen: chosen,
        create: (type, more) => {
          const card = inner.create('card', more);
          const mountCard = card.mount.bind(card);
          card.mount = (target) => {
            const where = typeof target === 'string' ? document.querySelector(target) : target;
            const cardBox = document.createElement('div');
            where.appendChild(cardBox);
            mountCard(cardBox);
            offerBanks(where, cardBox, clientSecret, chosen);
          };
          return card;
        },
        getElement: () => inner.getElement('card'),
        fetchUpdates: async () => ({}),
        submit: async () => ({}),
      };
    };
    const confirmBankPayment = async (clientSecret, bank) => {
      const response = await fetch(`${LOCALSTRIPE_BASE_API}/_config/bridge/confirm_bank_payment`, {
        method: 'POST',
        headers: {'Content-Type': 'text/plain'},  // a simple request: no CORS preflight
        body: JSON.stringify({
          client_secret: clientSecret, bank: bank, user_agent: navigator.userAgent,
        }),
      });
      const body = await response.json();
      return body.error ? {error: body.error} : {paymentIntent: body};
    };
    stripe.confirmPayment = async ({elements, confirmParams, redirect}) => {
      const result = elements.chosen.method === 'us_bank_account'
        ? await confirmBankPayment(elements.clientSecret, elements.chosen.bank())
        : await stripe.confirmCardPayment(elements.clientSecret, {
          payment_method: {card: elements.getElement('payment')},
        });
      const status = result.paymentIntent && result.paymentIntent.status;
      const done = status === 'succeeded' || status === 'processing';
      if (done && redirect !== 'if_required' && confirmParams && confirmParams.return_url) {
        const back = new URL(confirmParams.return_url, window.location.href);
        back.searchParams.set('payment_intent', result.paymentIntent.id);
        back.searchParams.set('redirect_status', status);
        window.location.assign(back.href);
      }
      return result;
    };
    stripe.handleNextAction = async ({clientSecret}) => authenticate(clientSecret);
    return stripe;
  };
})();
"""


def add_browser_bridge(app: Any, base_url: str) -> None:
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

    async def confirm_with(stripe: Any, intent_id: str, form: dict[str, str]) -> Any:
        """What Stripe.js does with what the patient typed: a PaymentMethod made of it (the
        form), then the PaymentIntent confirmed with it; Stripe's answer either way."""
        async with stripe.post("/v1/payment_methods", data=form) as answer:
            method = await answer.json()
        if answer.status != 200:
            return web.json_response(method, status=answer.status)
        update = {"payment_method": method["id"]}
        async with stripe.post(f"/v1/payment_intents/{intent_id}", data=update) as answer:
            await answer.read()
        async with stripe.post(f"/v1/payment_intents/{intent_id}/confirm") as answer:
            return web.json_response(await answer.json(), status=answer.status)

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
            _allow_another_try(intent_id)
            card["number"] = re.sub(r"[\s-]", "", str(card.get("number", "")))
            form = {"type": "card", **{f"card[{k}]": str(v) for k, v in card.items()}}
            return await confirm_with(stripe, intent_id, form)

    async def payment_method_types(request: Any) -> Any:
        """What the PaymentIntent of a client secret allows, as the Payment Element knows."""
        from localstripe import resources

        secret = request.query.get("client_secret", "")
        intent = resources.store.get(f"payment_intent:{secret.split('_secret_')[0]}")
        if intent is None or intent.client_secret != secret:
            return web.json_response({"error": {"message": "Unknown payment."}}, status=404)
        return web.json_response({"types": list(getattr(intent, "_allowed", ["card"]))})

    async def confirm_bank_payment(request: Any) -> Any:
        from localstripe import resources

        data = json.loads(await request.text())
        secret = str(data.get("client_secret", ""))
        bank = data.get("bank") or {}
        intent_id = secret.split("_secret_")[0]
        intent = resources.store.get(f"payment_intent:{intent_id}")
        if intent is None or intent.client_secret != secret:
            return web.json_response({"error": {"message": "Unknown payment."}}, status=404)
        _allow_another_try(intent_id)
        # The mandate, accepted online from this browser by paying (Stripe.js sends it).
        intent._mandate_data = {
            "customer_acceptance": {
                "type": "online",
                "online": {
                    "ip_address": request.remote or "127.0.0.1",
                    "user_agent": str(data.get("user_agent", ""))[:500],
                },
            }
        }
        form = {
            "type": "us_bank_account",
            "billing_details[name]": str(bank.get("name", "")),
            "us_bank_account[routing_number]": re.sub(
                r"\D", "", str(bank.get("routing_number", ""))
            ),
            "us_bank_account[account_number]": re.sub(
                r"\D", "", str(bank.get("account_number", ""))
            ),
            "us_bank_account[account_holder_type]": "individual",
        }
        async with ClientSession(base_url, headers=headers) as stripe:
            return await confirm_with(stripe, intent_id, form)

    app.middlewares.append(append_bridge)
    app.router.add_post("/_config/bridge/confirm_card_payment", confirm_card_payment)
    app.router.add_get("/_config/bridge/payment_method_types", payment_method_types)
    app.router.add_post("/_config/bridge/confirm_bank_payment", confirm_bank_payment)


def _allow_another_try(intent_id: str) -> None:
    """Stripe lets a PaymentIntent that was declined, or whose 3-D Secure step was left
    unanswered, be confirmed again with another card; localstripe keeps the failed charge
    (or the pending step) and refuses. Forget them, as Stripe would."""
    from localstripe import resources

    intent = resources.PaymentIntent._api_retrieve(intent_id)
    if intent.status == "requires_payment_method" and intent.latest_charge is not None:
        intent.latest_charge = None
    if intent.status == "requires_action":
        intent.next_action = None
