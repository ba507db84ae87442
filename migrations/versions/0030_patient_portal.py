"""The patient portal: one-time sign-in links, the sessions they open, what an email
that is about no invoice (a sign-in link) refers to, and patients' requests for their
credit back, and the addresses that asked for no monthly statement emails

Revision ID: 0030
Revises: 0029
Create Date: 2026-12-06 03:40:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0030"
down_revision: str | None = "0029"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

WHEN = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "portal_sign_ins",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("email", sa.String(length=254), nullable=False),
        sa.Column("browser_hash", sa.String(length=64), nullable=True),
        sa.Column("created_at", WHEN, nullable=False),
        sa.Column("expires_at", WHEN, nullable=False),
        sa.Column("used_at", WHEN, nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_portal_sign_ins_email", "portal_sign_ins", ["email", "created_at"])
    op.create_table(
        "portal_sessions",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("secret_hash", sa.String(length=64), nullable=False),
        sa.Column("email", sa.String(length=254), nullable=False),
        sa.Column("sign_in_id", sa.String(length=32), nullable=True),
        sa.Column("created_at", WHEN, nullable=False),
        sa.Column("seen_at", WHEN, nullable=False),
        sa.Column("ended_at", WHEN, nullable=True),
        sa.ForeignKeyConstraint(["sign_in_id"], ["portal_sign_ins.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("secret_hash"),
        sa.UniqueConstraint("sign_in_id"),
    )
    op.create_table(
        "credit_refund_requests",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("patient_id", sa.String(length=64), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("amount", sa.BigInteger(), nullable=False),
        sa.Column("asked_by", sa.String(length=254), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("refund_id", sa.String(length=32), nullable=True),
        sa.Column("note", sa.String(length=500), nullable=True),
        sa.Column("created_at", WHEN, nullable=False),
        sa.Column("closed_at", WHEN, nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(
        "ix_credit_refund_requests_patient_id", "credit_refund_requests", ["patient_id"]
    )
    op.create_index(
        "uq_credit_refund_requests_open",
        "credit_refund_requests",
        ["patient_id", "currency"],
        unique=True,
        sqlite_where=sa.text("status = 'open'"),
        postgresql_where=sa.text("status = 'open'"),
    )
    op.create_table(
        "statement_opt_outs",
        sa.Column("email", sa.String(length=254), nullable=False),
        sa.Column("created_at", WHEN, nullable=False),
        sa.PrimaryKeyConstraint("email"),
    )
    with op.batch_alter_table("email_messages") as batch:
        batch.add_column(sa.Column("ref", sa.String(length=64), nullable=True))
    # Which patients an address reaches: the portal looks invoices up by their email.
    op.create_index(
        "ix_invoices_patient_email", "invoices", [sa.text("lower(patient_email)")]
    )


def downgrade() -> None:
    op.drop_index("ix_invoices_patient_email", table_name="invoices")
    with op.batch_alter_table("email_messages") as batch:
        batch.drop_column("ref")
    op.drop_table("statement_opt_outs")
    op.drop_index("uq_credit_refund_requests_open", table_name="credit_refund_requests")
    op.drop_index("ix_credit_refund_requests_patient_id", table_name="credit_refund_requests")
    op.drop_table("credit_refund_requests")
    op.drop_table("portal_sessions")
    op.drop_index("ix_portal_sign_ins_email", table_name="portal_sign_ins")
    op.drop_table("portal_sign_ins")
