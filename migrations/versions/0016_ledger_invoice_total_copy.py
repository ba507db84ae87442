"""ledger entries carry their invoice's total too: the overpayments look up only the
invoices that may have collected more than they owe, not every one charged in the period;
an index of the charges by invoice holding what the overpayments sum; and (PostgreSQL) the
type of a reconciliation pair, whose fields name the report's JSON keys

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-02 01:40:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op


revision: str = '0016'
down_revision: str | None = '0015'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# An invoice's total is set when it is issued and never changes (a wrong invoice is voided
# and another issued), so the copy never goes stale. As in 0015, the append-only trigger
# is off only while the rows already there get their copy.
BACKFILL = """
UPDATE ledger_entries SET invoice_total = invoices.total
FROM invoices WHERE invoices.id = ledger_entries.invoice_id
"""
BACKFILL_SQLITE = """
UPDATE ledger_entries SET
    invoice_total = (SELECT total FROM invoices WHERE invoices.id = ledger_entries.invoice_id)
"""


# A pair of the reconciliation report as PostgreSQL writes it to JSON (row_to_json): the
# fields are the report's columns, in its order (reconciliation.CSV_COLUMNS; the fast
# report's tests compare every key with the portable path's).
PAIR_TYPE = """
CREATE TYPE reconciliation_pair AS (
    status text, ledger_entry_id bigint, invoice_id text, invoice_number text, kind text,
    ledger_amount bigint, ledger_currency text, occurred_at text,
    stripe_transaction_id text, stripe_source text, stripe_type text, stripe_amount bigint,
    stripe_fee bigint, stripe_net bigint, stripe_currency text, stripe_created text
)
"""


def upgrade() -> None:
    with op.batch_alter_table('ledger_entries') as batch:
        batch.add_column(sa.Column('invoice_total', sa.BigInteger(), nullable=True))
    if op.get_bind().dialect.name == 'postgresql':
        op.execute('ALTER TABLE ledger_entries DISABLE TRIGGER ledger_entries_append_only')
        op.execute(BACKFILL)
        op.execute('ALTER TABLE ledger_entries ENABLE TRIGGER ledger_entries_append_only')
        op.execute(PAIR_TYPE)
    else:
        op.execute(BACKFILL_SQLITE)
    op.create_index(
        'ix_ledger_entries_charges', 'ledger_entries', ['invoice_id'],
        postgresql_include=['amount', 'occurred_at', 'invoice_total'],
        postgresql_where=sa.text("kind = 'charge'"), sqlite_where=sa.text("kind = 'charge'"),
    )


def downgrade() -> None:
    if op.get_bind().dialect.name == 'postgresql':
        op.execute('DROP TYPE reconciliation_pair')
    op.drop_index('ix_ledger_entries_charges', table_name='ledger_entries')
    with op.batch_alter_table('ledger_entries') as batch:
        batch.drop_column('invoice_total')
