"""The one module that talks to Stripe. Everything else sees plain values and typed errors.

Nothing clinical is ever sent: only opaque ids (`pt_...`, `in_...`, `pay_...`) in
metadata. Every call that creates something carries an idempotency key derived from
our own row, so a retry never creates a second object at Stripe.

Every request is built from stripe-python's own params types (`PaymentIntentCreateParams`
and friends), which are generated for one API version: the client pins that version
(`STRIPE_API_VERSION`, by default the SDK's own), so mypy checks each request against what
that version of Stripe accepts. Cards, and US bank accounts (ACH Direct Debit, under a
mandate) where the clinic takes them, the way the pinned version asks for it:
`allowed_payment_method_types`, never the removed `payment_method_types`.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

import stripe
from stripe.params import (
    BalanceTransactionListParams,
    CustomerCreateParams,
    CustomerUpdateParams,
    PaymentIntentCreateParams,
    PaymentIntentSearchParams,
    PaymentIntentUpdateParams,
    PaymentMethodListParams,
    PayoutListParams,
    RefundCreateParams,
    RefundListParams,
    SetupIntentCreateParams,
)

from billing.adapters import metrics
from billing.domain.errors import (
    BadGateway,
    BadRequest,
    PaymentRequired,
    ServiceError,
    ServiceUnavailable,
    Unprocessable,
)


@dataclass(frozen=True, slots=True)
class Card:
    id: str
    brand: str
    last4: str
    exp_month: int
    exp_year: int
    kind: str = "card"  # or "us_bank_account": then brand is the bank's name, no expiry


log = logging.getLogger("billing.stripe")

# The API version stripe-python was generated for: its params types describe that version.
SDK_API_VERSION: str = stripe.api_version
WEBHOOK_TOLERANCE_SECONDS = 300
# Card payments only, on every PaymentIntent and SetupIntent (no redirects off our pages).
CARDS_ONLY: list[str] = ["card"]
BANK_ACCOUNT = "us_bank_account"  # ACH Direct Debit: US dollars only, under a mandate
# How a saved card is charged, as card networks ask it said: an instalment of a plan the
# patient agreed to, a recurring fee, or unscheduled (staff, AutoPay).
CardUsage = Literal["installment", "recurring", "unscheduled"]
CARDS_AND_BANKS: list[str] = ["card", BANK_ACCOUNT]


@dataclass(frozen=True, slots=True)
class MandateAcceptance:
    """How the patient accepted a bank debit mandate: online (when, from which address and
    browser) or offline (a form signed at the desk)."""

    online: bool
    accepted_at: datetime | None = None
    ip_address: str | None = None
    user_agent: str | None = None


@dataclass(frozen=True, slots=True)
class SetupResult:
    """What we keep of a SetupIntent: whether the card is set up for off-session use."""

    id: str
    status: str  # succeeded, requires_action, requires_payment_method, canceled, ...
    customer_id: str | None
    payment_method_id: str | None
    client_secret: str
    mandate_id: str | None = None  # a bank account's: what later debits are made under


@dataclass(frozen=True, slots=True)
class Intent:
    """What we keep of a PaymentIntent."""

    id: str | None
    status: str  # Stripe's status, or "failed" when the charge was declined
    amount: int
    currency: str
    charge_id: str | None = None
    amount_received: int = 0  # what Stripe collected (the amount, once succeeded)
    client_secret: str | None = None
    failure_code: str | None = None
    failure_message: str | None = None
    metadata: dict[str, str] = field(default_factory=dict)
    payment_method_id: str | None = None
    decline_code: str | None = None  # the bank's reason for a card decline


@dataclass(frozen=True, slots=True)
class RefundResult:
    id: str
    status: str
    amount: int
    charge_id: str | None
    failure_reason: str | None = None  # Stripe's, once a refund failed


@dataclass(frozen=True, slots=True)
class BalanceTransaction:
    id: str
    type: str
    source: str | None
    amount: int
    fee: int
    net: int
    currency: str
    created: datetime
    available_on: datetime | None


@dataclass(frozen=True, slots=True)
class Payout:
    id: str
    amount: int
    currency: str
    status: str
    arrival_date: datetime | None
    created: datetime


@dataclass(frozen=True, slots=True)
class Page:
    items: list[Any]
    has_more: bool


@dataclass(frozen=True, slots=True)
class Event:
    id: str
    type: str
    created: int
    object: dict[str, Any]
    payload: str
    api_version: str | None = None  # the version Stripe rendered the event in


class StripeGateway:
    """A StripeClient built once per app, with explicit timeouts and network retries."""

    def __init__(
        self,
        secret_key: str,
        webhook_secret: str,
        api_base: str | None = None,
        timeout_seconds: float = 10.0,
        max_network_retries: int = 2,
        api_version: str | None = None,
    ) -> None:
        self.api_version = api_version or SDK_API_VERSION
        self.client = stripe.StripeClient(
            secret_key,
            stripe_version=self.api_version,
            max_network_retries=max_network_retries,
            http_client=stripe.RequestsClient(timeout=timeout_seconds),
            base_addresses={"api": api_base.rstrip("/")} if api_base else {},
        )
        self.webhook_secret = webhook_secret
        self._versions_said: set[str] = set()

    # Customers and cards -------------------------------------------------------

    def create_customer(self, patient_ref: str) -> str:
        """A Customer that knows only our opaque patient ref."""
        params: CustomerCreateParams = {"metadata": {"patient_ref": patient_ref}}
        with _translated("create_customer"):
            customer = self.client.v1.customers.create(
                params=params, options={"idempotency_key": f"customer-{patient_ref}"}
            )
        return str(customer.id)

    def create_setup_intent(self, customer_id: str) -> SetupResult:
        """A SetupIntent that the patient's browser confirms with Stripe.js (its client
        secret), setting a card up with the bank for charges made when the patient is away."""
        params: SetupIntentCreateParams = {
            "customer": customer_id,
            "usage": "off_session",
            "allowed_payment_method_types": CARDS_ONLY,
        }
        with _translated("create_setup_intent"):
            intent = self.client.v1.setup_intents.create(params=params)
        return _setup(intent)

    def set_up_card(self, customer_id: str, payment_method_id: str) -> SetupResult:
        """Set up a card the caller already holds (a PaymentMethod made by Stripe.js) for
        off-session use: a SetupIntent confirmed now, which attaches it to the customer.
        `requires_action` means the bank wants the patient to confirm (its client secret)."""
        params: SetupIntentCreateParams = {
            "customer": customer_id,
            "payment_method": payment_method_id,
            "confirm": True,
            "usage": "off_session",
            "allowed_payment_method_types": CARDS_ONLY,
        }
        with _translated("set_up_card"):
            intent = self.client.v1.setup_intents.create(
                params=params,
                options={"idempotency_key": f"setup-{customer_id}-{payment_method_id}"},
            )
        return _setup(intent)

    def set_up_bank_account(
        self, customer_id: str, payment_method_id: str, acceptance: MandateAcceptance
    ) -> SetupResult:
        """Set up a US bank account (a PaymentMethod made by Stripe.js, linked through
        Financial Connections) for later debits: a SetupIntent confirmed now with the
        patient's acceptance of the mandate, which Stripe keeps (`mandate_id`)."""
        params: SetupIntentCreateParams = {
            "customer": customer_id,
            "payment_method": payment_method_id,
            "confirm": True,
            "usage": "off_session",
            "allowed_payment_method_types": [BANK_ACCOUNT],
            "mandate_data": {"customer_acceptance": _acceptance(acceptance)},
        }
        with _translated("set_up_bank_account"):
            intent = self.client.v1.setup_intents.create(
                params=params,
                options={"idempotency_key": f"setup-{customer_id}-{payment_method_id}"},
            )
        return _setup(intent)

    def retrieve_setup_intent(self, setup_intent_id: str) -> SetupResult:
        with _translated("retrieve_setup_intent"):
            return _setup(self.client.v1.setup_intents.retrieve(setup_intent_id))

    def make_default_card(self, customer_id: str, payment_method_id: str) -> Card:
        """The customer's default card at Stripe (a card already set up), with its details."""
        params: CustomerUpdateParams = {
            "invoice_settings": {"default_payment_method": payment_method_id}
        }
        with _translated("make_default_card"):
            self.client.v1.customers.update(customer_id, params=params)
            return _card(self.client.v1.payment_methods.retrieve(payment_method_id))

    def detach_card(self, payment_method_id: str) -> None:
        """Remove a saved card from its customer at Stripe."""
        with _translated("detach_card"):
            self.client.v1.payment_methods.detach(payment_method_id)

    def list_cards(self, customer_id: str) -> list[Card]:
        params: PaymentMethodListParams = {"customer": customer_id, "type": "card"}
        with _translated("list_cards"):
            methods = self.client.v1.payment_methods.list(params=params)
        return [_card(method) for method in methods.data]

    # Payments ------------------------------------------------------------------

    def charge_card_on_file(
        self,
        *,
        payment_id: str,
        invoice_ref: str,
        amount: int,
        currency: str,
        customer_id: str,
        payment_method_id: str,
        usage: CardUsage = "unscheduled",
    ) -> Intent:
        """Charge a card set up earlier, off-session: `unscheduled` (staff, AutoPay) or an
        `installment` of a plan the patient agreed to; a decline comes back as an Intent
        with status "failed"."""
        params = _off_session(payment_id, invoice_ref, amount, currency, customer_id)
        params["payment_method"] = payment_method_id
        params["allowed_payment_method_types"] = CARDS_ONLY
        params["payment_method_options"] = {"card": {"stored_credential_usage": usage}}
        return self._create_confirmed("charge_card_on_file", params, payment_id)

    def charge_saved_card(
        self,
        *,
        payment_id: str,
        invoice_ref: str,
        amount: int,
        currency: str,
        customer_id: str,
        payment_method_id: str,
    ) -> Intent:
        """Charge a saved card while the patient is here, choosing it on our page: a bank
        that wants the patient to confirm it answers `requires_action`, which the page's
        Stripe.js takes them through; a decline comes back as an Intent with status
        "failed"."""
        params = _off_session(payment_id, invoice_ref, amount, currency, customer_id)
        del params["off_session"]  # the patient is on the page
        params["payment_method"] = payment_method_id
        params["allowed_payment_method_types"] = CARDS_ONLY
        return self._create_confirmed("charge_saved_card", params, payment_id)

    def debit_bank_account(
        self,
        *,
        payment_id: str,
        invoice_ref: str,
        amount: int,
        currency: str,
        customer_id: str,
        payment_method_id: str,
        mandate_id: str,
    ) -> Intent:
        """Debit a US bank account set up earlier, under its mandate: Stripe answers
        `processing`, and days later the outcome arrives as an event."""
        params = _off_session(payment_id, invoice_ref, amount, currency, customer_id)
        params["payment_method"] = payment_method_id
        params["allowed_payment_method_types"] = [BANK_ACCOUNT]
        params["mandate"] = mandate_id
        return self._create_confirmed("debit_bank_account", params, payment_id)

    def _create_confirmed(
        self, operation: str, params: PaymentIntentCreateParams, payment_id: str
    ) -> Intent:
        """A PaymentIntent created confirmed (the patient away, or choosing a saved card
        on our page), keyed by our payment."""
        try:
            with _translated(operation, cards_raise=False):
                intent = self.client.v1.payment_intents.create(
                    params=params, options={"idempotency_key": f"payment-{payment_id}"}
                )
        except stripe.CardError as error:
            return _declined(error, params["amount"], params["currency"], payment_id)
        return _intent(intent)

    def create_online_intent(
        self,
        *,
        payment_id: str,
        invoice_ref: str,
        amount: int,
        currency: str,
        bank_accounts: bool = False,
    ) -> Intent:
        """A PaymentIntent the patient's browser confirms with Stripe.js (its client secret):
        by card, or also from a US bank account with `bank_accounts` (US dollars only)."""
        params: PaymentIntentCreateParams = {
            "amount": amount,
            "currency": currency,
            "allowed_payment_method_types": CARDS_AND_BANKS if bank_accounts else CARDS_ONLY,
            "metadata": {"payment_id": payment_id, "invoice_ref": invoice_ref},
        }
        with _translated("create_online_intent"):
            intent = self.client.v1.payment_intents.create(
                params=params, options={"idempotency_key": f"payment-{payment_id}"}
            )
        return _intent(intent)

    def save_card_with_payment(self, intent_id: str, customer_id: str | None) -> None:
        """Have the PaymentIntent keep its card for off-session use by the customer once it
        succeeds (Stripe attaches it); `None` stops that again."""
        params: PaymentIntentUpdateParams = (
            {"customer": customer_id, "setup_future_usage": "off_session"}
            if customer_id
            else {"setup_future_usage": ""}
        )
        with _translated("save_card_with_payment"):
            self.client.v1.payment_intents.update(intent_id, params=params)

    def card_of(self, payment_method_id: str) -> Card:
        """Brand, last four and expiry of a PaymentMethod (for the receipt)."""
        with _translated("card_of"):
            return _card(self.client.v1.payment_methods.retrieve(payment_method_id))

    def retrieve_payment_intent(self, intent_id: str) -> Intent:
        with _translated("retrieve_payment_intent"):
            return _intent(self.client.v1.payment_intents.retrieve(intent_id))

    def search_payment_intent(self, payment_id: str) -> Intent | None:
        """The PaymentIntent made for our payment, found by its metadata; never creates one.

        Stripe's search index trails by up to a minute: recovery uses it only for payments
        older than the 24 h for which Stripe replays an idempotency key.
        """
        params: PaymentIntentSearchParams = {
            "query": f"metadata['payment_id']:'{payment_id}'",
            "limit": 1,
        }
        with _translated("search_payment_intent"):
            found = self.client.v1.payment_intents.search(params=params)
        return _intent(found.data[0]) if found.data else None

    def cancel_payment_intent(self, intent_id: str) -> Intent:
        """Cancel a PaymentIntent; one that can no longer be cancelled is returned as it is."""
        try:
            with _translated("cancel_payment_intent"):
                return _intent(self.client.v1.payment_intents.cancel(intent_id))
        except Unprocessable:
            return self.retrieve_payment_intent(intent_id)  # succeeded, processing or canceled

    def refund(self, *, refund_id: str, payment_intent_id: str, amount: int) -> RefundResult:
        params: RefundCreateParams = {
            "payment_intent": payment_intent_id,
            "amount": amount,
            "metadata": {"refund_id": refund_id},
        }
        with _translated("refund"):
            refund = self.client.v1.refunds.create(
                params=params, options={"idempotency_key": f"refund-{refund_id}"}
            )
        return _refund(refund)

    def list_refunds(self, payment_intent_id: str) -> list[tuple[RefundResult, str | None]]:
        """Every Refund of a PaymentIntent, each with our refund id if we made it."""
        params: RefundListParams = {"payment_intent": payment_intent_id, "limit": 100}
        with _translated("list_refunds"):
            refunds = self.client.v1.refunds.list(params=params)
            listed = list(refunds.auto_paging_iter())
        return [
            (
                _refund(refund),
                (refund.metadata.to_dict() if refund.metadata else {}).get("refund_id"),
            )
            for refund in listed
        ]

    def find_refund(self, refund_id: str, payment_intent_id: str) -> RefundResult | None:
        """Look up the Refund made for our refund row, by its metadata; never create one."""
        for result, ours in self.list_refunds(payment_intent_id):
            if ours == refund_id:
                return result
        return None

    # Finance: what Stripe moved -----------------------------------------------

    def balance_transactions(self, starting_after: str | None, limit: int = 100) -> Page:
        """One page of balance transactions, newest first."""
        params: BalanceTransactionListParams = {"limit": limit}
        if starting_after:
            params["starting_after"] = starting_after
        with _translated("balance_transactions"):
            page = self.client.v1.balance_transactions.list(params=params)
        return Page([_balance_transaction(t) for t in page.data], bool(page.has_more))

    def payouts(self, starting_after: str | None, limit: int = 100) -> Page:
        params: PayoutListParams = {"limit": limit}
        if starting_after:
            params["starting_after"] = starting_after
        with _translated("payouts"):
            page = self.client.v1.payouts.list(params=params)
        return Page([_payout(p) for p in page.data], bool(page.has_more))

    def payout_transaction_ids(self, payout_id: str) -> list[str]:
        """The balance transactions a payout carried to the bank."""
        params: BalanceTransactionListParams = {"payout": payout_id, "limit": 100}
        with _translated("payout_transaction_ids"):
            page = self.client.v1.balance_transactions.list(params=params)
            return [str(t.id) for t in page.auto_paging_iter()]

    # Webhooks ------------------------------------------------------------------

    def parse_event(self, payload: bytes, signature: str | None) -> Event:
        """Verify the signature against the raw body and parse the event; its timestamp must
        be within Stripe's 300 s tolerance either way (Stripe's check looks back only)."""
        if not _timely(signature, WEBHOOK_TOLERANCE_SECONDS):
            raise BadRequest(
                "invalid_signature",
                "The Stripe-Signature timestamp is more than 300 s from now.",
            )
        try:
            event = stripe.Webhook.construct_event(
                payload, signature, self.webhook_secret, tolerance=WEBHOOK_TOLERANCE_SECONDS
            )
        except stripe.SignatureVerificationError:
            raise BadRequest(
                "invalid_signature", "The Stripe-Signature header does not match this body."
            ) from None
        except ValueError:
            raise BadRequest("malformed_event", "The webhook body is not a Stripe event.") from None
        body = json.loads(payload)
        self._say_version(str(event.id), str(event.type), body.get("api_version"))
        return Event(
            id=str(event.id),
            type=str(event.type),
            created=int(body.get("created") or 0),
            object=body["data"]["object"],
            payload=payload.decode(),
            api_version=body.get("api_version"),
        )

    def _say_version(self, event_id: str, event_type: str, version: str | None) -> None:
        """An event rendered in another API version than ours: said once per version."""
        if not version or version == self.api_version or version in self._versions_said:
            return
        self._versions_said.add(version)
        log.warning(
            "stripe webhook %s (%s) is rendered in API version %s; this service is pinned to "
            "%s. Handled: the fields it reads are the same. Set the webhook endpoint's version "
            "to %s once the upgrade is done.",
            event_id,
            event_type,
            version,
            self.api_version,
            self.api_version,
        )


