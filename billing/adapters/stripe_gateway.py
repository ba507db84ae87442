"""The one module that talks to Stripe. Everything else sees plain values and typed errors.

Nothing clinical is ever sent: only opaque ids (`pt_...`, `in_...`, `pay_...`) in
metadata. Every call that creates something carries an idempotency key derived from
our own row, so a retry never creates a second object at Stripe.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import stripe

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


@dataclass(frozen=True, slots=True)
class Intent:
    """What we keep of a PaymentIntent."""

    id: str | None
    status: str  # Stripe's status, or "failed" when the charge was declined
    amount: int
    currency: str
    charge_id: str | None = None
    client_secret: str | None = None
    failure_code: str | None = None
    failure_message: str | None = None
    metadata: dict[str, str] = field(default_factory=dict)
    payment_method_id: str | None = None


@dataclass(frozen=True, slots=True)
class RefundResult:
    id: str
    status: str
    amount: int
    charge_id: str | None


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


class StripeGateway:
    """A StripeClient built once per app, with explicit timeouts and network retries."""

    def __init__(
        self,
        secret_key: str,
        webhook_secret: str,
        api_base: str | None = None,
        timeout_seconds: float = 10.0,
        max_network_retries: int = 2,
    ) -> None:
        options: dict[str, Any] = {}
        if api_base:
            options["base_addresses"] = {"api": api_base.rstrip("/")}
        self.client = stripe.StripeClient(
            secret_key,
            max_network_retries=max_network_retries,
            http_client=stripe.RequestsClient(timeout=timeout_seconds),
            **options,
        )
        self.webhook_secret = webhook_secret

    # Customers and cards -------------------------------------------------------

    def create_customer(self, patient_ref: str) -> str:
        """A Customer that knows only our opaque patient ref."""
        with _translated("create_customer"):
            customer = self.client.v1.customers.create(
                params={"metadata": {"patient_ref": patient_ref}},
                options={"idempotency_key": f"customer-{patient_ref}"},
            )
        return str(customer.id)

    def create_setup_intent(self, customer_id: str) -> str:
        """A SetupIntent for the patient's browser; returns its client secret."""
        with _translated("create_setup_intent"):
            intent = self.client.v1.setup_intents.create(
                # The stand-in needs the method types; Stripe accepts them too.
                params={"customer": customer_id, "payment_method_types": ["card"]}  # type: ignore[arg-type]
            )
        return str(intent.client_secret)

    def attach_card(self, payment_method_id: str, customer_id: str) -> Card:
        """Attach a PaymentMethod and make it the customer's default card."""
        with _translated("attach_card"):
            method = self.client.v1.payment_methods.attach(
                payment_method_id, params={"customer": customer_id}
            )
            self.client.v1.customers.update(
                customer_id, params={"invoice_settings": {"default_payment_method": method.id}}
            )
        return _card(method)

    def detach_card(self, payment_method_id: str) -> None:
        """Remove a saved card from its customer at Stripe."""
        with _translated("detach_card"):
            self.client.v1.payment_methods.detach(payment_method_id)

    def list_cards(self, customer_id: str) -> list[Card]:
        with _translated("list_cards"):
            methods = self.client.v1.payment_methods.list(
                params={"customer": customer_id, "type": "card"}
            )
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
    ) -> Intent:
        """Charge off-session; a decline comes back as an Intent with status "failed"."""
        try:
            with _translated("charge_card_on_file", cards_raise=False):
                intent = self.client.v1.payment_intents.create(
                    params={
                        "amount": amount,
                        "currency": currency,
                        "customer": customer_id,
                        "payment_method": payment_method_id,
                        "payment_method_types": ["card"],  # type: ignore[typeddict-unknown-key]
                        "confirm": True,
                        "off_session": True,
                        "metadata": {"payment_id": payment_id, "invoice_ref": invoice_ref},
                    },
                    options={"idempotency_key": f"payment-{payment_id}"},
                )
        except stripe.CardError as error:
            return _declined(error, amount, currency, payment_id)
        return _intent(intent)

    def create_online_intent(
        self, *, payment_id: str, invoice_ref: str, amount: int, currency: str
    ) -> Intent:
        """A PaymentIntent the patient's browser confirms with Stripe.js (its client secret)."""
        with _translated("create_online_intent"):
            intent = self.client.v1.payment_intents.create(
                params={
                    "amount": amount,
                    "currency": currency,
                    "payment_method_types": ["card"],  # type: ignore[typeddict-unknown-key]
                    "metadata": {"payment_id": payment_id, "invoice_ref": invoice_ref},
                },
                options={"idempotency_key": f"payment-{payment_id}"},
            )
        return _intent(intent)

    def save_card_with_payment(self, intent_id: str, customer_id: str | None) -> None:
        """Have the PaymentIntent keep its card for off-session use by the customer once it
        succeeds (Stripe attaches it); `None` stops that again."""
        params: dict[str, Any] = (
            {"customer": customer_id, "setup_future_usage": "off_session"}
            if customer_id
            else {"setup_future_usage": ""}
        )
        with _translated("save_card_with_payment"):
            self.client.v1.payment_intents.update(intent_id, params=params)  # type: ignore[arg-type]

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
        with _translated("search_payment_intent"):
            found = self.client.v1.payment_intents.search(
                params={"query": f"metadata['payment_id']:'{payment_id}'", "limit": 1}
            )
        return _intent(found.data[0]) if found.data else None

    def cancel_payment_intent(self, intent_id: str) -> Intent:
        """Cancel a PaymentIntent; one that can no longer be cancelled is returned as it is."""
        try:
            with _translated("cancel_payment_intent"):
                return _intent(self.client.v1.payment_intents.cancel(intent_id))
        except Unprocessable:
            return self.retrieve_payment_intent(intent_id)  # succeeded, processing or canceled

    def refund(self, *, refund_id: str, payment_intent_id: str, amount: int) -> RefundResult:
        with _translated("refund"):
            refund = self.client.v1.refunds.create(
                params={
                    "payment_intent": payment_intent_id,
                    "amount": amount,
                    "metadata": {"refund_id": refund_id},
                },
                options={"idempotency_key": f"refund-{refund_id}"},
            )
        return _refund(refund)

    def list_refunds(self, payment_intent_id: str) -> list[tuple[RefundResult, str | None]]:
        """Every Refund of a PaymentIntent, each with our refund id if we made it."""
        with _translated("list_refunds"):
            refunds = self.client.v1.refunds.list(
                params={"payment_intent": payment_intent_id, "limit": 100}
            )
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
        params: dict[str, Any] = {"limit": limit}
        if starting_after:
            params["starting_after"] = starting_after
        with _translated("balance_transactions"):
            page = self.client.v1.balance_transactions.list(params=params)  # type: ignore[arg-type]
        return Page([_balance_transaction(t) for t in page.data], bool(page.has_more))

    def payouts(self, starting_after: str | None, limit: int = 100) -> Page:
        params: dict[str, Any] = {"limit": limit}
        if starting_after:
            params["starting_after"] = starting_after
        with _translated("payouts"):
            page = self.client.v1.payouts.list(params=params)  # type: ignore[arg-type]
        return Page([_payout(p) for p in page.data], bool(page.has_more))

    def payout_transaction_ids(self, payout_id: str) -> list[str]:
        """The balance transactions a payout carried to the bank."""
        with _translated("payout_transaction_ids"):
            page = self.client.v1.balance_transactions.list(
                params={"payout": payout_id, "limit": 100}
            )
            return [str(t.id) for t in page.auto_paging_iter()]

    # Webhooks ------------------------------------------------------------------

    def parse_event(self, payload: bytes, signature: str | None) -> Event:
        """Verify the signature against the raw body (300 s tolerance) and parse the event."""
        try:
            event = stripe.Webhook.construct_event(
                payload, signature, self.webhook_secret, tolerance=300
            )
        except stripe.SignatureVerificationError:
            raise BadRequest(
                "invalid_signature", "The Stripe-Signature header does not match this body."
            ) from None
        except ValueError:
            raise BadRequest("malformed_event", "The webhook body is not a Stripe event.") from None
        body = json.loads(payload)
        return Event(
            id=str(event.id),
            type=str(event.type),
            created=int(body.get("created") or 0),
            object=body["data"]["object"],
            payload=payload.decode(),
        )


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


