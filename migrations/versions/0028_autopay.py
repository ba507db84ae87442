"""AutoPay: a patient's setting (on or off, the card, the consent), and one AutoPay
charge per invoice; what queued each scheduled charge

Revision ID: 0028
Revises: 0027
Create Date: 2026-12-05 22:40:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0028"
down_revision: str | None = "0027"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

AUTOPAY = sa.text("kind = 'autopay' AND status != 'cancelled'")


def upgrade() -> None:
    op.create_table(
        "autopay_settings",
        sa.Column("patient_id", sa.String(length=64), nullable=False),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("payment_method_id", sa.String(length=255), nullable=True),
        sa.Column("card_brand", sa.String(length=64), nullable=True),
        sa.Column("card_last4", sa.String(length=4), nullable=True),
        sa.Column("consent_text", sa.Text(), nullable=True),
        sa.Column("consent_accepted", sa.String(length=16), nullable=True),
        sa.Column("agreed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("ip_address", sa.String(length=45), nullable=True),
        sa.Column("user_agent", sa.String(length=500), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("patient_id"),
    )
    with op.batch_alter_table("scheduled_charges") as batch:
        batch.add_column(sa.Column("reason", sa.String(length=32), nullable=True))
    op.create_index(
        "uq_scheduled_charges_autopay_invoice",
        "scheduled_charges",
        ["invoice_id"],
        unique=True,
        sqlite_where=AUTOPAY,
        postgresql_where=AUTOPAY,
    )


def downgrade() -> None:
    op.drop_index("uq_scheduled_charges_autopay_invoice", table_name="scheduled_charges")
    with op.batch_alter_table("scheduled_charges") as batch:
        batch.drop_column("reason")
    op.drop_table("autopay_settings")