def _timely(signature: str | None, tolerance: int) -> bool:
    """A Stripe-Signature's `t=` within `tolerance` seconds of now (absent: the signature
    check itself refuses it)."""
    stamps = [part[2:] for part in (signature or "").split(",") if part.startswith("t=")]
    if not stamps:
        return True
    return stamps[0].isdigit() and abs(time.time() - int(stamps[0])) <= tolerance


@contextmanager
def _translated(operation: str, cards_raise: bool = True) -> Iterator[None]:
    """Time the call to Stripe for the metrics, and turn its failures into our typed errors."""
    started = time.perf_counter()
    error_code = None
    try:
        with _service_errors(cards_raise):
            yield
    except ServiceError as error:
        error_code = error.code
        raise
    except stripe.CardError as error:  # a decline the caller turns into an outcome
        error_code = error.code or "card_declined"
        raise
    finally:
        metrics.stripe_call(operation, time.perf_counter() - started, error_code)


@contextmanager
def _service_errors(cards_raise: bool) -> Iterator[None]:
    """Stripe's failures as our typed errors with stable codes."""
    try:
        yield
    except stripe.CardError as error:
        if not cards_raise:
            raise
        raise PaymentRequired(error.code or "card_declined", _message(error)) from None
    except stripe.IdempotencyError:
        # The first request with this key is still running at Stripe: its outcome is open.
        raise _unknown(
            ServiceUnavailable(
                "stripe_request_in_progress", "Stripe is still processing this request."
            )
        ) from None
    except stripe.RateLimitError:
        raise ServiceUnavailable(
            "stripe_rate_limited", "Stripe is rate-limiting us; retry in a few seconds."
        ) from None
    except stripe.APIConnectionError:
        raise _unknown(
            ServiceUnavailable(
                "stripe_unavailable", "Stripe could not be reached in time; retry later."
            )
        ) from None
    except stripe.InvalidRequestError as error:
        raise Unprocessable("stripe_invalid_request", _message(error)) from None
    except stripe.AuthenticationError:
        raise BadGateway("stripe_misconfigured", "Stripe refused our API key.") from None
    except stripe.StripeError as error:
        bad_gateway = BadGateway(
            "stripe_error", f"Stripe answered with an error: {_message(error)}"
        )
        # A 5xx (or an answer we could not read) may come after Stripe acted; a 4xx never does.
        raise _unknown(bad_gateway) if (error.http_status or 500) >= 500 else bad_gateway from None


