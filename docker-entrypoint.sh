#!/bin/sh
# Migrate, then hand the process over to gunicorn (it receives signals directly).
set -eu
: "${DATABASE_URL:?set DATABASE_URL to the PostgreSQL database}"
: "${SECRET_KEY:?set SECRET_KEY: it signs the patients pay links}"
flask --app billing db upgrade
exec gunicorn --bind "0.0.0.0:${PORT}" --workers "${WEB_CONCURRENCY}" \
    --forwarded-allow-ips "${FORWARDED_ALLOW_IPS:-127.0.0.1}" \
    "billing:create_app()"
