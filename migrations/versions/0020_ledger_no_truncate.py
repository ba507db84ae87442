"""the ledger refuses TRUNCATE itself: it was stopped only because journal_postings
references it, which a TRUNCATE ... CASCADE would not have respected

Revision ID: 0020
Revises: 0019
Create Date: 2026-12-05 16:00:00
"""

from collections.abc import Sequence

from alembic import op


revision: str = '0020'
down_revision: str | None = '0019'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# As the audit trail (0008) and the closed months' journal (0010) do.
NO_TRUNCATE = """
CREATE TRIGGER ledger_entries_no_truncate
    BEFORE TRUNCATE ON ledger_entries
    FOR EACH STATEMENT EXECUTE FUNCTION billing_refuse_change();
REVOKE TRUNCATE ON ledger_entries FROM PUBLIC;
"""


def upgrade() -> None:
    if op.get_bind().dialect.name == 'postgresql':
        op.execute(NO_TRUNCATE)


def downgrade() -> None:
    if op.get_bind().dialect.name == 'postgresql':
        op.execute('DROP TRIGGER ledger_entries_no_truncate ON ledger_entries')