def _unknown(error: ServiceError) -> ServiceError:
    error.outcome_unknown = True
    return error


def _message(error: stripe.StripeError) -> str:
    return str(error.user_message or "The payment provider refused the request.")


def _id_of(value: Any) -> str | None:
    if value is None:
        return None
    return value if isinstance(value, str) else str(value.id)


def _metadata(obj: Any) -> dict[str, Any]:
    metadata = getattr(obj, "metadata", None)
    return metadata.to_dict() if metadata else {}


def _refund(refund: Any) -> RefundResult:
    return RefundResult(
        id=str(refund.id),
        status=str(refund.status),
        amount=int(refund.amount),
        charge_id=_id_of(getattr(refund, "charge", None)),
        failure_reason=getattr(refund, "failure_reason", None),
    )


def _when(value: Any) -> datetime | None:
    return datetime.fromtimestamp(int(value), UTC) if value else None


def _balance_transaction(txn: Any) -> BalanceTransaction:
    return BalanceTransaction(
        id=str(txn.id),
        type=str(txn.type),
        source=object_id(getattr(txn, "source", None)),
        amount=int(txn.amount),
        fee=int(getattr(txn, "fee", 0) or 0),
        net=int(getattr(txn, "net", txn.amount)),
        currency=str(txn.currency),
        created=datetime.fromtimestamp(int(txn.created), UTC),
        available_on=_when(getattr(txn, "available_on", None)),
    )


