"""The stand-in refuses what the real Stripe refuses on the requests our gateway makes.

localstripe answers requests in the shape of an API version from 2017 and accepts some
parameters that Stripe has since removed. In front of it, for requests made with a secret
key (the server side), this checks what Stripe checks on the pinned API version:

- `Stripe-Version`: the stand-in emulates one version, the one stripe-python was generated
  for; a request for another is refused (400 `api_version_unsupported`) rather than
  answered by rules that are not that version's;
- parameters: on the endpoints in ENDPOINTS, every key (nested ones included) must be one
  that stripe-python's params type for that endpoint declares, else 400
  `parameter_unknown`, as Stripe answers;
- `payment_method_types` on PaymentIntents and SetupIntents: 400
  `payment_method_types_no_longer_supported` (removed in 2026-09-30.endive).

stripe-python's params types are generated from Stripe's API description for exactly that
version; this module reads them as a schema (it is the stand-in, never production code).
Stand-in side only, like the bridge and the semantics beside it.
"""

from __future__ import annotations

import re
import sys
import types
from functools import cache
from typing import Any, ForwardRef, NotRequired, Union, get_args, get_origin

from stripe import RequestOptions
from stripe import api_version as SDK_API_VERSION
from stripe import params as stripe_params
from typing_extensions import is_typeddict

EMULATED_API_VERSION: str = SDK_API_VERSION
REMOVED_METHOD_TYPES_SINCE = "2026-09-30.endive"
INTENTS = re.compile(r"^/v1/(payment|setup)_intents(/[^/]+(/confirm)?)?$")

# The requests the gateway sends, by method and path, with the SDK's params type for each.
ENDPOINTS: dict[tuple[str, str], Any] = {
    ("POST", "/v1/customers"): stripe_params.CustomerCreateParams,
    ("POST", "/v1/customers/{id}"): stripe_params.CustomerUpdateParams,
    ("GET", "/v1/customers/{id}"): stripe_params.CustomerRetrieveParams,
    ("POST", "/v1/setup_intents"): stripe_params.SetupIntentCreateParams,
    ("GET", "/v1/setup_intents/{id}"): stripe_params.SetupIntentRetrieveParams,
    ("POST", "/v1/setup_intents/{id}"): stripe_params.SetupIntentUpdateParams,
    ("GET", "/v1/payment_methods"): stripe_params.PaymentMethodListParams,
    ("GET", "/v1/payment_methods/{id}"): stripe_params.PaymentMethodRetrieveParams,
    ("POST", "/v1/payment_methods/{id}/attach"): stripe_params.PaymentMethodAttachParams,
    ("POST", "/v1/payment_methods/{id}/detach"): stripe_params.PaymentMethodDetachParams,
    ("POST", "/v1/payment_intents"): stripe_params.PaymentIntentCreateParams,
    ("GET", "/v1/payment_intents/search"): stripe_params.PaymentIntentSearchParams,
    ("GET", "/v1/payment_intents/{id}"): stripe_params.PaymentIntentRetrieveParams,
    ("POST", "/v1/payment_intents/{id}"): stripe_params.PaymentIntentUpdateParams,
    ("POST", "/v1/payment_intents/{id}/confirm"): stripe_params.PaymentIntentConfirmParams,
    ("POST", "/v1/payment_intents/{id}/cancel"): stripe_params.PaymentIntentCancelParams,
    ("POST", "/v1/refunds"): stripe_params.RefundCreateParams,
    ("GET", "/v1/refunds"): stripe_params.RefundListParams,
    ("GET", "/v1/balance_transactions"): stripe_params.BalanceTransactionListParams,
    ("GET", "/v1/payouts"): stripe_params.PayoutListParams,
}
ROUTES = [
    (method, re.compile("^" + path.replace("{id}", "(?!search$)[^/]+") + "$"), params)
    for (method, path), params in ENDPOINTS.items()
]
# Keys every params type inherits from RequestOptions: headers, never body parameters.
REQUEST_OPTIONS = frozenset(RequestOptions.__annotations__)


def params_type(method: str, path: str) -> Any | None:
    """The SDK's params type for a request the gateway makes, or None for any other."""
    for route_method, pattern, params in ROUTES:
        if route_method == method and pattern.match(path):
            return params
    return None


