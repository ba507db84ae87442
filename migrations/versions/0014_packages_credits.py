"""packages and credits: catalogue packages, those sold to patients, credit holds and
refunds of unused credits; invoices without a quote (a package's)

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-01 12:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op


revision: str = '0014'
down_revision: str | None = '0013'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BIG_ID = sa.BigInteger().with_variant(sa.Integer(), 'sqlite')
WHEN = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        'packages',
        sa.Column('id', sa.String(length=32), nullable=False),
        sa.Column('code', sa.String(length=40), nullable=False),
        sa.Column('version', sa.Integer(), nullable=False),
        sa.Column('name', sa.String(length=200), nullable=False),
        sa.Column('iv_credits', sa.Integer(), nullable=False),
        sa.Column('amount', sa.BigInteger(), nullable=False),
        sa.Column('currency', sa.String(length=3), nullable=False),
        sa.Column('valid_days', sa.Integer(), nullable=False),
        sa.Column('created_at', WHEN, nullable=False),
        sa.Column('retired_at', WHEN, nullable=True),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_packages')),
        sa.UniqueConstraint('code', 'version', name=op.f('uq_packages_code')),
    )
    op.create_table(
        'patient_packages',
        sa.Column('id', sa.String(length=32), nullable=False),
        sa.Column('patient_id', sa.String(length=64), nullable=False),
        sa.Column('package_id', sa.String(length=32), nullable=False),
        sa.Column('code', sa.String(length=40), nullable=False),
        sa.Column('name', sa.String(length=200), nullable=False),
        sa.Column('half_credits', sa.Integer(), nullable=False),
        sa.Column('amount', sa.BigInteger(), nullable=False),
        sa.Column('currency', sa.String(length=3), nullable=False),
        sa.Column('valid_days', sa.Integer(), nullable=False),
        sa.Column('invoice_id', sa.String(length=32), nullable=False),
        sa.Column('sold_at', WHEN, nullable=False),
        sa.Column('paid_at', WHEN, nullable=True),
        sa.Column('expires_at', WHEN, nullable=True),
        sa.ForeignKeyConstraint(['package_id'], ['packages.id'], name=op.f('fk_patient_packages_package_id_packages')),
        sa.ForeignKeyConstraint(['invoice_id'], ['invoices.id'], name=op.f('fk_patient_packages_invoice_id_invoices')),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_patient_packages')),
        sa.UniqueConstraint('invoice_id', name=op.f('uq_patient_packages_invoice_id')),
    )
    op.create_index(op.f('ix_patient_packages_patient_id'), 'patient_packages', ['patient_id'])
    op.create_table(
        'credit_holds',
        sa.Column('id', BIG_ID, nullable=False),
        sa.Column('patient_package_id', sa.String(length=32), nullable=False),
        sa.Column('patient_id', sa.String(length=64), nullable=False),
        sa.Column('quote_id', sa.String(length=32), nullable=False),
        sa.Column('half_credits', sa.Integer(), nullable=False),
        sa.Column('expires_at', WHEN, nullable=False),
        sa.Column('invoice_id', sa.String(length=32), nullable=True),
        sa.Column('used_at', WHEN, nullable=True),
        sa.Column('returned_at', WHEN, nullable=True),
        sa.Column('created_at', WHEN, nullable=False),
        sa.ForeignKeyConstraint(['patient_package_id'], ['patient_packages.id'], name=op.f('fk_credit_holds_patient_package_id_patient_packages')),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_credit_holds')),
        sa.UniqueConstraint('quote_id', 'patient_id', 'patient_package_id', name=op.f('uq_credit_holds_quote_id')),
    )
    for column in ('patient_package_id', 'patient_id', 'quote_id', 'invoice_id'):
        op.create_index(op.f(f'ix_credit_holds_{column}'), 'credit_holds', [column])
    op.create_table(
        'credit_refunds',
        sa.Column('id', sa.String(length=32), nullable=False),
        sa.Column('patient_package_id', sa.String(length=32), nullable=False),
        sa.Column('half_credits', sa.Integer(), nullable=False),
        sa.Column('amount', sa.BigInteger(), nullable=False),
        sa.Column('currency', sa.String(length=3), nullable=False),
        sa.Column('reason', sa.String(length=500), nullable=False),
        sa.Column('refund_id', sa.String(length=32), nullable=True),
        sa.Column('failed_at', WHEN, nullable=True),
        sa.Column('created_at', WHEN, nullable=False),
        sa.ForeignKeyConstraint(['patient_package_id'], ['patient_packages.id'], name=op.f('fk_credit_refunds_patient_package_id_patient_packages')),
        sa.ForeignKeyConstraint(['refund_id'], ['refunds.id'], name=op.f('fk_credit_refunds_refund_id_refunds')),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_credit_refunds')),
    )
    op.create_index(op.f('ix_credit_refunds_patient_package_id'), 'credit_refunds', ['patient_package_id'])
    with op.batch_alter_table('quote_lines') as batch:
        batch.add_column(sa.Column('credit_units', sa.Integer(), nullable=False, server_default='0'))
    with op.batch_alter_table('invoice_lines') as batch:
        batch.add_column(sa.Column('credit_units', sa.Integer(), nullable=False, server_default='0'))
    with op.batch_alter_table('estimates') as batch:
        batch.add_column(sa.Column('package_code', sa.String(length=40), nullable=False, server_default=''))
        batch.drop_constraint('uq_estimates_quote_id', type_='unique')
        batch.create_unique_constraint(
            op.f('uq_estimates_quote_id'),
            ['quote_id', 'patient_id', 'sessions', 'course_months', 'requested', 'package_code'],
        )
    with op.batch_alter_table('invoices') as batch:
        batch.alter_column('quote_id', existing_type=sa.String(length=32), nullable=True)
        batch.alter_column('booking_id', existing_type=sa.String(length=64), nullable=True)


def downgrade() -> None:
    # A database that sold packages cannot go back: their invoices have no quote, and
    # making the column NOT NULL again fails rather than lose them.
    op.drop_table('credit_refunds')
    op.drop_table('credit_holds')
    op.drop_table('patient_packages')
    op.drop_table('packages')
    with op.batch_alter_table('invoices') as batch:
        batch.alter_column('booking_id', existing_type=sa.String(length=64), nullable=False)
        batch.alter_column('quote_id', existing_type=sa.String(length=32), nullable=False)
    with op.batch_alter_table('estimates') as batch:
        batch.drop_constraint('uq_estimates_quote_id', type_='unique')
        batch.create_unique_constraint(
            op.f('uq_estimates_quote_id'),
            ['quote_id', 'patient_id', 'sessions', 'course_months', 'requested'],
        )
        batch.drop_column('package_code')
    with op.batch_alter_table('invoice_lines') as batch:
        batch.drop_column('credit_units')
    with op.batch_alter_table('quote_lines') as batch:
        batch.drop_column('credit_units')
