"""Stripe's SDK types as a contract checked at run time.

Every request the gateway makes goes through `client.v1.<service>.<method>(params=...)`.
`checked(gateway)` puts a checker between the gateway and its client: each call's params
are checked against the params type that stripe-python itself declares for that method
(`PaymentIntentCreateParams`, `SetupIntentCreateParams`, `RefundCreateParams`, ...), with
typeguard: a key the type does not declare (a parameter the pinned API version dropped),
a value of the wrong type, or a missing required key fails the test that made the call,
whatever the stand-in would have accepted. The calls are recorded for the tests to read.
"""

from __future__ import annotations

import inspect
import sys
import threading
from dataclasses import dataclass, field
from typing import Any, ForwardRef, get_args

import stripe
import stripe._request_options as request_options
from stripe import params as stripe_params
from typeguard import (
    CollectionCheckStrategy,
    ForwardRefPolicy,
    TypeCheckConfiguration,
    TypeCheckError,
    TypeCheckMemo,
    check_type_internal,
)

from billing.adapters.stripe_gateway import StripeGateway

STRICT = TypeCheckConfiguration(
    collection_check_strategy=CollectionCheckStrategy.ALL_ITEMS,
    forward_ref_policy=ForwardRefPolicy.ERROR,
)


class ContractBroken(AssertionError):
    """A request that stripe-python's own types say the pinned API version refuses."""


@dataclass
class Call:
    name: str  # "payment_intents.create"
    params_type: str  # "PaymentIntentCreateParams"
    params: dict[str, Any]


@dataclass
class Record:
    calls: list[Call] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def names(self) -> set[str]:
        with self.lock:
            return {call.name for call in self.calls}


def declared_params_type(method: Any) -> Any:
    """The params type a stripe-python service method declares (`params: X`)."""
    annotation = inspect.signature(method).parameters["params"].annotation
    if not isinstance(annotation, str | ForwardRef):
        annotation = next(a for a in get_args(annotation) if a is not type(None))
    name = annotation.__forward_arg__ if isinstance(annotation, ForwardRef) else annotation
    return getattr(stripe_params, name)


def check_params(params: dict[str, Any], params_type: Any) -> None:
    """Raise ContractBroken unless `params` is a valid `params_type`."""
    namespace = {
        **vars(request_options),
        "StripeContext": stripe.StripeContext,
        **vars(sys.modules[params_type.__module__]),
    }
    memo = TypeCheckMemo(namespace, namespace, config=STRICT)
    try:
        check_type_internal(params, params_type, memo)
    except TypeCheckError as error:
        raise ContractBroken(f"{params_type.__name__}: {error}") from None


class _CheckedService:
    def __init__(self, name: str, service: Any, record: Record) -> None:
        self._name, self._service, self._record = name, service, record

    def __getattr__(self, method_name: str) -> Any:
        method = getattr(self._service, method_name)
        if not callable(method) or method_name.startswith("_"):
            return method
        params_type = declared_params_type(method)
        name = f"{self._name}.{method_name}"

        def call(*args: Any, params: Any = None, options: Any = None) -> Any:
            sent = dict(params or {})
            check_params(sent, params_type)
            with self._record.lock:
                self._record.calls.append(Call(name, params_type.__name__, sent))
            return method(*args, params=params, options=options)

        return call


class _CheckedV1:
    def __init__(self, v1: Any, record: Record) -> None:
        self._v1, self._record = v1, record

    def __getattr__(self, service_name: str) -> _CheckedService:
        return _CheckedService(service_name, getattr(self._v1, service_name), self._record)


class CheckedClient:
    """A StripeClient whose every v1 call is checked against the SDK's params types."""

    def __init__(self, client: stripe.StripeClient, record: Record) -> None:
        self.v1 = _CheckedV1(client.v1, record)


def checked(gateway: StripeGateway) -> Record:
    """Check every request `gateway` makes from now on; the calls are recorded."""
    record = Record()
    gateway.client = CheckedClient(gateway.client, record)
    return record
