"""Patients' billing profiles (date of birth, address, payer class), and why a booking's
place was charged no fee (an exempt payer class)

Revision ID: 0032
Revises: 0031
Create Date: 2026-12-06 08:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0032"
down_revision: str | None = "0031"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "patient_profiles",
        sa.Column("patient_id", sa.String(length=64), nullable=False),
        sa.Column("date_of_birth", sa.Date(), nullable=True),
        sa.Column("address_line1", sa.String(length=200), nullable=True),
        sa.Column("address_line2", sa.String(length=200), nullable=True),
        sa.Column("city", sa.String(length=100), nullable=True),
        sa.Column("state", sa.String(length=50), nullable=True),
        sa.Column("postal_code", sa.String(length=20), nullable=True),
        sa.Column("country", sa.String(length=2), nullable=True),
        sa.Column("payer_class", sa.String(length=16), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("patient_id"),
    )
    # A plain ADD COLUMN on both databases (a batch copy on SQLite would reflect the
    # invoices' expression index, which SQLAlchemy cannot).
    op.add_column("booking_seats", sa.Column("fee_exempt_reason", sa.String(length=200)))


def downgrade() -> None:
    op.drop_column("booking_seats", "fee_exempt_reason")
    op.drop_table("patient_profiles")
