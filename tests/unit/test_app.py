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
