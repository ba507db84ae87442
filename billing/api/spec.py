"""The OpenAPI document tells the truth about errors: every failure is
application/problem+json (RFC 9457), and each operation lists the statuses it can answer.

flask-smorest documents errors as its own `{code, status, message}` under a catch-all
`default` response. Here the catch-all goes (so a status the document does not list is a
bug a fuzzer can find), and each status's shared response says problem+json.
"""

from __future__ import annotations

import http
from collections.abc import Callable
from typing import Any, TypeVar

from apispec import BasePlugin
from flask_smorest import Api
from flask_smorest.utils import prepare_response

from schemas.problem import ProblemSchema

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
# many requests, the database unreachable.
BEHIND_A_KEY = (400, 401, 403, 429, 503)
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
    pointer = path.replace("~", "~0").replace("/", "~1")
    parameters = {k: v for k, v in values.items() if not v.startswith("body:")}
    body = {k: v[len("body:") :] for k, v in values.items() if v.startswith("body:")}
    result: dict[str, Any] = {"operationRef": f"#/paths/{pointer}/{method}"}
    if parameters:
        result["parameters"] = parameters
    if body:
        result["requestBody"] = body
    return result


# The walk-through as OpenAPI links: a quote is read and invoiced, an invoice is read,
# paid, refunded, voided and its receipt fetched, a payment's invoice refunded.
INVOICE_ID = "$response.body#/data/0/id"
LINKS: dict[tuple[str, str, str], dict[str, Any]] = {
    ("/v1/quotes", "post", "201"): {
        "GetQuote": link("/v1/quotes/{quote_id}", "get", quote_id="$response.body#/id"),
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
    },
    ("/v1/invoices/{invoice_id}/payments", "post", "201"): {
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


class LinksPlugin(BasePlugin):
    """Adds LINKS to the operations' success responses as the document is built."""

    def operation_helper(
        self, path: str | None = None, operations: dict[str, Any] | None = None, **_: Any
    ) -> None:
        for method, operation in (operations or {}).items():
            for status, response in operation.get("responses", {}).items():
                links = LINKS.get((path or "", method, str(status)))
                if links and isinstance(response, dict):
                    response["links"] = links


class BillingApi(Api):  # type: ignore[misc]
    ERROR_SCHEMA = ProblemSchema
    DEFAULT_ERROR_RESPONSE_NAME = None  # no catch-all: each operation lists its statuses

    def __init__(self, app: Any) -> None:
        super().__init__(app, spec_kwargs={"extra_plugins": [LinksPlugin()]})

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
        for status in every:
            view = blueprint.alt_response(status, response=http.HTTPStatus(status).name)(view)
        return view

    return decorate
