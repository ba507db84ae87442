"""gunicorn's settings for the service: `gunicorn -c python:billing.gunicorn_conf ...`.

With PROMETHEUS_MULTIPROC_DIR set, each worker writes its metrics there and /metrics adds
them up: the folder is emptied when gunicorn starts, and a worker that exits is
forgotten, so its gauges do not linger.
"""

from __future__ import annotations

import glob
import os
from typing import Any

from prometheus_client import multiprocess


def on_starting(_server: Any) -> None:
    folder = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if folder:
        os.makedirs(folder, exist_ok=True)
        for stale in glob.glob(os.path.join(folder, "*.db")):
            os.remove(stale)


def child_exit(_server: Any, worker: Any) -> None:
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        multiprocess.mark_process_dead(worker.pid)  # type: ignore[no-untyped-call]  # untyped upstream
