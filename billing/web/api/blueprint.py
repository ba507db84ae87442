"""The API's Blueprint: flask-smorest's, reading a request's JSON body once and loading
it leanly.

`requests.check_json_body` parses every API write's body before the view runs (to refuse
malformed JSON and NUL characters); the arguments parser takes that parse instead of
parsing the same bytes again. A JSON body is first loaded by `schemas.lean.lean_load`,
which walks the schema's own fields and validators without marshmallow's machinery
around them; anything it does not take is loaded by marshmallow, as before, whose errors
are the answer.
"""

from __future__ import annotations

from typing import Any

import flask
import flask_smorest
import marshmallow as ma
from webargs import core
from webargs.core import _UNKNOWN_DEFAULT_PARAM
from webargs.flaskparser import FlaskParser, is_json_request

from billing.web.requests import JSON_BODY
from schemas.lean import DECLINED, lean_load

_OWN_UNKNOWN = (None, _UNKNOWN_DEFAULT_PARAM)


class BodyOnceParser(FlaskParser):
    def _raw_load_json(self, req: flask.Request) -> Any:
        if not is_json_request(req):
            return core.missing
        body = flask.g.get(JSON_BODY, core.missing)
        return super()._raw_load_json(req) if body is core.missing else body

    def _process_location_data(
        self,
        location_data: Any,
        schema: ma.Schema,
        req: flask.Request,
        location: str,
        unknown: str | None,
        validators: Any,
    ) -> Any:
        # Only where marshmallow would use the schema's own `unknown` (the JSON body's).
        if location == "json" and unknown in _OWN_UNKNOWN and self.unknown in _OWN_UNKNOWN:
            data = {} if location_data is core.missing else location_data
            loaded = lean_load(
                schema, self.pre_load(data, schema=schema, req=req, location=location)
            )
            if loaded is not DECLINED:
                self._validate_arguments(loaded, validators)
                return loaded
        return super()._process_location_data(
            location_data, schema, req, location, unknown, validators
        )


class Blueprint(flask_smorest.Blueprint):  # type: ignore[misc]  # flask-smorest ships no type hints
    ARGUMENTS_PARSER = BodyOnceParser()
