"""ACH Direct Debit (`us_bank_account`), which localstripe lacks, as Stripe documents it
(stand-in side only, like the semantics beside it).

- A PaymentMethod of type `us_bank_account` made from a routing and an account number
  (Stripe's test numbers, below), with the account holder's name required, or named by
  one of Stripe's test ids (`pm_usBankAccount_success`, ...); it counts as
  verified, as an account linked through Financial Connections is (no micro-deposits).
- It is set up for later debits only with a mandate: a SetupIntent confirmed with it needs
  `mandate_data` and answers with the `mandate` it made; a PaymentIntent confirmed with it
  needs `mandate_data` or a `mandate` made for that account, is in US dollars only, and
  must allow `us_bank_account`.
- A debit is `processing` (event `payment_intent.processing`) for BANK_SETTLES_AFTER
  seconds, standing in for Stripe's up to four business days; then it succeeds, or fails
  as the account says (the PaymentIntent back to `requires_payment_method` with its
  `last_payment_error`, event `payment_intent.payment_failed`).
- An account that succeeds and is then disputed (Stripe's 000555555559): BANK_RETURNS_AFTER
  seconds later, a Dispute (ACH disputes are final: `lost`) with its balance transaction
  (type `adjustment`, the amount taken back out), and the event `charge.dispute.created`.
"""

from __future__ import annotations

import asyncio
import re
from typing import Any

from billing.adapters.standin.semantics import balance_transaction

BANK_SETTLES_AFTER = 1.5
BANK_RETURNS_AFTER = 1.5  # after it succeeded, for an account that disputes it
TEST_ROUTING_NUMBER = "110000000"
DISPUTED = "disputed"
# Stripe's test accounts (with routing number 110000000) and what becomes of a debit.
TEST_ACCOUNTS: dict[str, tuple[str, str] | str | None] = {
    "000123456789": None,
    "000111111113": ("account_closed", "The customer's bank account has been closed."),
    "000111111116": ("no_account", "The customer's bank account could not be located."),
    "000222222227": (
        "insufficient_funds",
        "The customer's account has insufficient funds to cover this payment.",
    ),
    "000333333335": (
        "debit_not_authorized",
        "The customer has notified their bank that this payment was unauthorized.",
    ),
    "000555555559": DISPUTED,
}
BANK = "us_bank_account"
# Stripe's test PaymentMethods for bank accounts, by the account each stands for.
TEST_TOKENS = {
    "pm_usBankAccount_success": "000123456789",
    "pm_usBankAccount_accountClosed": "000111111113",
    "pm_usBankAccount_noAccount": "000111111116",
    "pm_usBankAccount_insufficientFunds": "000222222227",
    "pm_usBankAccount_debitNotAuthorized": "000333333335",
    "pm_usBankAccount_dispute": "000555555559",
}


