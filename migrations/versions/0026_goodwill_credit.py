"""goodwill credit: staff may grant a patient credit that no money paid (approved, with
a reason), kept apart in the balance as credit that is never refunded; the journal posts
each grant once; a bank's name fits where a card's brand is kept

Revision ID: 0026
Revises: 0025
Create Date: 2026-12-05 20:35:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0026"
down_revision: str | None = "0025"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("account_movements") as batch:
        batch.add_column(sa.Column("approved_by", sa.String(length=200), nullable=True))
        batch.create_index("ix_account_movements_kind_created_at", ["kind", "created_at"])
    with op.batch_alter_table("account_balances") as batch:
        batch.add_column(
            sa.Column("goodwill", sa.BigInteger(), server_default="0", nullable=False)
        )
        batch.create_check_constraint(
            op.f("ck_account_balances_goodwill_within_credit"), "goodwill >= 0 AND goodwill <= credit"
        )
    with op.batch_alter_table("payments") as batch:
        # "CITIZENS BANK, NATIONAL ASSOCIATION": a bank's name, kept where a card's brand is.
        batch.alter_column(
            "card_brand", existing_type=sa.String(length=32), type_=sa.String(length=64)
        )
    with op.batch_alter_table("journal_postings") as batch:
        batch.add_column(sa.Column("account_movement_id", sa.String(length=32), nullable=True))
        batch.create_unique_constraint(
            "uq_journal_postings_account_movement_id", ["account_movement_id"]
        )
        batch.create_foreign_key(
            "fk_journal_postings_account_movement_id_account_movements",
            "account_movements",
            ["account_movement_id"],
            ["id"],
        )


def downgrade() -> None:
    with op.batch_alter_table("payments") as batch:
        batch.alter_column(
            "card_brand", existing_type=sa.String(length=64), type_=sa.String(length=32)
        )
    with op.batch_alter_table("account_balances") as batch:
        batch.drop_constraint(op.f("ck_account_balances_goodwill_within_credit"), type_="check")
        batch.drop_column("goodwill")
    with op.batch_alter_table("journal_postings") as batch:
        batch.drop_constraint("fk_journal_postings_account_movement_id_account_movements", type_="foreignkey")
        batch.drop_constraint("uq_journal_postings_account_movement_id", type_="unique")
        batch.drop_column("account_movement_id")
    with op.batch_alter_table("account_movements") as batch:
        batch.drop_index("ix_account_movements_kind_created_at")
        batch.drop_column("approved_by")
