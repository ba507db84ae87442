"""The patient portal's API: a sign-in link staff send a patient."""

from __future__ import annotations

from marshmallow import Schema, fields


class PortalLinkSchema(Schema):
    sent_to = fields.String(
        required=True,
        metadata={"description": "The address the link went to, partly hidden (r***@example.org)."},
    )
    expires_at = fields.DateTime(
        required=True, metadata={"description": "When the link stops working."}
    )
