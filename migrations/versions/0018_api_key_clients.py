"""each API key belongs to a client system (by default the key's own name), so that what a
client owns (its webhook endpoints) stays its own when its key is rotated

Revision ID: 0018
Revises: 0017
Create Date: 2026-12-05 14:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op


revision: str = '0018'
down_revision: str | None = '0017'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('api_keys') as batch:
        batch.add_column(sa.Column('client', sa.String(length=64), nullable=True))
    op.execute("UPDATE api_keys SET client = name")
    with op.batch_alter_table('api_keys') as batch:
        batch.alter_column('client', existing_type=sa.String(length=64), nullable=False)
        batch.create_index('ix_api_keys_client', ['client'])


def downgrade() -> None:
    with op.batch_alter_table('api_keys') as batch:
        batch.drop_index('ix_api_keys_client')
        batch.drop_column('client')
