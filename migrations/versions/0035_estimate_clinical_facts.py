"""What a Good Faith Estimate says as it was given besides its items: the patient's date
of birth, the diagnoses known, and the convening provider's NPI; and the estimate an
updated one replaces

Revision ID: 0035
Revises: 0034
Create Date: 2026-12-06 09:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0035"
down_revision: str | None = "0034"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("estimates", sa.Column("date_of_birth", sa.Date()))
    op.add_column(
        "estimates",
        sa.Column("diagnosis_codes", sa.String(length=120), nullable=False, server_default=""),
    )
    op.add_column(
        "estimates",
        sa.Column("provider_npi", sa.String(length=10), nullable=False, server_default=""),
    )
    op.add_column("estimates", sa.Column("replaces_id", sa.String(length=32)))
    # A re-quote looks for the estimates given for its booking.
    op.create_index("ix_estimates_booking_id", "estimates", ["booking_id"])


def downgrade() -> None:
    op.drop_index("ix_estimates_booking_id", table_name="estimates")
    op.drop_column("estimates", "replaces_id")
    op.drop_column("estimates", "provider_npi")
    op.drop_column("estimates", "diagnosis_codes")
    op.drop_column("estimates", "date_of_birth")
