"""Rendering clinicians (by NPI), and what clinical staff record of each visit at
attendance: its diagnoses and the clinician who rendered it

Revision ID: 0033
Revises: 0032
Create Date: 2026-12-06 08:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0033"
down_revision: str | None = "0032"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

WHEN = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "providers",
        sa.Column("npi", sa.String(length=10), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("credentials", sa.String(length=50), nullable=True),
        sa.Column("created_at", WHEN, nullable=False),
        sa.PrimaryKeyConstraint("npi"),
    )
    op.create_table(
        "visit_records",
        sa.Column("invoice_id", sa.String(length=32), nullable=False),
        sa.Column("patient_id", sa.String(length=64), nullable=False),
        sa.Column("diagnosis_codes", sa.String(length=120), nullable=False),
        sa.Column("rendering_npi", sa.String(length=10), nullable=True),
        sa.Column("recorded_at", WHEN, nullable=False),
        sa.ForeignKeyConstraint(["invoice_id"], ["invoices.id"]),
        sa.ForeignKeyConstraint(["rendering_npi"], ["providers.npi"]),
        sa.PrimaryKeyConstraint("invoice_id"),
    )
    op.create_index("ix_visit_records_patient_id", "visit_records", ["patient_id"])


def downgrade() -> None:
    op.drop_index("ix_visit_records_patient_id", table_name="visit_records")
    op.drop_table("visit_records")
    op.drop_table("providers")
