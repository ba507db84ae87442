"""webhook endpoints belong to the client system that registered them, and their signing
secrets are kept sealed

Owners: an existing endpoint gets the client of the API key that registered it, as the
audit trail records it (the `webhook_endpoint.created` row's actor, an API key name); so
every booking system keeps seeing, and hearing on, the endpoints it made. One the trail
cannot attribute gets '' (made before owners existed): no client has that name, so no
client can list, change or redeliver to it until an operator sets its owner_client. Such
an endpoint still receives what it subscribed to: deliveries do not depend on the owner,
and stopping them silently would break a booking system.

Secrets: the column is widened for Fernet tokens (a sealed whsec_ secret is about 170
characters). A migration cannot read the app's SECRET_KEY, so existing secrets stay plain
text here; sealed values start with `fernet:`, and the app seals an unprefixed one the
first time it reads it (billing.adapters.secrets_box).

Downgrade drops the owners and leaves the column wide: sealed secrets do not fit the old
width, and the code before this revision cannot open them anyway (re-register endpoints).

Revision ID: 0019
Revises: 0018
Create Date: 2026-12-06 09:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op


revision: str = '0019'
down_revision: str | None = '0018'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

OWNER_FROM_AUDIT_TRAIL = """
UPDATE webhook_endpoints SET owner_client = COALESCE(
    (SELECT api_keys.client
       FROM audit_events JOIN api_keys ON api_keys.name = audit_events.actor
      WHERE audit_events.action = 'webhook_endpoint.created'
        AND audit_events.object_type = 'webhook_endpoint'
        AND audit_events.object_id = webhook_endpoints.id
        AND audit_events.actor_type = 'api_key'
      ORDER BY audit_events.id
      LIMIT 1),
    '')
"""


def upgrade() -> None:
    with op.batch_alter_table('webhook_endpoints') as batch:
        batch.add_column(sa.Column('owner_client', sa.String(length=64), nullable=True))
        batch.alter_column(
            'secret',
            existing_type=sa.String(length=80),
            type_=sa.String(length=255),
            existing_nullable=False,
        )
    op.execute(OWNER_FROM_AUDIT_TRAIL)
    with op.batch_alter_table('webhook_endpoints') as batch:
        batch.alter_column('owner_client', existing_type=sa.String(length=64), nullable=False)
        batch.create_index('ix_webhook_endpoints_owner_client', ['owner_client'])


def downgrade() -> None:
    with op.batch_alter_table('webhook_endpoints') as batch:
        batch.drop_index('ix_webhook_endpoints_owner_client')
        batch.drop_column('owner_client')
