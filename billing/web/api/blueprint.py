"""The API's Blueprint: flask-smorest's, reading a request's JSON body once.

`requests.check_json_body` parses every API write's body before the view runs (to refuse
malformed JSON and NUL characters); the arguments parser takes that parse instead of
parsing the same bytes again.
"""

from __future__ import annotations

from typing import Any

import flask
import flask_smorest
from webargs import core
from webargs.flaskparser import FlaskParser, is_json_request

from billing.web.requests import JSON_BODY


class BodyOnceParser(FlaskParser):
    def _raw_load_json(self, req: flask.Request) -> Any:
        if not is_json_request(req):
            return core.missing
        if JSON_BODY in flask.g:
            return flask.g.get(JSON_BODY)
        return super()._raw_load_json(req)


class Blueprint(flask_smorest.Blueprint):  # type: ignore[misc]
    ARGUMENTS_PARSER = BodyOnceParser()