def _payout(payout: Any) -> Payout:
    return Payout(
        id=str(payout.id),
        amount=int(payout.amount),
        currency=str(payout.currency),
        status=str(payout.status),
        arrival_date=_when(getattr(payout, "arrival_date", None)),
        created=datetime.fromtimestamp(int(payout.created), UTC),
    )


def _setup(intent: Any) -> SetupResult:
    return SetupResult(
        id=str(intent.id),
        status=str(intent.status),
        customer_id=object_id(getattr(intent, "customer", None)),
        payment_method_id=object_id(getattr(intent, "payment_method", None)),
        client_secret=str(intent.client_secret),
        mandate_id=object_id(getattr(intent, "mandate", None)),
    )


def _off_session(
    payment_id: str, invoice_ref: str, amount: int, currency: str, customer_id: str
) -> PaymentIntentCreateParams:
    """What every PaymentIntent confirmed while the patient is away says."""
    return {
        "amount": amount,
        "currency": currency,
        "customer": customer_id,
        "confirm": True,
        "off_session": True,
        "metadata": {"payment_id": payment_id, "invoice_ref": invoice_ref},
    }


def _acceptance(acceptance: MandateAcceptance) -> Any:
    """Stripe's `customer_acceptance` of a mandate."""
    accepted_at = int(acceptance.accepted_at.timestamp()) if acceptance.accepted_at else None
    if acceptance.online:
        return {
            "type": "online",
            **({"accepted_at": accepted_at} if accepted_at else {}),
            "online": {
                "ip_address": acceptance.ip_address or "",
                "user_agent": acceptance.user_agent or "",
            },
        }
    return {
        "type": "offline",
        "offline": {},
        **({"accepted_at": accepted_at} if accepted_at else {}),
    }


