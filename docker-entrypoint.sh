#!/bin/sh
# One image, three roles:
#   (no argument) or web   migrate (once, however many replicas start together: the
#                          migration takes a PostgreSQL advisory lock), then gunicorn
#   worker                 a Celery worker (webhooks, emails, jobs); run as many as needed
#   beat                   the scheduler (one is enough; a second is harmless)
#   anything else          run as a command, e.g. `flask --app billing keys create ...`
set -eu
: "${DATABASE_URL:?set DATABASE_URL to the PostgreSQL database}"
: "${SECRET_KEY:?set SECRET_KEY: it signs the patients pay links}"
role="${1:-web}"
if [ "$role" = healthcheck ]; then
  # Docker's HEALTHCHECK, for whichever role this container was started in.
  case "$(cat "${BILLING_ROLE_FILE:-/tmp/billing-role}" 2>/dev/null || echo web)" in
    worker) exec celery -A billing.worker inspect ping --timeout 5 --destination "celery@$(hostname)" ;;
    beat) exec kill -0 1 ;;  # the scheduler is the container's first process
    *) exec python -c "import os, urllib.request as u; u.urlopen('http://127.0.0.1:%s/readyz' % os.environ['PORT'], timeout=4)" ;;
  esac
fi
echo "$role" > "${BILLING_ROLE_FILE:-/tmp/billing-role}"
case "$role" in
  web)
    # The workers' metrics meet here; gunicorn empties it at start (billing/gunicorn_conf.py).
    export PROMETHEUS_MULTIPROC_DIR="${PROMETHEUS_MULTIPROC_DIR:-/tmp/billing-metrics}"
    flask --app billing db upgrade
    exec gunicorn --config python:billing.gunicorn_conf \
        --bind "0.0.0.0:${PORT}" --workers "${WEB_CONCURRENCY}" \
        --forwarded-allow-ips "${FORWARDED_ALLOW_IPS:-127.0.0.1}" \
        "billing:create_app()"
    ;;
  worker)
    : "${CELERY_BROKER_URL:=${REDIS_URL:?set CELERY_BROKER_URL (RabbitMQ, amqp://...) or REDIS_URL: the task queue's broker}}"
    export CELERY_BROKER_URL
    exec celery -A billing.worker worker --loglevel INFO \
        --concurrency "${WORKER_CONCURRENCY:-4}"
    ;;
  beat)
    : "${CELERY_BROKER_URL:=${REDIS_URL:?set CELERY_BROKER_URL (RabbitMQ, amqp://...) or REDIS_URL: the task queue's broker}}"
    export CELERY_BROKER_URL
    exec celery -A billing.worker beat --loglevel INFO --schedule /tmp/celerybeat-schedule
    ;;
  *)
    exec "$@"
    ;;
esac