def _card(method: Any) -> Card:
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
        client_secret=getattr(intent, "client_secret", None),
        failure_code=getattr(error, "code", None) if error else None,
        failure_message=getattr(error, "message", None) if error else None,
        metadata={str(k): str(v) for k, v in metadata.items()},
        payment_method_id=object_id(getattr(intent, "payment_method", None)),
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
    )


# Reading the objects inside webhook events -------------------------------------


@dataclass(frozen=True, slots=True)
class Dispute:
    id: str
    amount: int
    charge_id: str | None
    payment_intent_id: str | None


def intent_from_event(obj: dict[str, Any]) -> Intent:
    """The PaymentIntent inside a payment_intent.* event."""
    error = obj.get("last_payment_error") or {}
    return Intent(
        id=obj.get("id"),
        status=str(obj.get("status")),
        amount=int(obj.get("amount") or 0),
        currency=str(obj.get("currency")),
        charge_id=object_id(obj.get("latest_charge")),
        client_secret=obj.get("client_secret"),
        failure_code=error.get("code"),
        failure_message=error.get("message"),
        metadata={str(k): str(v) for k, v in (obj.get("metadata") or {}).items()},
        payment_method_id=object_id(obj.get("payment_method")),
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
    return [
        (
            RefundResult(
                id=str(refund["id"]),
                status=str(refund.get("status")),
                amount=int(refund.get("amount") or 0),
                charge_id=str(obj.get("id")),
            ),
            (refund.get("metadata") or {}).get("refund_id"),
        )
        for refund in listed
    ]


def dispute_from_event(obj: dict[str, Any]) -> Dispute:
    return Dispute(
        id=str(obj.get("id")),
        amount=int(obj.get("amount") or 0),
        charge_id=object_id(obj.get("charge")),
        payment_intent_id=object_id(obj.get("payment_intent")),
    )


def object_id(value: Any) -> str | None:
    """The id of an expanded object or of a plain id field."""
    if isinstance(value, dict):
        return str(value.get("id"))
    return str(value) if value else None
