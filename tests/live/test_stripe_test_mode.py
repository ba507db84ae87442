"""What the stand-in cannot prove: the real Stripe API, on the pinned version, accepts
every request the gateway makes. Run with a test-mode key (see the README's "Going live
with Stripe"); each run makes a few test-mode objects, nothing else."""

from __future__ import annotations

import secrets

import pytest

from billing.adapters.stripe_gateway import SDK_API_VERSION, StripeGateway
from billing.domain.errors import PaymentRequired
from tests.stripe.contract import Record


@pytest.fixture(scope="module")
def ref() -> str:
    return f"live-{secrets.token_hex(6)}"


def test_the_client_names_the_pinned_version(gateway: StripeGateway) -> None:
    assert gateway.api_version == SDK_API_VERSION


def test_a_card_set_up_for_later_is_charged_off_session_and_refunded(
    gateway: StripeGateway, calls: Record, ref: str
) -> None:
    customer = gateway.create_customer(f"pt_{ref}")
    setup = gateway.set_up_card(customer, "pm_card_visa")
    assert (setup.status, setup.customer_id) == ("succeeded", customer)
    assert setup.payment_method_id is not None
    card = gateway.make_default_card(customer, setup.payment_method_id)
    assert [c.id for c in gateway.list_cards(customer)] == [card.id]

    intent = gateway.charge_card_on_file(
        payment_id=f"pay_{ref}",
        invoice_ref=f"in_{ref}",
        amount=5000,
        currency="usd",
        customer_id=customer,
        payment_method_id=card.id,
    )
    assert intent.status == "succeeded", intent
    assert intent.id is not None
    assert gateway.retrieve_payment_intent(intent.id).status == "succeeded"
    refund = gateway.refund(refund_id=f"rf_{ref}", payment_intent_id=intent.id, amount=1000)
    assert refund.status in ("succeeded", "pending")
    assert gateway.find_refund(f"rf_{ref}", intent.id) is not None
    gateway.detach_card(card.id)
    assert calls.names() >= {"payment_intents.create", "setup_intents.create"}


def test_a_declined_card_comes_back_as_a_failed_intent(gateway: StripeGateway, ref: str) -> None:
    customer = gateway.create_customer(f"pt_{ref}_declined")
    setup = gateway.set_up_card(customer, "pm_card_chargeCustomerFail")
    assert setup.payment_method_id is not None
    intent = gateway.charge_card_on_file(
        payment_id=f"pay_{ref}_declined",
        invoice_ref=f"in_{ref}",
        amount=5000,
        currency="usd",
        customer_id=customer,
        payment_method_id=setup.payment_method_id,
    )
    assert (intent.status, intent.failure_code) == ("failed", "card_declined")


def test_a_card_declined_at_set_up_is_refused(gateway: StripeGateway, ref: str) -> None:
    customer = gateway.create_customer(f"pt_{ref}_refused")
    with pytest.raises(PaymentRequired):
        gateway.set_up_card(customer, "pm_card_visa_chargeDeclined")


def test_the_pay_pages_intent_is_cards_only_saved_then_cancelled(
    gateway: StripeGateway, ref: str
) -> None:
    intent = gateway.create_online_intent(
        payment_id=f"pay_{ref}_online", invoice_ref=f"in_{ref}", amount=5000, currency="usd"
    )
    assert intent.client_secret and intent.status == "requires_payment_method"
    customer = gateway.create_customer(f"pt_{ref}_online")
    assert intent.id is not None
    gateway.save_card_with_payment(intent.id, customer)
    gateway.save_card_with_payment(intent.id, None)
    assert gateway.cancel_payment_intent(intent.id).status == "canceled"
    setup = gateway.create_setup_intent(customer)
    assert setup.status == "requires_payment_method" and setup.client_secret


def test_finance_reads_balance_transactions_and_payouts(gateway: StripeGateway) -> None:
    gateway.balance_transactions(None, limit=5)
    gateway.payouts(None, limit=5)
