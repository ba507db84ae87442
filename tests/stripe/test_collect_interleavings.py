"""Random interleavings of every way an invoice's money moves, against the Stripe stand-in:
the pay page (opened, left open, paid with a card that works or one that is declined), the
front desk's card-on-file charge, voids, refunds, and Stripe's webhooks delivered in any
order, any number of times (the stand-in also sends its own, about 1 s late).

After every step, at Stripe and in our ledger alike: collected - refunded never exceeds
the invoice total, and is 0 on a void invoice; a paid invoice has a succeeded charge."""

from __future__ import annotations

import itertools
import os
from typing import Any

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    rule,
    run_state_machine_as_test,
)

from tests.stripe.collect import (
    charge_card_on_file,
    collected_at_stripe,
    intents_of,
    ledger_of,
    open_pay_page,
    patient_confirms,
)
from tests.stripe.events import deliver, make_event

CARDS = {"works": "4242424242424242", "declined": "4000000000000341"}
SETTLED = ("paid", "partially_refunded", "refunded")
EVENT_OF = {  # the webhook Stripe sends for a PaymentIntent in this state
    "succeeded": "payment_intent.succeeded",
    "requires_payment_method": "payment_intent.payment_failed",
    "canceled": "payment_intent.canceled",
}


def stripe_sends(client: Any, intents: list[dict[str, Any]], which: int, copies: int) -> None:
    """Stripe's webhook for one of the invoice's intents, as it stands, `copies` times."""
    if intents:
        intent = intents[which % len(intents)]
        event = make_event(EVENT_OF.get(intent["status"], "payment_intent.created"), intent)
        for _ in range(copies):
            assert deliver(client, event).status_code == 200


