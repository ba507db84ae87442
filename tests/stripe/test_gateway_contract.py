"""Proof that does not depend on the stand-in: every gateway method is called with the
arguments the services really pass (through the API, the pay page, webhooks, recovery and
the sync, never invented here), and every request it makes is checked at run time against
the params type stripe-python declares for that endpoint (tests/stripe/contract.py).
A parameter the pinned API version dropped fails here even where the stand-in accepts it.
"""

from __future__ import annotations

import inspect
import re
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select, update
from stripe.params import PaymentIntentCreateParams, RefundCreateParams, SetupIntentCreateParams

from billing.adapters import db
from billing.adapters.models import Payment, Refund, utcnow
from billing.adapters.stripe_gateway import StripeGateway
from billing.services.finance import stripe_sync
from billing.services.payments import online, recovery
from tests.fixtures_stripe import eventually, save_card
from tests.stripe.collect import charge_card_on_file, open_pay_page, patient_confirms, pay_link
from tests.stripe.contract import ContractBroken, check_params
from tests.stripe.events import deliver, make_event
from tests.stripe.test_bank_debit import save_bank_account
from tests.stripe.test_portal_statements import portal_client
from tests.stripe.test_saving_cards import browser_confirms_setup
from tests.stripe.test_sync import stand_in_post

ON_SQLITE = pytest.mark.parametrize("stripe_app", ["sqlite"], indirect=True)
GATEWAY_METHODS = {
    name
    for name, member in inspect.getmembers(StripeGateway, inspect.isfunction)
    if not name.startswith("_")
}


@pytest.fixture
def used(stripe_app: Any, monkeypatch: pytest.MonkeyPatch) -> set[str]:
    """The gateway's methods the services call (each still does its real work)."""
    gateway = stripe_app.extensions["billing.stripe"]
    called: set[str] = set()
    for name in GATEWAY_METHODS:
        real = getattr(gateway, name)

        def spy(*args: Any, _name: str = name, _real: Any = real, **kwargs: Any) -> Any:
            called.add(_name)
            return _real(*args, **kwargs)

        monkeypatch.setattr(gateway, name, spy)
    return called


def in_app(app: Any, work: Any) -> Any:
    with app.app_context():
        return work(db.session(), app.extensions["billing.stripe"])


