"""deposits: a price version may ask one when booking; a quote line states it and its
invoice keeps it

Revision ID: 0024
Revises: 0023
Create Date: 2026-12-05 18:10:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0024"
down_revision: str | None = "0023"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("price_versions") as batch:
        batch.add_column(sa.Column("deposit_for", sa.String(length=16), nullable=True))
        batch.add_column(sa.Column("deposit_percent", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("deposit_amount", sa.BigInteger(), nullable=True))
        batch.add_column(sa.Column("deposit_no_shows", sa.Integer(), nullable=True))
    for table in ("quote_lines", "invoices"):
        with op.batch_alter_table(table) as batch:
            batch.add_column(
                sa.Column("deposit", sa.BigInteger(), server_default="0", nullable=False)
            )


def downgrade() -> None:
    for table in ("invoices", "quote_lines"):
        with op.batch_alter_table(table) as batch:
            batch.drop_column("deposit")
    with op.batch_alter_table("price_versions") as batch:
        for column in ("deposit_no_shows", "deposit_amount", "deposit_percent", "deposit_for"):
            batch.drop_column(column)
