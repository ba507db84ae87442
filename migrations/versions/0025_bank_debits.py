"""bank debits (ACH): a patient's bank account on file, the mandate a saved payment
method is debited under, and what a payment was made with (a card or a bank account)

Revision ID: 0025
Revises: 0024
Create Date: 2026-12-05 19:40:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0025"
down_revision: str | None = "0024"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("patients") as batch:
        batch.add_column(sa.Column("bank_payment_method_id", sa.String(length=255), nullable=True))
        batch.add_column(sa.Column("bank_name", sa.String(length=64), nullable=True))
        batch.add_column(sa.Column("bank_last4", sa.String(length=4), nullable=True))
    with op.batch_alter_table("card_consents") as batch:
        batch.add_column(sa.Column("mandate_id", sa.String(length=255), nullable=True))
    with op.batch_alter_table("payments") as batch:
        batch.add_column(sa.Column("source", sa.String(length=24), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("payments") as batch:
        batch.drop_column("source")
    with op.batch_alter_table("card_consents") as batch:
        batch.drop_column("mandate_id")
    with op.batch_alter_table("patients") as batch:
        for column in ("bank_last4", "bank_name", "bank_payment_method_id"):
            batch.drop_column(column)
