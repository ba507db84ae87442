"""goodwill credit: staff may grant a patient credit that no money paid (approved, with
a reason); the journal posts each grant once

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
    with op.batch_alter_table("journal_postings") as batch:
        batch.drop_constraint("fk_journal_postings_account_movement_id_account_movements", type_="foreignkey")
        batch.drop_constraint("uq_journal_postings_account_movement_id", type_="unique")
        batch.drop_column("account_movement_id")
    with op.batch_alter_table("account_movements") as batch:
        batch.drop_column("approved_by")
