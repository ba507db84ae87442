"""Report bodies for the wire: JSON with RFC 3339 timestamps, and CSV streamed line by line."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from datetime import date, datetime, timedelta
from typing import Any

from flask import Response, request

from billing import db
from billing.services import reports


def json_response(body: Any) -> Response:
    return Response(json.dumps(body, default=_timestamp), mimetype="application/json")


def _timestamp(value: Any) -> str:
    if isinstance(value, datetime | date):
        return value.isoformat()
    raise TypeError(f"{type(value).__name__} is not JSON")


def jsonable(value: Any) -> Any:
    """Timestamps as RFC 3339, everything else as JSON knows it."""
    if isinstance(value, dict):
        return {key: jsonable(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(item) for item in value]
    if isinstance(value, datetime | date):
        return value.isoformat()
    return value


def csv_lines(rows: Iterator[dict[str, Any]]) -> Iterator[str]:
    """The pairs as CSV, one buffered line at a time."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=reports.CSV_COLUMNS, extrasaction="ignore")
    writer.writeheader()
    for row in rows:
        writer.writerow(jsonable(row))
        if buffer.tell() > 64 * 1024:
            yield buffer.getvalue()
            buffer.seek(0)
            buffer.truncate()
    yield buffer.getvalue()


def wants_csv(query: dict[str, Any]) -> bool:
    if query.get("format"):
        return bool(query["format"] == "csv")
    return request.accept_mimetypes.best_match(["application/json", "text/csv"]) == "text/csv"


def reconciliation_csv(period: reports.Period) -> Response:
    last_day = (period.end - timedelta(days=1)).date()  # the period's end is exclusive
    name = f"reconciliation-{period.start.date()}-{last_day}.csv"
    make_session = db.database().sessionmaker

    def lines() -> Iterator[str]:
        # The stream outlives the request's session: it has one of its own, closed
        # when the last line is sent (or the client goes away).
        session = make_session()
        try:
            yield from csv_lines(reports.pair_rows(session, period))
        finally:
            session.close()

    response = Response(lines(), mimetype="text/csv")
    response.headers["Content-Disposition"] = f'attachment; filename="{name}"'
    return response
