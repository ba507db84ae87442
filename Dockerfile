# Production image: PostgreSQL through DATABASE_URL, gunicorn on $PORT, non-root. It is
# production (BILLING_ENV): the service refuses to start with unsafe settings.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PORT=8000 \
    WEB_CONCURRENCY=4 \
    BILLING_ENV=production

WORKDIR /app
COPY requirements.lock ./
RUN pip install --no-compile -r requirements.lock

RUN useradd --create-home --uid 10001 billing
COPY billing/ billing/
COPY schemas/ schemas/
COPY migrations/ migrations/
COPY docker-entrypoint.sh ./

USER billing
EXPOSE 8000
# web: ready (database reachable and migrated; Redis away is only degraded); worker:
# answers a ping (a consumer that stopped fails it, and the orchestrator restarts it);
# beat: running.
HEALTHCHECK --interval=30s --timeout=10s --start-period=30s --retries=3 \
    CMD ["./docker-entrypoint.sh", "healthcheck"]
ENTRYPOINT ["./docker-entrypoint.sh"]
