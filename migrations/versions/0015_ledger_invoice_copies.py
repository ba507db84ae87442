"""ledger entries carry their invoice's number and session type: the reconciliation
report reads them with each entry instead of looking each invoice up

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-01 13:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op


revision: str = '0015'
down_revision: str | None = '0014'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# An invoice's number and session type never change, so the copies never go stale. The
# ledger is append-only (a trigger refuses UPDATE on PostgreSQL): filling in the copies of
# the rows already there is the one exception, made here with the trigger off.
BACKFILL = """
UPDATE ledger_entries SET invoice_number = invoices.number, session_type = invoices.session_type
FROM invoices WHERE invoices.id = ledger_entries.invoice_id
"""
BACKFILL_SQLITE = """
UPDATE ledger_entries SET
    invoice_number = (SELECT number FROM invoices WHERE invoices.id = ledger_entries.invoice_id),
    session_type = (SELECT session_type FROM invoices WHERE invoices.id = ledger_entries.invoice_id)
"""


def upgrade() -> None:
    with op.batch_alter_table('ledger_entries') as batch:
        batch.add_column(sa.Column('invoice_number', sa.String(length=16), nullable=True))
        batch.add_column(sa.Column('session_type', sa.String(length=32), nullable=True))
    if op.get_bind().dialect.name == 'postgresql':
        op.execute('ALTER TABLE ledger_entries DISABLE TRIGGER ledger_entries_append_only')
        op.execute(BACKFILL)
        op.execute('ALTER TABLE ledger_entries ENABLE TRIGGER ledger_entries_append_only')
    else:
        op.execute(BACKFILL_SQLITE)


def downgrade() -> None:
    with op.batch_alter_table('ledger_entries') as batch:
        batch.drop_column('session_type')
        batch.drop_column('invoice_number')
