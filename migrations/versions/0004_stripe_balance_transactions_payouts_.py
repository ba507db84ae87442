"""stripe balance transactions, payouts, sync state, staff users

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-24 01:49:03.631011
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op


revision: str = '0004'
down_revision: str | None = '0003'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:

    op.create_table('staff_users',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('email', sa.String(length=254), nullable=False),
    sa.Column('password_hash', sa.String(length=255), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('disabled_at', sa.DateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_staff_users')),
    sa.UniqueConstraint('email', name=op.f('uq_staff_users_email'))
    )
    op.create_table('stripe_balance_transactions',
    sa.Column('id', sa.String(length=255), nullable=False),
    sa.Column('type', sa.String(length=32), nullable=False),
    sa.Column('source', sa.String(length=255), nullable=True),
    sa.Column('amount', sa.BigInteger(), nullable=False),
    sa.Column('fee', sa.BigInteger(), nullable=False),
    sa.Column('net', sa.BigInteger(), nullable=False),
    sa.Column('currency', sa.String(length=3), nullable=False),
    sa.Column('created', sa.DateTime(timezone=True), nullable=False),
    sa.Column('available_on', sa.DateTime(timezone=True), nullable=True),
    sa.Column('payout_id', sa.String(length=255), nullable=True),
    sa.Column('synced_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_stripe_balance_transactions'))
    )
    with op.batch_alter_table('stripe_balance_transactions', schema=None) as batch_op:
        batch_op.create_index('ix_stripe_balance_transactions_created', ['created'], unique=False)
        batch_op.create_index('ix_stripe_balance_transactions_payout', ['payout_id'], unique=False)
        batch_op.create_index('ix_stripe_balance_transactions_source', ['source'], unique=False)

    op.create_table('stripe_payouts',
    sa.Column('id', sa.String(length=255), nullable=False),
    sa.Column('amount', sa.BigInteger(), nullable=False),
    sa.Column('currency', sa.String(length=3), nullable=False),
    sa.Column('status', sa.String(length=32), nullable=False),
    sa.Column('arrival_date', sa.DateTime(timezone=True), nullable=True),
    sa.Column('created', sa.DateTime(timezone=True), nullable=False),
    sa.Column('linked_at', sa.DateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_stripe_payouts'))
    )
    op.create_table('sync_state',
    sa.Column('name', sa.String(length=64), nullable=False),
    sa.Column('cursor', sa.String(length=255), nullable=True),
    sa.Column('since', sa.DateTime(timezone=True), nullable=True),
    sa.Column('newest_seen', sa.DateTime(timezone=True), nullable=True),
    sa.Column('started_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('finished_at', sa.DateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('name', name=op.f('pk_sync_state'))
    )
    with op.batch_alter_table('ledger_entries', schema=None) as batch_op:
        batch_op.add_column(sa.Column('stripe_ref', sa.String(length=255), nullable=True))
        batch_op.create_index('ix_ledger_entries_stripe_ref', ['stripe_ref'], unique=False)
    op.execute(
        "UPDATE ledger_entries SET stripe_ref = "
        "CASE WHEN kind = 'charge' THEN stripe_charge_id ELSE stripe_object_id END"
    )




def downgrade() -> None:

    with op.batch_alter_table('ledger_entries', schema=None) as batch_op:
        batch_op.drop_index('ix_ledger_entries_stripe_ref')
        batch_op.drop_column('stripe_ref')

    op.drop_table('sync_state')
    op.drop_table('stripe_payouts')
    with op.batch_alter_table('stripe_balance_transactions', schema=None) as batch_op:
        batch_op.drop_index('ix_stripe_balance_transactions_source')
        batch_op.drop_index('ix_stripe_balance_transactions_payout')
        batch_op.drop_index('ix_stripe_balance_transactions_created')

    op.drop_table('stripe_balance_transactions')
    op.drop_table('staff_users')

