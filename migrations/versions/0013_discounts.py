"""discounts: sliding-scale discounts on quote lines, promotion codes and their redemptions

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-01 11:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op


revision: str = '0013'
down_revision: str | None = '0012'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        'promotions',
        sa.Column('id', sa.String(length=32), nullable=False),
        sa.Column('code', sa.String(length=40), nullable=False),
        sa.Column('percent_off', sa.Integer(), nullable=True),
        sa.Column('amount_off', sa.BigInteger(), nullable=True),
        sa.Column('currency', sa.String(length=3), nullable=True),
        sa.Column('starts_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('ends_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('max_redemptions', sa.Integer(), nullable=True),
        sa.Column('max_per_patient', sa.Integer(), nullable=True),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_promotions')),
        sa.UniqueConstraint('code', name=op.f('uq_promotions_code')),
    )
    op.create_table(
        'promotion_redemptions',
        sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
        sa.Column('promotion_id', sa.String(length=32), nullable=False),
        sa.Column('quote_id', sa.String(length=32), nullable=False),
        sa.Column('booking_id', sa.String(length=64), nullable=False),
        sa.Column('patient_id', sa.String(length=64), nullable=False),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(['promotion_id'], ['promotions.id'], name=op.f('fk_promotion_redemptions_promotion_id_promotions')),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_promotion_redemptions')),
        sa.UniqueConstraint('promotion_id', 'quote_id', 'patient_id', name=op.f('uq_promotion_redemptions_promotion_id')),
    )
    op.create_index(op.f('ix_promotion_redemptions_quote_id'), 'promotion_redemptions', ['quote_id'])
    with op.batch_alter_table('quotes') as batch:
        batch.add_column(sa.Column('promotion_code', sa.String(length=40), nullable=True))
    with op.batch_alter_table('quote_lines') as batch:
        batch.add_column(sa.Column('base_amount', sa.BigInteger(), nullable=True))
        batch.add_column(sa.Column('sliding_percent', sa.Integer(), nullable=True))
        batch.add_column(sa.Column('sliding_reason', sa.String(length=200), nullable=True))
        batch.add_column(sa.Column('sliding_approved_by', sa.String(length=200), nullable=True))
        batch.add_column(sa.Column('sliding_amount', sa.BigInteger(), nullable=False, server_default='0'))
        batch.add_column(sa.Column('promotion_amount', sa.BigInteger(), nullable=False, server_default='0'))
    with op.batch_alter_table('invoice_lines') as batch:
        batch.add_column(sa.Column('base_amount', sa.BigInteger(), nullable=True))
        batch.add_column(sa.Column('sliding_percent', sa.Integer(), nullable=True))
        batch.add_column(sa.Column('sliding_reason', sa.String(length=200), nullable=True))
        batch.add_column(sa.Column('sliding_approved_by', sa.String(length=200), nullable=True))
        batch.add_column(sa.Column('sliding_amount', sa.BigInteger(), nullable=False, server_default='0'))
        batch.add_column(sa.Column('promotion_code', sa.String(length=40), nullable=True))
        batch.add_column(sa.Column('promotion_amount', sa.BigInteger(), nullable=False, server_default='0'))


def downgrade() -> None:
    with op.batch_alter_table('invoice_lines') as batch:
        for name in ('promotion_amount', 'promotion_code', 'sliding_amount', 'sliding_approved_by',
                     'sliding_reason', 'sliding_percent', 'base_amount'):
            batch.drop_column(name)
    with op.batch_alter_table('quote_lines') as batch:
        for name in ('promotion_amount', 'sliding_amount', 'sliding_approved_by', 'sliding_reason',
                     'sliding_percent', 'base_amount'):
            batch.drop_column(name)
    with op.batch_alter_table('quotes') as batch:
        batch.drop_column('promotion_code')
    op.drop_table('promotion_redemptions')
    op.drop_table('promotions')
