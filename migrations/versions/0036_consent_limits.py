"""Limits a patient sets on their consent to a saved card: the most per charge, the most
per calendar year, and the last day it may be charged

Revision ID: 0036
Revises: 0035
Create Date: 2026-12-06 10:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0036"
down_revision: str | None = "0035"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("card_consents", sa.Column("max_per_charge", sa.BigInteger()))
    op.add_column("card_consents", sa.Column("max_per_year", sa.BigInteger()))
    op.add_column("card_consents", sa.Column("expires_on", sa.Date()))


def downgrade() -> None:
    op.drop_column("card_consents", "expires_on")
    op.drop_column("card_consents", "max_per_year")
    op.drop_column("card_consents", "max_per_charge")
