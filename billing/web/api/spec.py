"""The OpenAPI document tells the truth, completely enough to generate a typed client from.

Errors: flask-smorest documents them as its own `{code, status, message}` under a catch-all
`default` response. Here the catch-all goes (so a status the document does not list is a
bug a fuzzer can find), and each status's shared response says application/problem+json
(RFC 9457). Names: each operation has an id that reads as a function (`createQuote`), and
the ids and closed sets of schemas/types.py are components every schema refers to.
"""

from __future__ import annotations

import http
from collections.abc import Callable
from typing import Any, TypeVar

from apispec import BasePlugin
from flask_smorest import Api
from flask_smorest.utils import prepare_response

from schemas.problem import ProblemSchema
from schemas.types import TYPES

F = TypeVar("F", bound=Callable[..., Any])

PROBLEM_JSON = "application/problem+json"

RETRY_AFTER = {
    "Retry-After": {
        "description": "Seconds to wait before trying again.",
        "schema": {"type": "integer", "minimum": 0},
    }
}

# What every operation behind an API key can answer besides its own outcomes: a malformed
# request (a NUL character in the query), no or a wrong key, a key without the scope, too
# many requests, a fault of ours (500 internal_error, as problem+json like every error),
# the database unreachable.
BEHIND_A_KEY = (400, 401, 403, 429, 500, 503)
# Operations that read a JSON body: malformed JSON or a bad Idempotency-Key (400), a
# body too large (413) or not JSON (415), a body that does not validate (422).
WITH_A_BODY = (400, 413, 415, 422)
# Operations that call Stripe: declined (402), refused by Stripe (422), Stripe failing
# or misconfigured (502), Stripe unreachable or its answer unknown (503).
CALLS_STRIPE = (402, 422, 502, 503)


def link(path: str, method: str, **values: str) -> dict[str, Any]:
    """An OpenAPI link to the operation at `path`: "$response.body#/id" fills a parameter,
    "body:<field>" a field of the request body. Clients and fuzzers follow them from one
    step of the walk-through (quote, invoice, payment, refund) to the next."""
    parameters = {k: v for k, v in values.items() if not v.startswith("body:")}
    body = {k: v[len("body:") :] for k, v in values.items() if v.startswith("body:")}
    result: dict[str, Any] = {"operationId": OPERATION_IDS[(path, method)]}
    if parameters:
        result["parameters"] = parameters
    if body:
        result["requestBody"] = body
    return result


