"""Tests against Stripe's own test mode, run only when asked: `make test-stripe-live` with
STRIPE_TEST_SECRET_KEY=sk_test_... set. `make test` never collects them (no key, and no
internet on the machines it runs on); a live key (sk_live_...) is refused."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from billing.adapters.stripe_gateway import StripeGateway
from tests.stripe.contract import Record, checked

KEY = os.environ.get("STRIPE_TEST_SECRET_KEY", "")
collect_ignore_glob = [] if KEY else ["test_*.py"]


@pytest.fixture(scope="session")
def gateway() -> Iterator[StripeGateway]:
    if not KEY.startswith(("sk_test_", "rk_test_")):
        pytest.fail("STRIPE_TEST_SECRET_KEY must be a test-mode key (sk_test_...)")
    # STRIPE_TEST_API_BASE: a dry run of these tests against the stand-in, for their authors.
    base = os.environ.get("STRIPE_TEST_API_BASE") or None
    yield StripeGateway(KEY, webhook_secret="whsec_unused", api_base=base, max_network_retries=2)


@pytest.fixture(scope="session")
def calls(gateway: StripeGateway) -> Record:
    """Every request of these tests is checked against the SDK's types too."""
    return checked(gateway)
