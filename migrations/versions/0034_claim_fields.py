"""What a CMS-1500 claim asks of a patient besides a superbill: sex, and their insurance
(the payer's name, the insured's id and group)

Revision ID: 0034
Revises: 0033
Create Date: 2026-12-06 09:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0034"
down_revision: str | None = "0033"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

COLUMNS = (
    ("sex", 1),
    ("insurance_payer", 100),
    ("insurance_member_id", 40),
    ("insurance_group", 40),
)


def upgrade() -> None:
    for name, length in COLUMNS:
        op.add_column("patient_profiles", sa.Column(name, sa.String(length=length)))


def downgrade() -> None:
    for name, _ in reversed(COLUMNS):
        op.drop_column("patient_profiles", name)