# Each operation's id: what a generated client calls the function (create_quote).
OPERATION_IDS: dict[tuple[str, str], str] = {
    ("/v1/catalog", "get"): "getCatalog",
    ("/v1/catalog/prices", "post"): "createPriceVersion",
    ("/v1/catalog/promotions", "post"): "createPromotion",
    ("/v1/catalog/promotions", "get"): "listPromotions",
    ("/v1/catalog/packages", "post"): "createPackage",
    ("/v1/catalog/packages", "get"): "listPackages",
    ("/v1/patients/{patient_id}/packages", "post"): "sellPackage",
    ("/v1/catalog/memberships", "post"): "createMembershipPlan",
    ("/v1/catalog/memberships", "get"): "listMembershipPlans",
    ("/v1/patients/{patient_id}/memberships", "post"): "joinMembership",
    ("/v1/patients/{patient_id}/memberships", "get"): "listMemberships",
    ("/v1/memberships/{membership_id}", "get"): "getMembership",
    ("/v1/memberships/{membership_id}/cancel", "post"): "cancelMembership",
    ("/v1/memberships/{membership_id}/pause", "post"): "pauseMembership",
    ("/v1/patients/{patient_id}/credits", "get"): "getPatientCredits",
    ("/v1/patients/{patient_id}/packages/{package_id}/refunds", "post"): "refundPackageCredits",
    ("/v1/quotes", "post"): "createQuote",
    ("/v1/quotes/{quote_id}", "get"): "getQuote",
    ("/v1/invoices", "post"): "createInvoices",
    ("/v1/invoices", "get"): "listInvoices",
    ("/v1/invoices/{invoice_id}", "get"): "getInvoice",
    ("/v1/invoices/{invoice_id}/receipt.pdf", "get"): "getReceipt",
    ("/v1/invoices/{invoice_id}/void", "post"): "voidInvoice",
    ("/v1/invoices/{invoice_id}/plan", "post"): "createPaymentPlan",
    ("/v1/patients/{patient_id}/autopay", "put"): "setAutopay",
    ("/v1/patients/{patient_id}/autopay", "get"): "getAutopay",
    ("/v1/patients/{patient_id}/portal-link", "post"): "sendPortalLink",
    ("/v1/patients/{patient_id}/profile", "get"): "getPatientProfile",
    ("/v1/patients/{patient_id}/profile", "put"): "setPatientProfile",
    ("/v1/catalog/providers", "get"): "listProviders",
    ("/v1/catalog/providers", "post"): "addProvider",
    ("/v1/invoices/{invoice_id}/superbill", "get"): "getSuperbill",
    ("/v1/invoices/{invoice_id}/superbill.pdf", "get"): "getSuperbillPdf",
    ("/v1/invoices/{invoice_id}/claim", "get"): "getClaim",
    ("/v1/invoices/{invoice_id}/claim.pdf", "get"): "getClaimPdf",
    ("/v1/credit-refund-requests", "get"): "listCreditRefundRequests",
    ("/v1/credit-refund-requests/{request_id}/decline", "post"): "declineCreditRefundRequest",
    ("/v1/invoices/{invoice_id}/plan", "delete"): "cancelPaymentPlan",
    ("/v1/invoices/{invoice_id}/payments", "post"): "payInvoice",
    ("/v1/invoices/{invoice_id}/payments/{payment_id}/reversals", "post"): "reversePayment",
    ("/v1/invoices/{invoice_id}/refunds", "post"): "refundInvoice",
    ("/v1/invoices/{invoice_id}/credit-notes", "post"): "createCreditNote",
    ("/v1/invoices/{invoice_id}/write-offs", "post"): "writeOffInvoice",
    ("/v1/patients/{patient_id}/account", "get"): "getPatientAccount",
    ("/v1/patients/{patient_id}/account/refunds", "post"): "refundPatientCredit",
    ("/v1/patients/{patient_id}/account/credits", "post"): "grantGoodwillCredit",
    ("/v1/gift-cards", "post"): "sellGiftCard",
    ("/v1/gift-cards/{code}", "get"): "getGiftCard",
    ("/v1/bookings/{booking_id}", "get"): "getBooking",
    ("/v1/quotes/{quote_id}/estimate", "get"): "getEstimate",
    ("/v1/quotes/{quote_id}/estimate", "post"): "issueEstimate",
    ("/v1/reports/estimate-variance", "get"): "getEstimateVariance",
    ("/v1/invoices/{invoice_id}/bill-disputes", "post"): "disputeBill",
    ("/v1/bookings/{booking_id}/attendance", "post"): "markAttendance",
    ("/v1/bookings/{booking_id}/cancellations", "post"): "cancelBooking",
    ("/v1/patients/{patient_id}/setup-intents", "post"): "createSetupIntent",
    ("/v1/patients/{patient_id}/payment-methods", "post"): "saveCard",
    ("/v1/patients/{patient_id}/payment-methods", "get"): "listCards",
    ("/v1/patients/{patient_id}/payment-methods/{payment_method_id}", "delete"): "removeCard",
    ("/v1/patients/{patient_id}/bank-accounts", "post"): "saveBankAccount",
    ("/v1/reports/reconciliation", "get"): "getReconciliation",
    ("/v1/reports/aging", "get"): "getAging",
    ("/v1/reports/refunds-disputes", "get"): "getRefundsAndDisputes",
    ("/v1/reports/dunning", "get"): "getDunningReport",
    ("/v1/reports/month-end", "get"): "getMonthEnd",
    ("/v1/reports/journal", "get"): "getJournal",
    ("/v1/closed-months", "post"): "closeMonth",
    ("/v1/audit-events", "get"): "listAuditEvents",
    ("/v1/events", "get"): "listEvents",
    ("/v1/events/{event_id}", "get"): "getEvent",
    ("/v1/events/{event_id}/redeliver", "post"): "redeliverEvent",
    ("/v1/webhook-endpoints", "post"): "createWebhookEndpoint",
    ("/v1/webhook-endpoints", "get"): "listWebhookEndpoints",
    ("/v1/webhook-endpoints/{endpoint_id}", "get"): "getWebhookEndpoint",
    ("/v1/webhook-endpoints/{endpoint_id}", "delete"): "deleteWebhookEndpoint",
    ("/v1/webhook-endpoints/{endpoint_id}/deliveries", "get"): "listWebhookDeliveries",
}

# How apispec says "or null" beside a reference in OpenAPI 3.0.
NULL_OBJECT = {"type": "object", "nullable": True}


