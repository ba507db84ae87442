"""money received outside Stripe: the ledger says how it came (cash, check, external) and
payments keep the reference, when it arrived, who recorded it, and a reversal

Revision ID: 0021
Revises: 0020
Create Date: 2026-12-05 13:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op


revision: str = '0021'
down_revision: str | None = '0020'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('ledger_entries') as batch:
        batch.add_column(sa.Column('method', sa.String(length=16), nullable=True))
    with op.batch_alter_table('payments') as batch:
        batch.add_column(sa.Column('reference', sa.String(length=100), nullable=True))
        batch.add_column(sa.Column('received_at', sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column('recorded_by', sa.String(length=254), nullable=True))
        batch.add_column(sa.Column('reversed_at', sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column('reversal_reason', sa.String(length=500), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('payments') as batch:
        for column in ('reversal_reason', 'reversed_at', 'recorded_by', 'received_at', 'reference'):
            batch.drop_column(column)
    with op.batch_alter_table('ledger_entries') as batch:
        batch.drop_column('method')