@ON_SQLITE
def test_every_gateway_method_as_the_services_call_it_keeps_to_the_sdks_types(
    stripe_app, stripe_client, staff, open_invoice, standin, used
) -> None:
    calls = stripe_app.extensions["billing.stripe_calls"]
    open_invoice(card=None, patient_id="P-C1")
    # Saving cards: a SetupIntent for the browser, one confirmed here, the list, removal.
    started = stripe_client.post("/v1/patients/P-C1/setup-intents", headers=staff).json
    browser_confirms_setup(standin, started["client_secret"], "4242424242424242")
    by_setup = stripe_client.post(
        "/v1/patients/P-C1/payment-methods",
        headers=staff,
        json={"setup_intent": started["setup_intent"]},
    )
    assert by_setup.status_code == 201, by_setup.json
    invoice_id = open_invoice("pm_card_visa", patient_id="P-C2")
    assert stripe_client.get("/v1/patients/P-C2/payment-methods", headers=staff).status_code == 200

    # The pay page: its PaymentIntent, "save this card" ticked then unticked, a payment
    # checked with Stripe on return, and its webhook (the card for the receipt).
    paid_online = open_invoice(card=None, patient_id="P-C3")
    secret = open_pay_page(stripe_client, staff, paid_online)
    path = pay_link(stripe_client, staff, paid_online)
    for save in (True, False):
        answer = stripe_client.post(f"{path}/save-card", json={"save": save})
        assert answer.status_code == 200, answer.json
    intent = patient_confirms(standin, secret)
    stripe_client.get(f"{path}?submitted=1&payment_intent={intent['id']}")

    # The front desk: the page's PaymentIntent cancelled, the card on file charged, refunds.
    stripe_client.get(pay_link(stripe_client, staff, invoice_id))
    assert charge_card_on_file(stripe_client, staff, invoice_id, "c-1").status_code == 201
    refunded = stripe_client.post(
        f"/v1/invoices/{invoice_id}/refunds",
        headers={**staff, "Idempotency-Key": "r-1"},
        json={"amount": 1000, "reason": "contract"},
    )
    assert refunded.status_code == 201, refunded.json
    payment = in_app(
        stripe_app,
        lambda s, _g: s.scalars(
            select(Payment).where(
                Payment.invoice_id == invoice_id, Payment.method == "card_on_file"
            )
        ).one(),
    )
    charge = {"id": payment.stripe_charge_id, "object": "charge", "amount": 50000}
    charge |= {"payment_intent": payment.stripe_payment_intent_id, "amount_refunded": 1000}
    assert deliver(stripe_client, make_event("charge.refunded", charge)).status_code == 200

    # A bank account saved under a mandate, and debited.
    bank_debited = open_invoice(card=None, patient_id="P-C5")
    save_bank_account(stripe_client, staff, standin, "P-C5", "000123456789")
    debited = stripe_client.post(
        f"/v1/invoices/{bank_debited}/payments",
        headers={**staff, "Idempotency-Key": "b-1"},
        json={"method": "bank_debit"},
    )
    assert debited.status_code == 201, debited.json

    # Recovery: a refund whose answer was lost, a payment older than Stripe's 24 h keys.
    lost_payment = open_invoice("pm_card_visa", patient_id="P-C4")
    assert charge_card_on_file(stripe_client, staff, lost_payment, "c-2").status_code == 201

    def lose_answers(session: Any, _gateway: Any) -> None:
        session.execute(update(Refund).values(status="unknown", updated_at=utcnow()))
        session.execute(
            update(Payment)
            .where(Payment.invoice_id == lost_payment)
            .values(
                status="unknown",
                stripe_payment_intent_id=None,
                created_at=utcnow() - timedelta(days=2),
            )
        )
        session.commit()

    in_app(stripe_app, lose_answers)
    in_app(stripe_app, lambda s, g: recovery.reconcile_pending(s, g, timedelta(0)))

    # The portal: two bills paid at once with a saved card chosen on the page.
    together = [
        open_invoice(card=None, patient_id="P-C6", booking_id=f"BK-C6-{n}", email="c6@example.org")
        for n in range(2)
    ]
    card = save_card(stripe_client, staff, standin.url, "P-C6", "pm_card_visa")["id"]
    portal = portal_client(stripe_app, "c6@example.org")
    csrf = re.search(r'name="csrf" value="([^"]+)"', portal.get("/account").get_data(as_text=True))
    assert csrf
    form = {"csrf": csrf.group(1), "currency": "usd", "invoice": together}
    review = portal.post("/account/patients/P-C6/pay", data=form).get_data(as_text=True)
    waiting = re.search(r"/account/payments/(pay_[A-Za-z0-9]+)/status", review)
    assert waiting, review[:500]
    paid = portal.post(
        f"/account/payments/{waiting.group(1)}/saved-card",
        data={"csrf": csrf.group(1), "card": card},
    )
    assert paid.status_code == 303, paid.get_data(as_text=True)[:500]

    # Finance: balance transactions, payouts and a paid payout's transactions.
    stand_in_post(standin, "/v1/payouts", "amount=12345&currency=eur&status=paid")
    in_app(stripe_app, lambda s, g: stripe_sync.sync(s, g))
    card_id = by_setup.json["id"]
    assert stripe_client.delete(f"/v1/patients/P-C1/payment-methods/{card_id}", headers=staff)

    eventually(lambda: "card_of" in used)  # the pay page's payment: its webhook or return
    assert used == GATEWAY_METHODS, f"not called by any flow: {GATEWAY_METHODS - used}"
    # Every request went through the checker (a broken one would have failed its flow).
    sdk_calls = calls.names()
    for expected in (
        "customers.create",
        "customers.update",
        "setup_intents.create",
        "setup_intents.retrieve",
        "payment_methods.list",
        "payment_methods.retrieve",
        "payment_methods.detach",
        "payment_intents.create",
        "payment_intents.update",
        "payment_intents.retrieve",
        "payment_intents.cancel",
        "payment_intents.search",
        "refunds.create",
        "refunds.list",
        "balance_transactions.list",
        "payouts.list",
    ):
        assert expected in sdk_calls, expected


@pytest.mark.parametrize(
    "params, params_type, broken",
    [
        (
            {"amount": 500, "currency": "usd", "payment_method_types": ["card"]},
            PaymentIntentCreateParams,
            'unexpected extra key(s): "payment_method_types"',
        ),
        ({"customer": "cus_1", "payment_method_types": ["card"]}, SetupIntentCreateParams, "extra"),
        ({"amount": "500", "currency": "usd"}, PaymentIntentCreateParams, "not an instance of int"),
        ({"currency": "usd"}, PaymentIntentCreateParams, 'missing required key(s): "amount"'),
        ({"payment_intent": "pi_1", "metadata": {"refund_id": 7}}, RefundCreateParams, "str"),
        (
            {
                "amount": 500,
                "currency": "usd",
                "payment_method_options": {"card": {"stored_credential": "x"}},
            },
            PaymentIntentCreateParams,
            "stored_credential",
        ),
    ],
)
def test_the_checker_refuses_what_the_pinned_version_refuses(
    params: dict[str, Any], params_type: Any, broken: str
) -> None:
    with pytest.raises(ContractBroken, match=re.escape(broken)):
        check_params(params, params_type)


@ON_SQLITE
def test_the_old_request_through_a_real_flow_fails_on_the_contract(
    stripe_app, open_invoice, monkeypatch
) -> None:
    """The gateway as it was (payment_method_types on the pay page's PaymentIntent), driven
    by the real service, fails here even though the stand-in alone would have to refuse it."""
    invoice_id = open_invoice(card=None)

    def as_it_was(self: StripeGateway, **kw: Any) -> Any:
        return self.client.v1.payment_intents.create(
            params={
                "amount": kw["amount"],
                "currency": kw["currency"],
                "payment_method_types": ["card"],
                "metadata": {"payment_id": kw["payment_id"], "invoice_ref": kw["invoice_ref"]},
            },
            options={"idempotency_key": f"payment-{kw['payment_id']}"},
        )

    monkeypatch.setattr(StripeGateway, "create_online_intent", as_it_was)
    with pytest.raises(ContractBroken, match="payment_method_types"):
        in_app(stripe_app, lambda s, g: online.start_online_payment(s, g, invoice_id))
