"""The Stripe stand-in refuses what Stripe refuses on the pinned API version, so a request
the real API would answer with a 400 fails here too; and events arrive in that version."""

from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

import pytest

from billing.adapters.standin.rules import EMULATED_API_VERSION
from billing.adapters.stripe_gateway import SDK_API_VERSION, StripeGateway
from billing.domain.errors import Unprocessable
from tests.fixtures_stripe import SECRET_KEY


def stripe_post(
    standin: Any, path: str, form: list[tuple[str, str]], version: str | None = SDK_API_VERSION
) -> tuple[int, dict[str, Any]]:
    """A request as stripe-python sends it: form-encoded, a secret key, a Stripe-Version."""
    headers = {"Authorization": f"Bearer {SECRET_KEY}"}
    if version is not None:
        headers["Stripe-Version"] = version
    request = urllib.request.Request(
        standin.url + path, data=urllib.parse.urlencode(form).encode(), headers=headers
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as answer:
            return answer.status, dict(json.loads(answer.read()))
    except urllib.error.HTTPError as error:
        return error.code, dict(json.loads(error.read()))


def test_the_stand_in_emulates_the_version_the_sdk_was_made_for() -> None:
    assert EMULATED_API_VERSION == SDK_API_VERSION == "2026-10-28.endive"


@pytest.mark.parametrize(
    "path, form",
    [
        ("/v1/payment_intents", [("amount", "50000"), ("currency", "usd")]),
        ("/v1/setup_intents", []),
    ],
)
def test_the_old_request_with_payment_method_types_is_a_400_as_stripe_answers_it(
    standin, path: str, form: list[tuple[str, str]]
) -> None:
    status, body = stripe_post(standin, path, [*form, ("payment_method_types[0]", "card")])
    assert status == 400
    assert body["error"]["code"] == "payment_method_types_no_longer_supported"
    assert body["error"]["param"] == "payment_method_types"
    # What the gateway sends instead is accepted.
    status, body = stripe_post(standin, path, [*form, ("allowed_payment_method_types[0]", "card")])
    assert status == 200, body


@pytest.mark.parametrize(
    "form, param",
    [
        ([("amount", "100"), ("currency", "usd"), ("description_text", "x")], "description_text"),
        (
            [
                ("amount", "100"),
                ("currency", "usd"),
                ("payment_method_options[card][stored_credential]", "unscheduled"),
            ],
            "payment_method_options[card][stored_credential]",
        ),
    ],
)
def test_a_parameter_stripe_does_not_know_is_refused_by_name(
    standin, form: list[tuple[str, str]], param: str
) -> None:
    status, body = stripe_post(standin, "/v1/payment_intents", form)
    assert status == 400
    assert (body["error"]["code"], body["error"]["param"]) == ("parameter_unknown", param)


def test_a_refund_with_an_unknown_parameter_is_refused_and_a_known_one_is_not(standin) -> None:
    status, body = stripe_post(standin, "/v1/refunds", [("charge", "ch_x"), ("note", "x")])
    assert (status, body["error"]["code"]) == (400, "parameter_unknown")


def test_another_api_version_is_refused_and_none_means_the_accounts_default(standin) -> None:
    status, body = stripe_post(standin, "/v1/customers", [], version="2024-06-20")
    assert (status, body["error"]["code"]) == (400, "api_version_unsupported")
    assert EMULATED_API_VERSION in body["error"]["message"]
    assert stripe_post(standin, "/v1/customers", [], version=None)[0] == 200


def test_a_gateway_pinned_to_another_version_is_told_so(standin) -> None:
    gateway = StripeGateway(SECRET_KEY, "whsec_x", api_base=standin.url, api_version="2024-06-20")
    assert gateway.api_version == "2024-06-20"
    with pytest.raises(Unprocessable) as refused:
        gateway.create_customer("pt_version_check")
    assert refused.value.code == "stripe_invalid_request"
    assert "emulates API version" in refused.value.detail


def test_the_gateway_names_the_sdks_version_unless_told_otherwise(standin, proxy) -> None:
    gateway = StripeGateway(SECRET_KEY, "whsec_x", api_base=proxy.url)
    assert gateway.api_version == SDK_API_VERSION
    gateway.create_customer("pt_default_version")
    assert proxy.calls("POST", "/v1/customers")
