#!/bin/sh
# Migrate (once, however many replicas start together: the migration takes a PostgreSQL
# advisory lock), then hand the process over to gunicorn (it receives signals directly).
set -eu
: "${DATABASE_URL:?set DATABASE_URL to the PostgreSQL database}"
: "${SECRET_KEY:?set SECRET_KEY: it signs the patients pay links}"
# The workers' metrics meet here; gunicorn empties it at start (billing/gunicorn_conf.py).
export PROMETHEUS_MULTIPROC_DIR="${PROMETHEUS_MULTIPROC_DIR:-/tmp/billing-metrics}"
flask --app billing db upgrade
exec gunicorn --config python:billing.gunicorn_conf \
    --bind "0.0.0.0:${PORT}" --workers "${WEB_CONCURRENCY}" \
    --forwarded-allow-ips "${FORWARDED_ALLOW_IPS:-127.0.0.1}" \
    "billing:create_app()"
