"""BillingApp remembers which hooks and views are coroutine functions: sync ones are
called as they are, a coroutine function still goes to Flask's async support."""

from __future__ import annotations

import functools

import pytest

from billing import BillingApp


def test_sync_functions_are_called_as_they_are_and_remembered() -> None:
    app = BillingApp(__name__)

    def hook() -> str:
        return "ran"

    class View:
        def get(self) -> str:
            return "got"

    view = View()
    assert app.ensure_sync(hook) is hook
    assert app.ensure_sync(view.get) == view.get  # bound anew, remembered by its function
    partial = functools.partial(hook)
    assert app.ensure_sync(partial) is partial
    assert app._is_sync == {hook: True, View.get: True, partial: True}


def test_a_coroutine_function_is_never_taken_for_a_sync_one() -> None:
    app = BillingApp(__name__)

    async def hook() -> str:
        return "ran"

    for _ in range(2):  # the remembered answer too
        try:
            wrapped = app.ensure_sync(hook)
        except RuntimeError as error:  # Flask without its async extra says so
            assert "async" in str(error)
        else:
            assert wrapped is not hook
    assert app._is_sync == {hook: False}


def test_unhashable_callables_are_asked_every_time() -> None:
    class Unhashable:
        __hash__ = None  # type: ignore[assignment]

        def __call__(self) -> str:
            return "ran"

    app = BillingApp(__name__)
    callable_ = Unhashable()
    assert app.ensure_sync(callable_) is callable_
    assert app._is_sync == {}


@pytest.mark.parametrize("count", [BillingApp.MAX_REMEMBERED + 5])
def test_it_remembers_a_bounded_number(count: int) -> None:
    app = BillingApp(__name__)
    functions = [(lambda i=i: i) for i in range(count)]  # distinct function objects
    for function in functions:
        assert app.ensure_sync(function) is function
    assert len(app._is_sync) == BillingApp.MAX_REMEMBERED


@pytest.mark.parametrize("pinned", ["", "2025-01-27.acacia"])
def test_the_stripe_api_version_setting_reaches_the_client_and_is_said_at_start(
    pinned: str, caplog: pytest.LogCaptureFixture
) -> None:
    """STRIPE_API_VERSION reaches the client (or the SDK's own is used) and the log says
    which, warning when it is not the one the SDK's types describe."""
    from flask import Flask

    from billing.adapters import providers
    from billing.adapters.stripe_gateway import SDK_API_VERSION

    app = Flask(__name__)
    app.config.update(
        STRIPE_SECRET_KEY="sk_test_x",
        STRIPE_WEBHOOK_SECRET="whsec_x",
        STRIPE_API_BASE="",
        STRIPE_TIMEOUT_SECONDS=5,
        STRIPE_MAX_NETWORK_RETRIES=0,
        STRIPE_API_VERSION=pinned,
    )
    with caplog.at_level("INFO", logger="billing.stripe"):
        providers.init_app(app)
    expected = pinned or SDK_API_VERSION
    assert app.extensions["billing.stripe"].api_version == expected
    assert app.config["STRIPE_API_VERSION"] == expected  # what /readyz shows
    [said] = [r for r in caplog.records if r.name == "billing.stripe"]
    assert said.getMessage().startswith(f"stripe: API version {expected}")
    assert said.levelname == ("WARNING" if pinned else "INFO")