def only_null(type_: str) -> dict[str, Any]:
    """The schema of null alone in OpenAPI 3.0.3, where `nullable` needs a `type` beside it
    to mean anything: the "or null" branch of a nullable reference."""
    return {"type": type_, "nullable": True, "enum": [None]}


# What a property says of its one use, beside the type it refers to.
USE_SITE = ("description", "readOnly", "nullable")

# Path parameters are typed by their name.
PATH_TYPES = {
    "quote_id": "QuoteId",
    "invoice_id": "InvoiceId",
    "patient_id": "PatientId",
    "booking_id": "BookingId",
    "payment_method_id": "PaymentMethodId",
    "payment_id": "PaymentId",
    "event_id": "EventId",
    "endpoint_id": "WebhookEndpointId",
}

# The walk-through as OpenAPI links: a quote is read and invoiced, an invoice is read,
# paid, refunded, voided and its receipt fetched, a payment's invoice refunded.
INVOICE_ID = "$response.body#/data/0/id"
LINKS: dict[tuple[str, str, str], dict[str, Any]] = {
    ("/v1/quotes", "post", "201"): {
        "GetQuote": link("/v1/quotes/{quote_id}", "get", quote_id="$response.body#/id"),
        "GetEstimate": link("/v1/quotes/{quote_id}/estimate", "get", quote_id="$response.body#/id"),
        "InvoiceQuote": link("/v1/invoices", "post", quote_id="body:$response.body#/id"),
    },
    ("/v1/invoices", "post", "201"): {
        "GetInvoice": link("/v1/invoices/{invoice_id}", "get", invoice_id=INVOICE_ID),
        "PayInvoice": link("/v1/invoices/{invoice_id}/payments", "post", invoice_id=INVOICE_ID),
        "VoidInvoice": link("/v1/invoices/{invoice_id}/void", "post", invoice_id=INVOICE_ID),
        "ListPatientInvoices": link(
            "/v1/invoices", "get", patient_id="$response.body#/data/0/patient_id"
        ),
        "SaveCard": link(
            "/v1/patients/{patient_id}/payment-methods",
            "post",
            patient_id="$response.body#/data/0/patient_id",
        ),
        "GetBooking": link(
            "/v1/bookings/{booking_id}", "get", booking_id="$response.body#/data/0/booking_id"
        ),
        "CancelBooking": link(
            "/v1/bookings/{booking_id}/cancellations",
            "post",
            booking_id="$response.body#/data/0/booking_id",
        ),
    },
    ("/v1/invoices/{invoice_id}/payments", "post", "201"): {
        "ReversePayment": link(
            "/v1/invoices/{invoice_id}/payments/{payment_id}/reversals",
            "post",
            invoice_id="$response.body#/invoice_id",
            payment_id="$response.body#/id",
        ),
        "RefundInvoice": link(
            "/v1/invoices/{invoice_id}/refunds", "post", invoice_id="$response.body#/invoice_id"
        ),
        "GetReceipt": link(
            "/v1/invoices/{invoice_id}/receipt.pdf",
            "get",
            invoice_id="$response.body#/invoice_id",
        ),
    },
    ("/v1/invoices/{invoice_id}/refunds", "post", "201"): {
        "GetRefundedInvoice": link(
            "/v1/invoices/{invoice_id}", "get", invoice_id="$response.body#/invoice_id"
        ),
    },
}


class OperationsPlugin(BasePlugin):
    """Names each operation (OPERATION_IDS) and adds LINKS to its success responses."""

    def operation_helper(
        self, path: str | None = None, operations: dict[str, Any] | None = None, **_: Any
    ) -> None:
        for method, operation in (operations or {}).items():
            name = OPERATION_IDS.get((path or "", method))
            if name is None:
                raise KeyError(f"{method.upper()} {path} needs its id in OPERATION_IDS")
            operation["operationId"] = name
            for status, response in operation.get("responses", {}).items():
                links = LINKS.get((path or "", method, str(status)))
                if links and isinstance(response, dict):
                    response["links"] = links


