"""estimates: Good Faith Estimates as given, and patients' disputes of a bill

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-01 11:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op


revision: str = '0012'
down_revision: str | None = '0011'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        'estimates',
        sa.Column('id', sa.String(length=32), nullable=False),
        sa.Column('quote_id', sa.String(length=32), nullable=False),
        sa.Column('booking_id', sa.String(length=64), nullable=False),
        sa.Column('patient_id', sa.String(length=64), nullable=False),
        sa.Column('patient_name', sa.String(length=200), nullable=False),
        sa.Column('session_type', sa.String(length=32), nullable=False),
        sa.Column('currency', sa.String(length=3), nullable=False),
        sa.Column('sessions', sa.Integer(), nullable=False),
        sa.Column('course_months', sa.Integer(), nullable=False),
        sa.Column('unit_amount', sa.BigInteger(), nullable=False),
        sa.Column('total', sa.BigInteger(), nullable=False),
        sa.Column('items', sa.Text(), nullable=False),
        sa.Column('scheduled_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('booked_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('requested', sa.Boolean(), nullable=False),
        sa.Column('issued_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('due_by', sa.DateTime(timezone=True), nullable=True),
        sa.Column('on_time', sa.Boolean(), nullable=False),
        sa.ForeignKeyConstraint(['quote_id'], ['quotes.id'], name=op.f('fk_estimates_quote_id_quotes')),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_estimates')),
        sa.UniqueConstraint('quote_id', 'patient_id', 'sessions', 'course_months', 'requested', name=op.f('uq_estimates_quote_id')),
    )
    op.create_index(op.f('ix_estimates_quote_id'), 'estimates', ['quote_id'])
    op.create_index('ix_estimates_patient_id', 'estimates', ['patient_id'])
    op.create_table(
        'bill_disputes',
        sa.Column('id', sa.String(length=32), nullable=False),
        sa.Column('invoice_id', sa.String(length=32), nullable=False),
        sa.Column('patient_id', sa.String(length=64), nullable=False),
        sa.Column('note', sa.String(length=500), nullable=True),
        sa.Column('opened_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('resolved_at', sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(['invoice_id'], ['invoices.id'], name=op.f('fk_bill_disputes_invoice_id_invoices')),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_bill_disputes')),
    )
    op.create_index(op.f('ix_bill_disputes_invoice_id'), 'bill_disputes', ['invoice_id'])
    op.create_index(op.f('ix_bill_disputes_patient_id'), 'bill_disputes', ['patient_id'])


def downgrade() -> None:
    op.drop_table('bill_disputes')
    op.drop_table('estimates')