def add_bank_debits() -> None:
    from localstripe import resources
    from localstripe.resources import UserError
    from localstripe.webhooks import schedule_webhook

    method_class, charge_class = resources.PaymentMethod, resources.Charge
    if getattr(method_class, "_billing_banks", False):
        return
    method_class._billing_banks = True

    # localstripe's objects are plain classes: these two are made like them, at run time.
    def mandate_init(self: Any, payment_method: str, customer_acceptance: Any) -> None:
        resources.StripeObject.__init__(self)
        self.payment_method = payment_method
        self.customer_acceptance = customer_acceptance
        self.status, self.type = "active", "multi_use"

    def dispute_init(self: Any, charge: Any) -> None:
        resources.StripeObject.__init__(self)
        self.amount, self.currency = charge.amount, charge.currency
        self.charge, self.payment_intent = charge.id, charge.payment_intent
        self.reason, self.status = "debit_not_authorized", "lost"  # ACH disputes are final
        self.metadata = {}
        # The money taken back out of the balance, naming the dispute.
        txn = balance_transaction(
            -charge.amount, charge.currency, "Dispute", self.id, "adjustment", "dispute", charge.id
        )
        self.balance_transactions = [txn.id]

    mandate_class = _stand_in_class("Mandate", "mandate", "mandate_", mandate_init)
    dispute_class = _stand_in_class("Dispute", "dispute", "du_", dispute_init)

    method_init = method_class.__init__

    def method_init_with_banks(
        self: Any, type: Any = None, billing_details: Any = None, **kwargs: Any
    ) -> None:
        if type != BANK:
            method_init(self, type=type, billing_details=billing_details, **kwargs)
            return
        account = kwargs.pop(BANK, None)
        metadata = kwargs.pop("metadata", None)
        if kwargs:
            raise UserError(400, "Unexpected " + ", ".join(kwargs))
        if not isinstance(account, dict) or not re.fullmatch(
            r"\d{9}", str(account.get("routing_number", ""))
        ):
            raise UserError(400, "Invalid routing number.", {"param": "us_bank_account"})
        number = str(account.get("account_number", ""))
        if not re.fullmatch(r"\d{4,17}", number):
            raise UserError(400, "Invalid account number.", {"param": "us_bank_account"})
        if not (billing_details or {}).get("name"):
            raise UserError(
                400,
                "Missing required param: billing_details[name].",
                {"code": "parameter_missing", "param": "billing_details[name]"},
            )
        resources.StripeObject.__init__(self)
        self.type, self.billing_details, self.customer = BANK, billing_details, None
        self.metadata = metadata or {}
        self._account_number = number
        self.us_bank_account = {
            "account_holder_type": account.get("account_holder_type", "individual"),
            "account_type": account.get("account_type", "checking"),
            "bank_name": "STRIPE TEST BANK",
            "fingerprint": resources.fingerprint(account["routing_number"] + number),
            "last4": number[-4:],
            "routing_number": account["routing_number"],
        }

    method_class.__init__ = method_init_with_banks
    test_article = method_class._try_get_canonical_test_article.__func__

    def test_articles_with_banks(cls: Any, id: str) -> Any:
        if id in TEST_TOKENS:
            return cls(
                type=BANK,
                billing_details={"name": "Jenny Rosen"},
                us_bank_account={
                    "routing_number": TEST_ROUTING_NUMBER,
                    "account_number": TEST_TOKENS[id],
                    "account_holder_type": "individual",
                },
            )
        return test_article(cls, id)

    method_class._try_get_canonical_test_article = classmethod(test_articles_with_banks)

    # Mandates: a SetupIntent or PaymentIntent confirmed with a bank account needs one.
    def mandate_for(obj: Any, method: Any) -> str:
        """The mandate `obj` (an intent) debits `method` under, made now from its
        `mandate_data`, or the `mandate` it names; else Stripe's 400."""
        named = getattr(obj, "_mandate", None)
        if named:
            mandate = resources.store.get(f"mandate:{named}")
            if mandate is None or mandate.payment_method != method.id:
                raise UserError(400, f"No such mandate: '{named}'", {"param": "mandate"})
            return str(named)
        data = getattr(obj, "_mandate_data", None)
        acceptance = (data or {}).get("customer_acceptance") if isinstance(data, dict) else None
        if not acceptance:
            raise UserError(
                400,
                "A mandate is required to debit a us_bank_account: pass `mandate_data` "
                "(the customer's acceptance) or the `mandate` made when it was set up.",
                {"code": "parameter_missing", "param": "mandate_data"},
            )
        made = mandate_class(method.id, acceptance)
        method._mandate = made.id
        return str(made.id)

    setup_class = resources.SetupIntent
    setup_init, setup_attach = setup_class.__init__, setup_class._attach_pm

    def setup_init_with_banks(self: Any, payment_method_types: Any = None, **data: Any) -> None:
        banks = payment_method_types is not None and BANK in payment_method_types
        others = [t for t in payment_method_types or [] if t != BANK] or None
        setup_init(self, payment_method_types=others or (["sepa_debit"] if banks else None), **data)
        if banks:
            self.payment_method_types = payment_method_types
        self.mandate = None

    def setup_attach_with_mandate(self: Any, method: Any) -> None:
        if method.type not in self.payment_method_types:
            raise UserError(
                400,
                f"The PaymentMethod is a {method.type}, which this SetupIntent does not allow "
                "(allowed_payment_method_types).",
                {"code": "setup_intent_invalid_parameter", "param": "payment_method"},
            )
        if method.type == BANK:
            self.mandate = mandate_for(self, method)
        setup_attach(self, method)

    setup_class.__init__ = setup_init_with_banks
    setup_class._attach_pm = setup_attach_with_mandate

    intent_class = resources.PaymentIntent
    intent_init, confirm = intent_class.__init__, intent_class._confirm

    def intent_init_with_mandates(
        self: Any, mandate: Any = None, mandate_data: Any = None, **data: Any
    ) -> None:
        intent_init(self, **data)
        self._mandate, self._mandate_data = mandate, mandate_data
        self._allowed = (
            data.get("allowed_payment_method_types") or data.get("payment_method_types") or ["card"]
        )

    def confirm_bank_debits(self: Any, on_failure_now: Any) -> None:
        method = resources.PaymentMethod._api_retrieve(self.payment_method)
        if method.type == BANK:
            if BANK not in self._allowed:
                raise UserError(
                    400,
                    "The PaymentMethod is a us_bank_account, which this PaymentIntent does "
                    "not allow (allowed_payment_method_types).",
                    {"code": "payment_intent_invalid_parameter"},
                )
            if self.currency != "usd":
                raise UserError(
                    400,
                    "us_bank_account debits are in usd only.",
                    {"code": "payment_method_currency_mismatch"},
                )
            self._mandate = mandate_for(self, method)
        confirm(self, on_failure_now)
        charge = self.latest_charge
        if charge is not None and method.type == BANK:
            schedule_webhook(resources.Event("payment_intent.processing", self))

    intent_class.__init__ = intent_init_with_mandates
    intent_class._confirm = confirm_bank_debits

    # Debits: processing, then settled as the account says.
    initialize = charge_class._initialize_charge

    def initialize_bank_debits(
        self: Any, on_success: Any = None, on_failure_now: Any = None, on_failure_later: Any = None
    ) -> None:
        method = resources.PaymentMethod._api_retrieve(self.payment_method)
        if method.type != BANK:
            initialize(self, on_success, on_failure_now, on_failure_later)
            return
        self.status = "pending"
        self.payment_method_details = {
            "type": BANK,
            BANK: {
                "bank_name": method.us_bank_account["bank_name"],
                "last4": method.us_bank_account["last4"],
                "routing_number": method.us_bank_account["routing_number"],
            },
        }
        outcome = TEST_ACCOUNTS.get(method._account_number)
        asyncio.get_running_loop().call_later(
            BANK_SETTLES_AFTER, settle, self, outcome, on_success, on_failure_later
        )

    def settle(charge: Any, outcome: Any, on_success: Any, on_failure_later: Any) -> None:
        if charge.status != "pending":
            return
        if isinstance(outcome, tuple):
            charge.status = "failed"
            charge.failure_code, charge.failure_message = outcome
            if on_failure_later:
                on_failure_later()
            return
        txn = resources.BalanceTransaction(
            amount=charge.amount,
            currency=charge.currency,
            description=charge.description,
            exchange_rate=1.0,
            reporting_category="charge",
            source=charge.id,
            type="charge",
        )
        charge.balance_transaction, charge.status = txn.id, "succeeded"
        if on_success:
            on_success()
        if outcome == DISPUTED:
            asyncio.get_running_loop().call_later(BANK_RETURNS_AFTER, dispute, charge)

    def dispute(charge: Any) -> None:
        charge.disputed = True
        schedule_webhook(resources.Event("charge.dispute.created", dispute_class(charge)))

    charge_class._initialize_charge = initialize_bank_debits


def _stand_in_class(name: str, kind: str, prefix: str, init: Any) -> Any:
    """A localstripe object class made at run time, and kept as this module's `name` so
    that the stand-in's state file (a pickle) can name it."""
    from localstripe import resources

    attributes = {"object": kind, "_id_prefix": prefix, "__init__": init, "__module__": __name__}
    made = type(name, (resources.StripeObject,), attributes)
    globals()[name] = made
    return made