def unknown_keys(data: Any, typeddict: Any, prefix: str = "") -> list[str]:
    """Every key of `data`, at any depth, that `typeddict` does not declare, named as
    Stripe names parameters (`payment_method_options[card][foo]`)."""
    if not isinstance(data, dict):
        return []
    declared = _declared(typeddict)
    unknown = []
    for key, value in data.items():
        name = f"{prefix}[{key}]" if prefix else str(key)
        if key not in declared:
            unknown.append(name)
            continue
        for nested in declared[key]:
            items = value if isinstance(value, list) else [value]
            for index, item in enumerate(items):
                where = f"{name}[{index}]" if isinstance(value, list) else name
                unknown.extend(unknown_keys(item, nested, where))
    return unknown


@cache
def _declared(typeddict: Any) -> dict[str, tuple[Any, ...]]:
    """Each key a params type declares, with the params types its value may hold."""
    namespace = vars(sys.modules[typeddict.__module__])
    return {
        key: tuple(_typeddicts(annotation, namespace))
        for key, annotation in typeddict.__annotations__.items()
        if key not in REQUEST_OPTIONS
    }


def _typeddicts(annotation: Any, namespace: dict[str, Any]) -> list[Any]:
    """The TypedDicts an annotation allows, through NotRequired, unions, lists and the
    string forward references the SDK writes."""
    if isinstance(annotation, ForwardRef):
        annotation = annotation.__forward_arg__
    if isinstance(annotation, str):
        try:
            annotation = eval(annotation, dict(namespace))  # the SDK's own annotation text
        except NameError:  # a name imported only for type checkers: nothing nested there
            return []
    if is_typeddict(annotation):
        return [annotation]
    origin = get_origin(annotation)
    if origin in (NotRequired, Union, types.UnionType, list):
        return [found for arg in get_args(annotation) for found in _typeddicts(arg, namespace)]
    return []


def refusal(method: str, path: str, version: str | None, data: Any) -> dict[str, Any] | None:
    """Stripe's 400 for this request on the emulated version, or None when it is fine."""
    if version is not None and version != EMULATED_API_VERSION:
        return _error(
            "api_version_unsupported",
            None,
            f"This Stripe stand-in emulates API version {EMULATED_API_VERSION} only; the "
            f"request asked for {version}. Pin STRIPE_API_VERSION to {EMULATED_API_VERSION} "
            "(the installed stripe-python's) to use it.",
        )
    if method == "POST" and INTENTS.match(path) and "payment_method_types" in (data or {}):
        return _error(
            "payment_method_types_no_longer_supported",
            "payment_method_types",
            "Passing `payment_method_types` is not supported on API versions "
            f"{REMOVED_METHOD_TYPES_SINCE} and later. Use `allowed_payment_method_types` or "
            "`excluded_payment_method_types`, or dynamic payment methods.",
        )
    typeddict = params_type(method, path)
    if typeddict is None:
        return None
    unknown = unknown_keys(data or {}, typeddict)
    if unknown:
        return _error("parameter_unknown", unknown[0], f"Received unknown parameter: {unknown[0]}")
    return None


def _error(code: str, param: str | None, message: str) -> dict[str, Any]:
    error: dict[str, Any] = {"type": "invalid_request_error", "code": code, "message": message}
    if param is not None:
        error["param"] = param
    return {"error": error}


def add_api_rules(app: Any) -> None:
    """Refuse, in front of localstripe, what Stripe refuses (server-side requests only)."""
    from aiohttp import web
    from localstripe.server import get_api_key, get_post_data, unflatten_data

    if getattr(app, "_billing_rules", False):
        return
    app._billing_rules = True

    @web.middleware
    async def stripe_rules(request: Any, handler: Any) -> Any:
        if not request.path.startswith("/v1/") or get_api_key(request) is None:
            return await handler(request)  # the browser's Stripe.js, with a publishable key
        if request.method == "POST":
            data = await get_post_data(request, remove_auth=False)
        else:
            data = unflatten_data(request.query)
        refused = refusal(request.method, request.path, request.headers.get("Stripe-Version"), data)
        if refused is not None:
            return web.json_response(refused, status=400)
        return await handler(request)

    app.middlewares.append(stripe_rules)
