"""The service as the fault run serves it: `billing:create_app()` with one hook that only
the bench has. While the file FAULT_HOLD_FILE exists, the answer to a payment or a refund,
committed by then, waits before it is written, and FAULT_HOLD_FILE + ".reached" says so:
the bench then kills the worker, right after our commit and before the caller hears back.

    gunicorn 'fault_app:create()'   (with bench/ on the Python path)
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from flask import Flask

from billing import create_app

HELD = ("/payments", "/refunds")


def create() -> Flask:
    app = create_app()
    answer = app.wsgi_app
    hold = Path(os.environ["FAULT_HOLD_FILE"])

    def held(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        body = answer(environ, start_response)  # the request has run: its work committed
        if environ.get("PATH_INFO", "").endswith(HELD) and hold.exists():
            Path(f"{hold}.reached").touch()
            time.sleep(60)  # killed meanwhile
        return body

    app.wsgi_app = held  # type: ignore[method-assign]  # the bench's own hook
    return app
