"""gift cards: sold as an invoice, only the code's hash kept

Revision ID: 0023
Revises: 0022
Create Date: 2026-12-05 17:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0023"
down_revision: str | None = "0022"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "gift_cards",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("code_hash", sa.String(length=64), nullable=False),
        sa.Column("last4", sa.String(length=4), nullable=False),
        sa.Column("amount", sa.BigInteger(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("purchaser_patient_id", sa.String(length=64), nullable=False),
        sa.Column("invoice_id", sa.String(length=32), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["invoice_id"], ["invoices.id"], name=op.f("fk_gift_cards_invoice_id_invoices")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_gift_cards")),
        sa.UniqueConstraint("code_hash", name=op.f("uq_gift_cards_code_hash")),
        sa.UniqueConstraint("invoice_id", name=op.f("uq_gift_cards_invoice_id")),
    )
    op.create_index(
        op.f("ix_gift_cards_purchaser_patient_id"), "gift_cards", ["purchaser_patient_id"]
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_gift_cards_purchaser_patient_id"), table_name="gift_cards")
    op.drop_table("gift_cards")