def _card(method: Any) -> Card:
    if str(getattr(method, "type", "card")) == BANK_ACCOUNT:
        bank = method.us_bank_account
        return Card(
            id=str(method.id),
            brand=str(bank.bank_name or "Bank account")[:64],
            last4=str(bank.last4),
            exp_month=0,
            exp_year=0,
            kind=BANK_ACCOUNT,
        )
    card = method.card
    return Card(
        id=str(method.id),
        brand=str(card.brand),
        last4=str(card.last4),
        exp_month=int(card.exp_month),
        exp_year=int(card.exp_year),
    )


def _intent(intent: Any) -> Intent:
    error = getattr(intent, "last_payment_error", None)
    metadata = intent.metadata.to_dict() if getattr(intent, "metadata", None) else {}
    return Intent(
        id=str(intent.id),
        status=str(intent.status),
        amount=int(intent.amount),
        currency=str(intent.currency),
        charge_id=_id_of(getattr(intent, "latest_charge", None)),
        amount_received=int(getattr(intent, "amount_received", 0) or 0),
        client_secret=getattr(intent, "client_secret", None),
        failure_code=getattr(error, "code", None) if error else None,
        failure_message=getattr(error, "message", None) if error else None,
        metadata={str(k): str(v) for k, v in metadata.items()},
        payment_method_id=object_id(getattr(intent, "payment_method", None)),
        decline_code=getattr(error, "decline_code", None) if error else None,
    )


