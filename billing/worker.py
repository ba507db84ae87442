"""Celery's entry point: `celery -A billing.worker worker` runs a worker, `celery -A
billing.worker beat` the scheduler (one is enough; a second is harmless, as every
scheduled job holds a lease while it runs)."""

from __future__ import annotations

from billing import create_app

flask_app = create_app()
celery = flask_app.extensions["celery"]
