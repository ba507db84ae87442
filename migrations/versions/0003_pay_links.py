"""pay links

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-24 01:39:08.261786
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op


revision: str = '0003'
down_revision: str | None = '0002'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:

    op.create_table('pay_links',
    sa.Column('id', sa.String(length=32), nullable=False),
    sa.Column('invoice_id', sa.String(length=32), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('expires_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('revoked_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['invoice_id'], ['invoices.id'], name=op.f('fk_pay_links_invoice_id_invoices')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_pay_links'))
    )
    with op.batch_alter_table('pay_links', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_pay_links_invoice_id'), ['invoice_id'], unique=False)




def downgrade() -> None:

    with op.batch_alter_table('pay_links', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_pay_links_invoice_id'))

    op.drop_table('pay_links')