def _declined(error: stripe.CardError, amount: int, currency: str, payment_id: str) -> Intent:
    stripe_error = getattr(error, "error", None)
    intent = getattr(stripe_error, "payment_intent", None)
    return Intent(
        id=_id_of(intent),
        status="failed",
        amount=amount,
        currency=currency,
        failure_code=getattr(error, "code", None) or "card_declined",
        failure_message=_message(error),
        metadata={"payment_id": payment_id},
        decline_code=getattr(stripe_error, "decline_code", None),
    )


# Reading the objects inside webhook events -------------------------------------


@dataclass(frozen=True, slots=True)
class Dispute:
    id: str
    amount: int
    charge_id: str | None
    payment_intent_id: str | None
    reason: str | None = None


def intent_from_event(obj: dict[str, Any]) -> Intent:
    """The PaymentIntent inside a payment_intent.* event."""
    error = obj.get("last_payment_error") or {}
    return Intent(
        id=obj.get("id"),
        status=str(obj.get("status")),
        amount=int(obj.get("amount") or 0),
        currency=str(obj.get("currency")),
        charge_id=object_id(obj.get("latest_charge")),
        amount_received=int(obj.get("amount_received") or 0),
        client_secret=obj.get("client_secret"),
        failure_code=error.get("code"),
        failure_message=error.get("message"),
        metadata={str(k): str(v) for k, v in (obj.get("metadata") or {}).items()},
        payment_method_id=object_id(obj.get("payment_method")),
        decline_code=error.get("decline_code"),
    )


