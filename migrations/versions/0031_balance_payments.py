"""Paying several bills in one payment from the patient portal: what each payment of a
patient's balance pays of each bill, planned and applied

Revision ID: 0031
Revises: 0030
Create Date: 2026-12-06 07:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0031"
down_revision: str | None = "0030"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "balance_shares",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("payment_id", sa.String(length=32), nullable=False),
        sa.Column("invoice_id", sa.String(length=32), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("amount", sa.BigInteger(), nullable=False),
        sa.Column("applied", sa.BigInteger(), nullable=True),
        sa.Column("applied_payment_id", sa.String(length=32), nullable=True),
        sa.Column("done_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["invoice_id"], ["invoices.id"]),
        sa.ForeignKeyConstraint(["payment_id"], ["payments.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("payment_id", "invoice_id"),
    )
    op.create_index("ix_balance_shares_payment_id", "balance_shares", ["payment_id"])
    op.create_index("ix_balance_shares_invoice_id", "balance_shares", ["invoice_id"])


def downgrade() -> None:
    op.drop_index("ix_balance_shares_invoice_id", table_name="balance_shares")
    op.drop_index("ix_balance_shares_payment_id", table_name="balance_shares")
    op.drop_table("balance_shares")
