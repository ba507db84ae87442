"""a saved card keeps how it was set up with Stripe (the SetupIntent, or the pay page's
payment) and the acceptance Stripe's mandate data describes: when, from which address and
browser the patient agreed to the consent text

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-05 12:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op


revision: str = '0017'
down_revision: str | None = '0016'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('card_consents') as batch:
        batch.add_column(sa.Column('ip_address', sa.String(length=45), nullable=True))
        batch.add_column(sa.Column('user_agent', sa.String(length=500), nullable=True))
        batch.add_column(sa.Column('setup_intent_id', sa.String(length=255), nullable=True))
    with op.batch_alter_table('payments') as batch:
        batch.add_column(sa.Column('save_card_ip_address', sa.String(length=45), nullable=True))
        batch.add_column(sa.Column('save_card_user_agent', sa.String(length=500), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('payments') as batch:
        batch.drop_column('save_card_user_agent')
        batch.drop_column('save_card_ip_address')
    with op.batch_alter_table('card_consents') as batch:
        batch.drop_column('setup_intent_id')
        batch.drop_column('user_agent')
        batch.drop_column('ip_address')
