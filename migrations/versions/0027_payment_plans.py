"""payment plans: an invoice's balance in instalments charged to a saved card on their
days, with the patient's consent; the charges the scheduler owes, with their retries; a
card's decline code kept with the payment

Revision ID: 0027
Revises: 0026
Create Date: 2026-12-05 22:10:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0027"
down_revision: str | None = "0026"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

LIVE_PLAN = sa.text("status != 'cancelled'")


def upgrade() -> None:
    op.create_table(
        "payment_plans",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("invoice_id", sa.String(length=32), nullable=False),
        sa.Column("patient_id", sa.String(length=64), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("amount", sa.BigInteger(), nullable=False),
        sa.Column("interval", sa.String(length=16), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("payment_method_id", sa.String(length=255), nullable=False),
        sa.Column("card_brand", sa.String(length=64), nullable=True),
        sa.Column("card_last4", sa.String(length=4), nullable=True),
        sa.Column("consent_text", sa.Text(), nullable=False),
        sa.Column("consent_accepted", sa.String(length=16), nullable=False),
        sa.Column("agreed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ip_address", sa.String(length=45), nullable=True),
        sa.Column("user_agent", sa.String(length=500), nullable=True),
        sa.Column("api_key_id", sa.Integer(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("cancelled_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("cancel_reason", sa.String(length=500), nullable=True),
        sa.ForeignKeyConstraint(["api_key_id"], ["api_keys.id"]),
        sa.ForeignKeyConstraint(["invoice_id"], ["invoices.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_payment_plans_invoice_id", "payment_plans", ["invoice_id"])
    op.create_index("ix_payment_plans_patient_id", "payment_plans", ["patient_id"])
    op.create_index(
        "uq_payment_plans_live_invoice",
        "payment_plans",
        ["invoice_id"],
        unique=True,
        sqlite_where=LIVE_PLAN,
        postgresql_where=LIVE_PLAN,
    )
    op.create_table(
        "scheduled_charges",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("invoice_id", sa.String(length=32), nullable=False),
        sa.Column("patient_id", sa.String(length=64), nullable=False),
        sa.Column("plan_id", sa.String(length=32), nullable=True),
        sa.Column("number", sa.BigInteger(), nullable=True),
        sa.Column("due_on", sa.Date(), nullable=False),
        sa.Column("amount", sa.BigInteger(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("payment_method_id", sa.String(length=255), nullable=True),
        sa.Column("attempts", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("declines", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("first_declined_on", sa.Date(), nullable=True),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("lease_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_payment_id", sa.String(length=32), nullable=True),
        sa.Column("failure_code", sa.String(length=64), nullable=True),
        sa.Column("amount_paid", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("paid_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("api_key_id", sa.Integer(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["api_key_id"], ["api_keys.id"]),
        sa.ForeignKeyConstraint(["invoice_id"], ["invoices.id"]),
        sa.ForeignKeyConstraint(["plan_id"], ["payment_plans.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("plan_id", "number"),
    )
    op.create_index("ix_scheduled_charges_invoice_id", "scheduled_charges", ["invoice_id"])
    op.create_index(
        "ix_scheduled_charges_status_next_attempt_at",
        "scheduled_charges",
        ["status", "next_attempt_at"],
    )
    with op.batch_alter_table("payments") as batch:
        batch.add_column(sa.Column("decline_code", sa.String(length=64), nullable=True))
        batch.add_column(sa.Column("scheduled_charge_id", sa.String(length=32), nullable=True))
        batch.create_index("ix_payments_scheduled_charge_id", ["scheduled_charge_id"])


def downgrade() -> None:
    with op.batch_alter_table("payments") as batch:
        batch.drop_index("ix_payments_scheduled_charge_id")
        batch.drop_column("scheduled_charge_id")
        batch.drop_column("decline_code")
    op.drop_index("ix_scheduled_charges_status_next_attempt_at", table_name="scheduled_charges")
    op.drop_index("ix_scheduled_charges_invoice_id", table_name="scheduled_charges")
    op.drop_table("scheduled_charges")
    op.drop_index("uq_payment_plans_live_invoice", table_name="payment_plans")
    op.drop_index("ix_payment_plans_patient_id", table_name="payment_plans")
    op.drop_index("ix_payment_plans_invoice_id", table_name="payment_plans")
    op.drop_table("payment_plans")