class TypesPlugin(BasePlugin):
    """Describes each type of schemas/types.py once, as a component, and makes every field
    and parameter of that type refer to it; a nullable object is `nullable` with `allOf`."""

    def init_spec(self, spec: Any) -> None:
        super().init_spec(spec)
        self.spec = spec
        for name, definition in TYPES.items():
            spec.components.schema(name, definition, lazy=True)

    def schema_helper(self, name: str, definition: dict[str, Any], **_: Any) -> None:
        for key, value in definition.get("properties", {}).items():
            definition["properties"][key] = self._refer(_wide(value))

    def path_helper(
        self,
        path: str | None = None,
        operations: dict[str, Any] | None = None,
        parameters: list[dict[str, Any]] | None = None,
        **_: Any,
    ) -> None:
        for parameter in parameters or []:
            if parameter.get("in") == "path" and parameter["name"] in PATH_TYPES:
                parameter["schema"] = self.spec.components.get_ref(
                    "schema", PATH_TYPES[parameter["name"]]
                )

    def operation_helper(
        self, path: str | None = None, operations: dict[str, Any] | None = None, **_: Any
    ) -> None:
        for operation in (operations or {}).values():
            for parameter in operation.get("parameters", []):
                if isinstance(parameter, dict) and isinstance(parameter.get("schema"), dict):
                    parameter["schema"] = self._refer(_wide(parameter["schema"]))

    def _refer(self, schema: dict[str, Any]) -> dict[str, Any]:
        """`schema` with its type as a reference, keeping what it says of this one use."""
        for key in ("items", "additionalProperties"):
            if isinstance(schema.get(key), dict):
                schema[key] = self._refer(schema[key])
        any_of = schema.get("anyOf", [])
        if len(any_of) == 2 and NULL_OBJECT in any_of:
            # apispec's nullable reference (OpenAPI 3.0), which generators turn into a
            # second, empty model: the other branch is null itself.
            refs = [s for s in any_of if s != NULL_OBJECT]
            return {**schema, "anyOf": [*refs, only_null("object")]}
        name = schema.get("x-type")
        if name is None:
            return schema
        ref = self.spec.components.get_ref("schema", name)
        use: dict[str, Any] = {k: schema[k] for k in USE_SITE if k in schema}
        if schema.get("x-open-set"):
            nullable = [only_null(TYPES[name]["type"])] if use.pop("nullable", False) else []
            return {**use, "anyOf": [ref, {"type": TYPES[name]["type"]}, *nullable]}
        if use.pop("nullable", False):
            return {**use, "anyOf": [ref, only_null(TYPES[name]["type"])]}
        return {**use, "allOf": [ref]} if use else ref


def _wide(schema: dict[str, Any]) -> dict[str, Any]:
    """Money and counts are 64-bit: without a format, Java, Kotlin and C# generators make
    an `integer` 32-bit, and a year of cents overflows it."""
    if schema.get("type") == "integer" and "format" not in schema:
        schema["format"] = "int64"
    for key in ("items", "additionalProperties"):
        if isinstance(schema.get(key), dict):
            _wide(schema[key])
    return schema


class BillingApi(Api):  # type: ignore[misc]  # flask-smorest ships no type hints
    ERROR_SCHEMA = ProblemSchema
    DEFAULT_ERROR_RESPONSE_NAME = None  # no catch-all: each operation lists its statuses

    def __init__(self, app: Any) -> None:
        app.config.setdefault(
            "API_SPEC_OPTIONS",
            {
                "servers": [{"url": "/", "description": "this service, where it answers"}],
                "info": {
                    "description": "The clinic's pricing and billing service: quotes, "
                    "invoices, payments through Stripe, refunds, reports and events. "
                    "Every error is application/problem+json with a stable `code`."
                },
            },
        )
        super().__init__(app, spec_kwargs={"extra_plugins": [OperationsPlugin(), TypesPlugin()]})

    def _register_pagination_header(self) -> None:
        """Lists here are cursors in the body: no flask-smorest pagination header."""

    def _register_responses(self) -> None:
        for status in http.HTTPStatus:
            if status < 400:
                continue
            response: dict[str, Any] = {"description": status.phrase, "schema": ProblemSchema}
            if status in (429, 503):
                response["headers"] = RETRY_AFTER
            prepare_response(response, self.spec, PROBLEM_JSON)
            self.spec.components.response(status.name, response, lazy=True)


def problems(blueprint: Any, *statuses: int) -> Callable[[F], F]:
    """Document the problem+json statuses an operation answers (besides BEHIND_A_KEY)."""
    every = sorted(set(BEHIND_A_KEY) | set(statuses))

    def decorate(view: F) -> F:
        # flask-smorest's alt_response wraps the view once per status, only to carry the
        # documentation: keep what they document, not the calls (nine on every request).
        documented: Any = view
        for status in every:
            documented = blueprint.alt_response(status, response=http.HTTPStatus(status).name)(
                documented
            )
        view.__dict__["_apidoc"] = documented._apidoc
        return view

    return decorate
