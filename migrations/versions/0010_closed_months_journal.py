"""closed months: the journal each held when finance closed it, and what it posted

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-01 09:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op


revision: str = '0010'
down_revision: str | None = '0009'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TABLES = ('closed_months', 'closed_journal_lines', 'journal_postings')

# A closed month's journal never changes: on PostgreSQL the trigger function of 0005
# refuses every UPDATE and DELETE of the three tables, whoever asks.
APPEND_ONLY = "\n".join(
    f"""CREATE TRIGGER {table}_append_only
    BEFORE UPDATE OR DELETE ON {table}
    FOR EACH ROW EXECUTE FUNCTION billing_refuse_change();
CREATE TRIGGER {table}_no_truncate
    BEFORE TRUNCATE ON {table}
    FOR EACH STATEMENT EXECUTE FUNCTION billing_refuse_change();
REVOKE UPDATE, DELETE, TRUNCATE ON {table} FROM PUBLIC;"""
    for table in TABLES
)


def upgrade() -> None:
    op.create_table(
        'closed_months',
        sa.Column('month', sa.String(length=7), nullable=False),
        sa.Column('closed_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('closed_by', sa.String(length=254), nullable=False),
        sa.Column('time_zone', sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint('month', name=op.f('pk_closed_months')),
    )
    op.create_table(
        'closed_journal_lines',
        sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
        sa.Column('month', sa.String(length=7), nullable=False),
        sa.Column('position', sa.Integer(), nullable=False),
        sa.Column('journal_date', sa.Date(), nullable=False),
        sa.Column('currency', sa.String(length=3), nullable=False),
        sa.Column('account', sa.String(length=32), nullable=False),
        sa.Column('account_name', sa.String(length=100), nullable=False),
        sa.Column('account_code', sa.String(length=100), nullable=False),
        sa.Column('tax_rate', sa.String(length=100), nullable=False),
        sa.Column('description', sa.String(length=200), nullable=False),
        sa.Column('debit', sa.BigInteger(), nullable=False),
        sa.Column('credit', sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ['month'], ['closed_months.month'],
            name=op.f('fk_closed_journal_lines_month_closed_months'),
        ),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_closed_journal_lines')),
        sa.UniqueConstraint('month', 'position', name=op.f('uq_closed_journal_lines_month')),
    )
    op.create_table(
        'journal_postings',
        sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
        sa.Column('month', sa.String(length=7), nullable=False),
        sa.Column('ledger_entry_id', sa.BigInteger(), nullable=True),
        sa.Column('stripe_transaction_id', sa.String(length=255), nullable=True),
        sa.ForeignKeyConstraint(
            ['month'], ['closed_months.month'],
            name=op.f('fk_journal_postings_month_closed_months'),
        ),
        sa.ForeignKeyConstraint(
            ['ledger_entry_id'], ['ledger_entries.id'],
            name=op.f('fk_journal_postings_ledger_entry_id'),
        ),
        sa.ForeignKeyConstraint(
            ['stripe_transaction_id'], ['stripe_balance_transactions.id'],
            name=op.f('fk_journal_postings_stripe_transaction_id'),  # within 63 characters
        ),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_journal_postings')),
        sa.UniqueConstraint('ledger_entry_id', name=op.f('uq_journal_postings_ledger_entry_id')),
        sa.UniqueConstraint(
            'stripe_transaction_id', name=op.f('uq_journal_postings_stripe_transaction_id')
        ),
    )
    op.create_index('ix_journal_postings_month', 'journal_postings', ['month'])
    if op.get_bind().dialect.name == 'postgresql':
        op.execute(APPEND_ONLY)


def downgrade() -> None:
    if op.get_bind().dialect.name == 'postgresql':
        for table in reversed(TABLES):
            op.execute(f'DROP TRIGGER {table}_no_truncate ON {table}')
            op.execute(f'DROP TRIGGER {table}_append_only ON {table}')
    op.drop_index('ix_journal_postings_month', table_name='journal_postings')
    op.drop_table('journal_postings')
    op.drop_table('closed_journal_lines')
    op.drop_table('closed_months')
