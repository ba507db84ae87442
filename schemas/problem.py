"""The problem+json error body (RFC 9457), for the OpenAPI document."""

from __future__ import annotations

from marshmallow import Schema, fields


class ProblemSchema(Schema):
    type = fields.String()
    title = fields.String()
    status = fields.Integer()
    detail = fields.String()
    code = fields.String(metadata={"example": "first_session_must_be_iv"})
    errors = fields.Dict(
        keys=fields.String(),
        values=fields.List(fields.String()),
        metadata={"example": {"patients.1": ["..."]}},
    )
    request_id = fields.String()
