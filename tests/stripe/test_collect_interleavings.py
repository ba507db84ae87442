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


def examples(default: int, app: Any) -> int:
    """How many interleavings to try: INTERLEAVING_EXAMPLES, else `default` on PostgreSQL,
    where requests truly run at once, and a quarter of it on SQLite, which takes one
    writer at a time (its runs check the same rules, with fewer races to find)."""
    if "INTERLEAVING_EXAMPLES" in os.environ:
        return int(os.environ["INTERLEAVING_EXAMPLES"])
    on_sqlite = app.config["DATABASE_URL"].startswith("sqlite")
    return max(5, default // 4) if on_sqlite else default


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
            max_examples=examples(40, stripe_client.application),
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
            # A void invoice's cash is the patient's credit now (OVERPAYMENTS=credit).
            kept = credit_held(stripe_app, self.invoice()["patient_id"])
            assert (paid + at_desk, refunded) == (money.paid + kept, money.refunded)

    run_state_machine_as_test(
        Parts,
        settings=settings(
            max_examples=examples(30, stripe_client.application),
            stateful_step_count=12,
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
        ),
    )


def credit_held(app: Any, patient_id: str) -> int:
    from billing.adapters import db
    from billing.services.payments import account

    with app.app_context():
        return account.credit_of(db.session(), patient_id, "usd")


def bank_returns_at_stripe(bill_intents: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The disputes (for a bank debit: its return) the stand-in made of these intents."""
    from localstripe import resources

    ids = {intent["id"] for intent in bill_intents}
    return [
        found._export()
        for key, found in list(resources.store.items())
        if key.startswith("dispute:") and found.payment_intent in ids
    ]


def by_bank(intent: dict[str, Any]) -> bool:
    charge = intent.get("latest_charge")
    details = charge.get("payment_method_details") if isinstance(charge, dict) else None
    return bool(details) and details.get("type") == "us_bank_account"


def wait_for_the_banks(standin: Any, bills: list[str], returned: bool) -> None:
    """Until no bank debit of the bills is still processing at the stand-in, and (from an
    account whose debits come back: `returned`) each that succeeded has come back."""
    from tests.fixtures_stripe import eventually

    def settled() -> bool:
        for bill in bills:
            intents = intents_of(standin, bill)
            if any(i["status"] == "processing" for i in intents):
                return False
            debits = [i for i in intents if i["status"] == "succeeded" and by_bank(i)]
            if returned and len(bank_returns_at_stripe(debits)) < len(debits):
                return False
        return True

    eventually(settled)


def test_no_interleaving_of_corrections_and_credit_loses_or_makes_a_cent(
    stripe_app: Any,
    stripe_client: Any,
    staff: dict[str, str],
    open_invoice: Any,
    standin: Any,
    monkeypatch: Any,
) -> None:
    """Two bills of one patient: parts by card, by bank debit and in cash, checks that
    bounce, bank debits that succeed and come back, refunds, credit notes, write-offs,
    the patient's credit applied by staff and by the job or refunded on request, and
    Stripe's webhooks, in any order and duplicated. After every step, for each bill: what
    it kept (paid less refunded) never exceeds what it owes after credit notes and
    write-offs, and equals it once it reads paid; the balance due is what is owed less
    what was paid; the patient's credit is never negative. At the end, Stripe's money
    (less what the banks took back) and the desk's equal what the bills kept plus the
    patient's credit."""
    from billing.adapters import db
    from billing.adapters.standin import banks
    from billing.services.payments import received
    from tests.stripe.test_bank_debit import save_bank_account

    monkeypatch.setattr(banks, "BANK_SETTLES_AFTER", 0.2)  # within a few steps
    monkeypatch.setattr(banks, "BANK_RETURNS_AFTER", 0.2)

    keys = itertools.count()
    patients = itertools.count()

    class Corrections(RuleBasedStateMachine):
        @initialize(account=st.sampled_from(["000123456789", "000555555559"]))
        def two_open_bills(self, account: str) -> None:
            self.patient = f"P-CR{next(patients):03d}"
            self.bills = [
                open_invoice(patient_id=self.patient, booking_id=f"BK-{self.patient}-{n}")
                for n in range(2)
            ]
            # A bank account too: its debits succeed, or succeed and come back.
            save_bank_account(stripe_client, staff, standin, self.patient, account)
            self.returned = account == "000555555559"
            self.total = self.invoice(0)["total"]
            self.cash: list[tuple[int, str]] = []
            self.secrets: list[str] = []
            # The first is paid by card: a credit note on it has money to give back.
            paid = self.post(0, "payments", {"method": "card_on_file"})
            assert paid.status_code == 201, paid.json

        def invoice(self, which: int) -> dict[str, Any]:
            bill = self.bills[which % 2]
            return dict(stripe_client.get(f"/v1/invoices/{bill}", headers=staff).json)

        def post(self, which: int, path: str, body: dict[str, Any]) -> Any:
            return stripe_client.post(
                f"/v1/invoices/{self.bills[which % 2]}/{path}",
                headers={**staff, "Idempotency-Key": f"c{next(keys)}"},
                json=body,
            )

        def part(self, share: int | None) -> dict[str, Any]:
            return {"amount": self.total // share} if share else {}

        @rule(which=st.integers(0, 1), share=st.sampled_from([None, 2, 5]))
        def desk_charges_the_card(self, which: int, share: int | None) -> None:
            answer = self.post(which, "payments", {"method": "card_on_file", **self.part(share)})
            assert answer.status_code in (201, 402, 409, 422), answer.json

        @rule(which=st.integers(0, 1), share=st.sampled_from([None, 2, 5]))
        def desk_debits_the_bank(self, which: int, share: int | None) -> None:
            answer = self.post(which, "payments", {"method": "bank_debit", **self.part(share)})
            assert answer.status_code in (201, 409, 422), answer.json

        @rule(which=st.integers(0, 1), share=st.sampled_from([None, 4, 10]))
        def desk_receives_a_check(self, which: int, share: int | None) -> None:
            body = {"method": "check", "reference": "77", **self.part(share)}
            answer = self.post(which, "payments", body)
            assert answer.status_code in (201, 409, 422), answer.json
            if answer.status_code == 201:
                self.cash.append((which, answer.json["id"]))

        @rule(pick=st.integers(0, 5))
        def a_check_bounces(self, pick: int) -> None:
            if self.cash:
                which, payment = self.cash[pick % len(self.cash)]
                answer = self.post(which, f"payments/{payment}/reversals", {"reason": "returned"})
                assert answer.status_code == 201, answer.json

        @rule(which=st.integers(0, 1), share=st.sampled_from([2, 5, 10]))
        def finance_issues_a_credit_note(self, which: int, share: int) -> None:
            body = {"amount": self.total // share, "reason": "r", "approved_by": "a"}
            answer = self.post(which, "credit-notes", body)
            assert answer.status_code in (201, 409, 422), answer.json

        @rule(which=st.integers(0, 1), share=st.sampled_from([None, 10]))
        def finance_writes_off(self, which: int, share: int | None) -> None:
            body = {"category": "bad_debt", "reason": "r", "approved_by": "a", **self.part(share)}
            answer = self.post(which, "write-offs", body)
            assert answer.status_code in (201, 409, 422), answer.json

        @rule(which=st.integers(0, 1), share=st.sampled_from([None, 10]))
        def desk_applies_credit(self, which: int, share: int | None) -> None:
            body = {"method": "account_credit", **self.part(share)}
            answer = self.post(which, "payments", body)
            assert answer.status_code in (201, 409, 422), answer.json

        @rule(share=st.sampled_from([10, 20]))
        def patient_asks_for_credit_back(self, share: int) -> None:
            answer = stripe_client.post(
                f"/v1/patients/{self.patient}/account/refunds",
                headers={**staff, "Idempotency-Key": f"c{next(keys)}"},
                json={"amount": self.total // share, "currency": "usd", "reason": "asked"},
            )
            assert answer.status_code in (201, 409, 422), answer.json

        @rule()
        def the_job_applies_credit(self) -> None:
            with stripe_app.app_context():
                received.apply_all_credit(db.session())

        @rule(which=st.integers(0, 1), share=st.sampled_from([2, 5]))
        def desk_refunds(self, which: int, share: int) -> None:
            body = {"amount": self.total // share, "reason": "interleaving"}
            answer = self.post(which, "refunds", body)
            assert answer.status_code in (201, 409, 422), answer.json

        @rule(which=st.integers(0, 1))
        def patient_opens_the_pay_page(self, which: int) -> None:
            if self.invoice(which)["status"] in ("open", "partially_paid"):
                self.secrets.append(open_pay_page(stripe_client, staff, self.bills[which]))

        @rule(page=st.integers(0, 5))
        def patient_presses_pay(self, page: int) -> None:
            if self.secrets:
                patient_confirms(standin, self.secrets[-1 - page % len(self.secrets)])

        @rule(which=st.integers(0, 1), pick=st.integers(0, 5), copies=st.integers(1, 3))
        def stripe_delivers_an_event(self, which: int, pick: int, copies: int) -> None:
            stripe_sends(stripe_client, intents_of(standin, self.bills[which]), pick, copies)

        @invariant()
        def every_cent_in_its_place(self) -> None:
            if not hasattr(self, "bills"):
                return
            for which in (0, 1):
                invoice = self.invoice(which)
                owed = invoice["total"] - invoice["amount_credited"] - invoice["amount_written_off"]
                money = ledger_of(stripe_app, self.bills[which])
                kept = money.paid - money.refunded
                assert kept <= owed, (invoice, money)
                if invoice["status"] in ("open", "partially_paid"):
                    assert invoice["balance_due"] == owed - invoice["amount_paid"], invoice
                if invoice["status"] == "paid":
                    assert money.paid - money.overpaid == owed, (invoice, money)
                    assert invoice["balance_due"] == 0, invoice
            assert credit_held(stripe_app, self.patient) >= 0

        def teardown(self) -> None:
            if not hasattr(self, "bills"):
                return
            real, kept = 0, 0
            wait_for_the_banks(standin, self.bills, self.returned)
            for bill in self.bills:
                intents = intents_of(standin, bill)
                for intent in intents:
                    if intent["status"] == "succeeded":
                        deliver(stripe_client, make_event("payment_intent.succeeded", intent))
                returned = bank_returns_at_stripe(intents)
                for dispute in returned:  # Stripe's own copy may still be on its way
                    deliver(stripe_client, make_event("charge.dispute.created", dispute))
                paid, refunded = collected_at_stripe(standin, bill)
                real += paid - refunded - sum(d["amount"] for d in returned)
                real += desk_money(stripe_app, bill)
                money = ledger_of(stripe_app, bill)
                kept += money.paid - money.refunded
            assert real == kept + credit_held(stripe_app, self.patient), (real, kept)

    run_state_machine_as_test(
        Corrections,
        settings=settings(
            max_examples=examples(20, stripe_client.application),
            stateful_step_count=12,
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
        ),
    )
