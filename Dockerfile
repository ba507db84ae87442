# Production image: PostgreSQL through DATABASE_URL, gunicorn on $PORT, non-root.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PORT=8000 \
    WEB_CONCURRENCY=4

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
# Ready: the database answers and is migrated (and Redis answers, when configured).
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD python -c "import os, urllib.request as u; u.urlopen('http://127.0.0.1:%s/readyz' % os.environ['PORT'], timeout=4)"
ENTRYPOINT ["./docker-entrypoint.sh"]
