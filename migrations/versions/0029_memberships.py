"""Memberships: catalogue versions, patients' memberships and their periods, the revenue
closed months recognised; the membership that priced a quote line; credits a membership
period includes (a patient package without a catalogue package)

Revision ID: 0029
Revises: 0028
Create Date: 2026-12-06 01:10:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0029"
down_revision: str | None = "0028"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

WHEN = sa.DateTime(timezone=True)
LIVE_MEMBERSHIP = sa.text("status != 'cancelled'")


def upgrade() -> None:
    op.create_table(
        "membership_plans",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("code", sa.String(length=40), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("interval", sa.String(length=8), nullable=False),
        sa.Column("amount", sa.BigInteger(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("benefit", sa.String(length=24), nullable=False),
        sa.Column("benefit_value", sa.BigInteger(), nullable=False),
        sa.Column("created_at", WHEN, nullable=False),
        sa.Column("retired_at", WHEN, nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("code", "version"),
    )
    op.create_table(
        "memberships",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("patient_id", sa.String(length=64), nullable=False),
        sa.Column("membership_plan_id", sa.String(length=32), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("starts_on", sa.Date(), nullable=False),
        sa.Column("anchor_on", sa.Date(), nullable=False),
        sa.Column("anchor_number", sa.Integer(), nullable=False),
        sa.Column("prorated", sa.Boolean(), nullable=False),
        sa.Column("payment_method_id", sa.String(length=255), nullable=False),
        sa.Column("card_brand", sa.String(length=64), nullable=True),
        sa.Column("card_last4", sa.String(length=4), nullable=True),
        sa.Column("consent_text", sa.Text(), nullable=False),
        sa.Column("consent_accepted", sa.String(length=16), nullable=False),
        sa.Column("agreed_at", WHEN, nullable=False),
        sa.Column("ip_address", sa.String(length=45), nullable=True),
        sa.Column("user_agent", sa.String(length=500), nullable=True),
        sa.Column("patient_name", sa.String(length=200), nullable=False),
        sa.Column("patient_email", sa.String(length=254), nullable=True),
        sa.Column("ends_on", sa.Date(), nullable=True),
        sa.Column("cancelled_at", WHEN, nullable=True),
        sa.Column("cancel_reason", sa.String(length=500), nullable=True),
        sa.Column("cancel_refund", sa.String(length=8), nullable=True),
        sa.Column("paused_from", sa.Date(), nullable=True),
        sa.Column("resumes_on", sa.Date(), nullable=True),
        sa.Column("api_key_id", sa.Integer(), nullable=True),
        sa.Column("created_at", WHEN, nullable=False),
        sa.Column("updated_at", WHEN, nullable=False),
        sa.ForeignKeyConstraint(["api_key_id"], ["api_keys.id"]),
        sa.ForeignKeyConstraint(["membership_plan_id"], ["membership_plans.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_memberships_patient_id", "memberships", ["patient_id"])
    op.create_index(
        "uq_memberships_live_patient",
        "memberships",
        ["patient_id"],
        unique=True,
        sqlite_where=LIVE_MEMBERSHIP,
        postgresql_where=LIVE_MEMBERSHIP,
    )
    op.create_table(
        "membership_periods",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("membership_id", sa.String(length=32), nullable=False),
        sa.Column("number", sa.Integer(), nullable=False),
        sa.Column("starts_on", sa.Date(), nullable=False),
        sa.Column("ends_on", sa.Date(), nullable=False),
        sa.Column("amount", sa.BigInteger(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("half_credits", sa.Integer(), nullable=False),
        sa.Column("invoice_id", sa.String(length=32), nullable=False),
        sa.Column("scheduled_charge_id", sa.String(length=32), nullable=True),
        sa.Column("created_at", WHEN, nullable=False),
        sa.ForeignKeyConstraint(["invoice_id"], ["invoices.id"]),
        sa.ForeignKeyConstraint(["membership_id"], ["memberships.id"]),
        sa.ForeignKeyConstraint(["scheduled_charge_id"], ["scheduled_charges.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("invoice_id"),
        sa.UniqueConstraint("membership_id", "number"),
        sa.UniqueConstraint("scheduled_charge_id"),
    )
    op.create_index(
        "ix_membership_periods_membership_id", "membership_periods", ["membership_id"]
    )
    op.create_table(
        "membership_revenue",
        sa.Column("period_id", sa.String(length=32), nullable=False),
        sa.Column("month", sa.String(length=7), nullable=False),
        sa.Column("amount", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(["period_id"], ["membership_periods.id"]),
        sa.PrimaryKeyConstraint("period_id", "month"),
    )
    with op.batch_alter_table("quote_lines") as batch:
        batch.add_column(sa.Column("membership_id", sa.String(length=32), nullable=True))
        batch.add_column(
            sa.Column("member_saving", sa.BigInteger(), server_default="0", nullable=False)
        )
    with op.batch_alter_table("invoice_lines") as batch:
        batch.add_column(sa.Column("membership_id", sa.String(length=32), nullable=True))
        batch.add_column(
            sa.Column("member_saving", sa.BigInteger(), server_default="0", nullable=False)
        )
    with op.batch_alter_table("patient_packages") as batch:
        batch.alter_column("package_id", existing_type=sa.String(length=32), nullable=True)


def downgrade() -> None:
    with op.batch_alter_table("patient_packages") as batch:
        batch.alter_column("package_id", existing_type=sa.String(length=32), nullable=False)
    for table in ("invoice_lines", "quote_lines"):
        with op.batch_alter_table(table) as batch:
            batch.drop_column("member_saving")
            batch.drop_column("membership_id")
    op.drop_table("membership_revenue")
    op.drop_index("ix_membership_periods_membership_id", table_name="membership_periods")
    op.drop_table("membership_periods")
    op.drop_index("uq_memberships_live_patient", table_name="memberships")
    op.drop_index("ix_memberships_patient_id", table_name="memberships")
    op.drop_table("memberships")
    op.drop_table("membership_plans")