def test_no_interleaving_collects_more_than_the_invoice(
    stripe_client: Any, staff: dict[str, str], open_invoice: Any, standin: Any
) -> None:
    keys = itertools.count()

    class Collecting(RuleBasedStateMachine):
        @initialize()
        def an_open_invoice(self) -> None:
            self.invoice_id = open_invoice(card=CARDS["works"])  # a new card each time
            self.total = self.invoice()["total"]
            self.secrets: list[str] = []

        def invoice(self) -> dict[str, Any]:
            return dict(stripe_client.get(f"/v1/invoices/{self.invoice_id}", headers=staff).json)

        def intents(self) -> list[dict[str, Any]]:
            return intents_of(standin, self.invoice_id)

        @rule()
        def patient_opens_the_pay_page(self) -> None:
            if self.invoice()["status"] == "open":
                self.secrets.append(open_pay_page(stripe_client, staff, self.invoice_id))

        @rule(page=st.integers(0, 5), card=st.sampled_from(sorted(CARDS)))
        def patient_presses_pay(self, page: int, card: str) -> None:
            if self.secrets:  # on any page ever opened, however old
                secret = self.secrets[-1 - page % len(self.secrets)]
                patient_confirms(standin, secret, CARDS[card])

        @rule()
        def desk_charges_the_card_on_file(self) -> None:
            response = charge_card_on_file(stripe_client, staff, self.invoice_id, f"d{next(keys)}")
            assert response.status_code in (201, 402, 409), response.json

        @rule()
        def desk_voids(self) -> None:
            response = stripe_client.post(f"/v1/invoices/{self.invoice_id}/void", headers=staff)
            assert response.status_code in (200, 409), response.json

        @rule(share=st.sampled_from([1, 2, 4]))
        def desk_refunds(self, share: int) -> None:
            response = stripe_client.post(
                f"/v1/invoices/{self.invoice_id}/refunds",
                headers={**staff, "Idempotency-Key": f"r{next(keys)}"},
                json={"amount": self.total // share, "reason": "interleaving"},
            )
            assert response.status_code in (201, 409, 422), response.json

        @rule(which=st.integers(0, 5), copies=st.integers(1, 3))
        def stripe_delivers_an_event(self, which: int, copies: int) -> None:
            stripe_sends(stripe_client, self.intents(), which, copies)

        @invariant()
        def never_more_than_the_invoice(self) -> None:
            if not hasattr(self, "invoice_id"):
                return
            invoice = self.invoice()
            owed = 0 if invoice["status"] == "void" else self.total
            paid, refunded = collected_at_stripe(standin, self.invoice_id)
            assert 0 <= paid - refunded <= owed, (invoice["status"], paid, refunded)
            money = ledger_of(stripe_client.application, self.invoice_id)
            assert 0 <= money.paid - money.refunded <= owed, (invoice["status"], money)
            if invoice["status"] in SETTLED:
                assert any(i["status"] == "succeeded" for i in self.intents())

        def teardown(self) -> None:
            """Every event delivered at last: our ledger says what Stripe says."""
            if not hasattr(self, "invoice_id"):
                return
            for intent in self.intents():
                if intent["status"] == "succeeded":
                    deliver(stripe_client, make_event("payment_intent.succeeded", intent))
            money = ledger_of(stripe_client.application, self.invoice_id)
            assert collected_at_stripe(standin, self.invoice_id) == (money.paid, money.refunded)

    run_state_machine_as_test(
        Collecting,
        settings=settings(
            max_examples=int(os.environ.get("INTERLEAVING_EXAMPLES", "40")),
            stateful_step_count=12,
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
        ),
    )


def desk_money(app: Any, invoice_id: str) -> int:
    """What the desk received on the invoice outside Stripe, less what it reversed."""
    from sqlalchemy import func, select

    from billing.adapters import db
    from billing.adapters.models import LedgerEntry
    from billing.services.invoicing.ledger import RECEIVED, REVERSAL, paid_net

    with app.app_context():
        found = db.session().scalar(
            select(func.coalesce(func.sum(paid_net(LedgerEntry.kind, LedgerEntry.amount)), 0))
            .where(LedgerEntry.invoice_id == invoice_id)
            .where(LedgerEntry.kind.in_((RECEIVED, REVERSAL)))
        )
    return int(found or 0)


def test_no_interleaving_of_parts_cards_and_desk_money_collects_beyond_what_is_owed(
    stripe_app: Any, stripe_client: Any, staff: dict[str, str], open_invoice: Any, standin: Any
) -> None:
    """Parts of the bill by card, by the pay page and in cash, checks that bounce, refunds
    and Stripe's webhooks, in any order and duplicated. After every step: what Stripe and
    the desk collected, less refunds, never exceeds the total (Stripe's part is 0 on a
    void invoice, whose cash is the desk's to give back); the balance due is the total
    less what was paid; the status says partly paid exactly when it is."""
    from tests.stripe.test_untested_paths import key

    desk = key(stripe_app, "payments:record")  # cash and checks; staff charges cards
    keys = itertools.count()

    class Parts(RuleBasedStateMachine):
        @initialize()
        def an_open_invoice(self) -> None:
            self.invoice_id = open_invoice(card=CARDS["works"])
            self.total = self.invoice()["total"]
            self.secrets: list[str] = []
            self.cash: list[str] = []

        def invoice(self) -> dict[str, Any]:
            return dict(stripe_client.get(f"/v1/invoices/{self.invoice_id}", headers=staff).json)

        def pay(self, body: dict[str, Any]) -> Any:
            who = staff if body["method"] == "card_on_file" else desk
            return stripe_client.post(
                f"/v1/invoices/{self.invoice_id}/payments",
                headers={**who, "Idempotency-Key": f"p{next(keys)}"},
                json=body,
            )

        @rule(share=st.sampled_from([None, 2, 5, 10]))
        def desk_charges_part_on_the_card(self, share: int | None) -> None:
            body: dict[str, Any] = {"method": "card_on_file"}
            if share:
                body["amount"] = self.total // share
            answer = self.pay(body)
            assert answer.status_code in (201, 402, 409, 422), answer.json

        @rule(share=st.sampled_from([None, 4, 10]), method=st.sampled_from(["cash", "check"]))
        def desk_receives_money(self, share: int | None, method: str) -> None:
            body: dict[str, Any] = {"method": method, "reference": "1001"}
            if method == "cash":
                del body["reference"]
            if share:
                body["amount"] = self.total // share
            answer = self.pay(body)
            assert answer.status_code in (201, 409, 422), answer.json
            if answer.status_code == 201:
                self.cash.append(answer.json["id"])

        @rule(which=st.integers(0, 5))
        def a_check_bounces(self, which: int) -> None:
            if self.cash:
                payment = self.cash[which % len(self.cash)]
                answer = stripe_client.post(
                    f"/v1/invoices/{self.invoice_id}/payments/{payment}/reversals",
                    headers={**desk, "Idempotency-Key": f"v{next(keys)}"},
                    json={"reason": "returned"},
                )
                assert answer.status_code == 201, answer.json

        @rule()
        def patient_opens_the_pay_page(self) -> None:
            if self.invoice()["status"] in ("open", "partially_paid"):
                self.secrets.append(open_pay_page(stripe_client, staff, self.invoice_id))

        @rule(page=st.integers(0, 5))
        def patient_presses_pay(self, page: int) -> None:
            if self.secrets:
                patient_confirms(standin, self.secrets[-1 - page % len(self.secrets)])

        @rule(share=st.sampled_from([2, 5]))
        def desk_refunds(self, share: int) -> None:
            answer = stripe_client.post(
                f"/v1/invoices/{self.invoice_id}/refunds",
                headers={**staff, "Idempotency-Key": f"r{next(keys)}"},
                json={"amount": self.total // share, "reason": "interleaving"},
            )
            assert answer.status_code in (201, 409, 422), answer.json

        @rule()
        def desk_voids(self) -> None:
            answer = stripe_client.post(f"/v1/invoices/{self.invoice_id}/void", headers=staff)
            assert answer.status_code in (200, 409), answer.json

        @rule(which=st.integers(0, 5), copies=st.integers(1, 3))
        def stripe_delivers_an_event(self, which: int, copies: int) -> None:
            stripe_sends(stripe_client, intents_of(standin, self.invoice_id), which, copies)

        @invariant()
        def never_beyond_what_is_owed(self) -> None:
            if not hasattr(self, "invoice_id"):
                return
            invoice = self.invoice()
            paid, refunded = collected_at_stripe(standin, self.invoice_id)
            at_desk = desk_money(stripe_app, self.invoice_id)
            if invoice["status"] == "void":
                assert paid - refunded == 0, (paid, refunded)
            else:
                assert 0 <= paid - refunded + at_desk <= self.total, (paid, refunded, at_desk)
            money = ledger_of(stripe_app, self.invoice_id)
            # One step at a time, nothing is ever collected to be given back.
            assert money.paid <= self.total and money.overpaid == 0, money
            if invoice["status"] in ("open", "partially_paid"):
                assert invoice["balance_due"] == self.total - invoice["amount_paid"], invoice
                assert (invoice["status"] == "partially_paid") == (invoice["amount_paid"] > 0)
            if invoice["status"] == "paid":
                assert invoice["balance_due"] == 0 and invoice["amount_paid"] >= self.total

        def teardown(self) -> None:
            if not hasattr(self, "invoice_id"):
                return
            for intent in intents_of(standin, self.invoice_id):
                if intent["status"] == "succeeded":
                    deliver(stripe_client, make_event("payment_intent.succeeded", intent))
            money = ledger_of(stripe_app, self.invoice_id)
            at_desk = desk_money(stripe_app, self.invoice_id)
            paid, refunded = collected_at_stripe(standin, self.invoice_id)
            assert (paid + at_desk, refunded) == (money.paid, money.refunded)

    run_state_machine_as_test(
        Parts,
        settings=settings(
            max_examples=int(os.environ.get("INTERLEAVING_EXAMPLES", "30")),
            stateful_step_count=12,
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
        ),
    )
