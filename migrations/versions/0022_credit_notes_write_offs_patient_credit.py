"""credit notes and write-offs lower what an invoice owes; a patient's credit per currency
(never negative) and its movements

Revision ID: 0022
Revises: 0021
Create Date: 2026-12-05 17:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0022"
down_revision: str | None = "0021"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

WHEN = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "invoice_adjustments",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("number", sa.String(length=24), nullable=False),
        sa.Column("invoice_id", sa.String(length=32), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("amount", sa.BigInteger(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("category", sa.String(length=24), nullable=True),
        sa.Column("reason", sa.String(length=500), nullable=False),
        sa.Column("approved_by", sa.String(length=200), nullable=False),
        sa.Column("created_by", sa.String(length=254), nullable=False),
        sa.Column("created_at", WHEN, nullable=False),
        sa.Column("refunded", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("to_credit", sa.BigInteger(), server_default="0", nullable=False),
        sa.ForeignKeyConstraint(
            ["invoice_id"],
            ["invoices.id"],
            name=op.f("fk_invoice_adjustments_invoice_id_invoices"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_invoice_adjustments")),
        sa.UniqueConstraint("number", name=op.f("uq_invoice_adjustments_number")),
    )
    op.create_index(
        op.f("ix_invoice_adjustments_invoice_id"), "invoice_adjustments", ["invoice_id"]
    )
    op.create_table(
        "account_balances",
        sa.Column("patient_id", sa.String(length=64), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("credit", sa.BigInteger(), nullable=False),
        sa.Column("updated_at", WHEN, nullable=False),
        sa.CheckConstraint("credit >= 0", name=op.f("ck_account_balances_credit_not_negative")),
        sa.PrimaryKeyConstraint("patient_id", "currency", name=op.f("pk_account_balances")),
    )
    op.create_table(
        "account_movements",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("patient_id", sa.String(length=64), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("amount", sa.BigInteger(), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("invoice_id", sa.String(length=32), nullable=True),
        sa.Column("payment_id", sa.String(length=32), nullable=True),
        sa.Column("adjustment_id", sa.String(length=32), nullable=True),
        sa.Column("refund_id", sa.String(length=32), nullable=True),
        sa.Column("note", sa.String(length=500), nullable=False),
        sa.Column("created_at", WHEN, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_account_movements")),
    )
    op.create_index(op.f("ix_account_movements_patient_id"), "account_movements", ["patient_id"])
    op.create_index(op.f("ix_account_movements_invoice_id"), "account_movements", ["invoice_id"])


def downgrade() -> None:
    op.drop_index(op.f("ix_account_movements_invoice_id"), table_name="account_movements")
    op.drop_index(op.f("ix_account_movements_patient_id"), table_name="account_movements")
    op.drop_table("account_movements")
    op.drop_table("account_balances")
    op.drop_index(op.f("ix_invoice_adjustments_invoice_id"), table_name="invoice_adjustments")
    op.drop_table("invoice_adjustments")