def refunds_from_charge(obj: dict[str, Any]) -> list[tuple[RefundResult, str | None]] | None:
    """The refunds listed in a charge.refunded event, each with our refund id if it has one.

    None when the event does not list them all: API versions since 2022-11-15 leave
    `refunds` out of the Charge, so they must be fetched.
    """
    refunds = obj.get("refunds")
    if not isinstance(refunds, dict) or refunds.get("has_more"):
        return None
    listed = refunds.get("data") or []
    return [refund_from_event({"charge": obj.get("id"), **refund}) for refund in listed]


def refund_from_event(obj: dict[str, Any]) -> tuple[RefundResult, str | None]:
    """A Refund as an event renders it (`charge.refund.updated`, `refund.updated`,
    `refund.failed`, or listed in a Charge), with our refund id if it has one."""
    return (
        RefundResult(
            id=str(obj["id"]),
            status=str(obj.get("status")),
            amount=int(obj.get("amount") or 0),
            charge_id=object_id(obj.get("charge")),
            failure_reason=obj.get("failure_reason") or None,
        ),
        (obj.get("metadata") or {}).get("refund_id"),
    )


def dispute_from_event(obj: dict[str, Any]) -> Dispute:
    return Dispute(
        id=str(obj.get("id")),
        amount=int(obj.get("amount") or 0),
        charge_id=object_id(obj.get("charge")),
        payment_intent_id=object_id(obj.get("payment_intent")),
        reason=obj.get("reason"),
    )


def object_id(value: Any) -> str | None:
    """The id of an expanded object or of a plain id field."""
    if isinstance(value, dict):
        return str(value.get("id"))
    return str(value) if value else None
