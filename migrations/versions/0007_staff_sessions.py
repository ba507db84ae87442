"""staff sessions: a version that sign-out and password changes move on

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-25 01:40:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op


revision: str = '0007'
down_revision: str | None = '0006'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('staff_users') as batch:
        batch.add_column(
            sa.Column('session_version', sa.Integer(), server_default='0', nullable=False)
        )


def downgrade() -> None:
    with op.batch_alter_table('staff_users') as batch:
        batch.drop_column('session_version')
