"""booking lifecycle: cancellation policies in the price list, bookings and their seats,
fee invoices, and the consent with which a card was saved

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-01 10:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op


revision: str = '0011'
down_revision: str | None = '0010'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Price versions made before policies existed carry the default policy.
    with op.batch_alter_table('price_versions') as batch:
        batch.add_column(sa.Column('notice_hours', sa.Integer(), nullable=False, server_default='48'))
        batch.add_column(sa.Column('late_cancellation_fee_percent', sa.Integer(), nullable=True, server_default='50'))
        batch.add_column(sa.Column('late_cancellation_fee_amount', sa.BigInteger(), nullable=True))
        batch.add_column(sa.Column('no_show_fee_percent', sa.Integer(), nullable=True, server_default='0'))
        batch.add_column(sa.Column('no_show_fee_amount', sa.BigInteger(), nullable=True))
    with op.batch_alter_table('price_versions') as batch:  # the defaults served the old rows
        batch.alter_column('late_cancellation_fee_percent', server_default=None)
        batch.alter_column('no_show_fee_percent', server_default=None)

    # A fee is an invoice of its own: one session invoice per patient and quote, any number
    # of fee invoices beside it.
    with op.batch_alter_table('invoices') as batch:
        batch.add_column(sa.Column('kind', sa.String(length=16), nullable=False, server_default='session'))
        batch.add_column(sa.Column('fee_reason', sa.String(length=32), nullable=True))
        batch.drop_constraint('uq_invoices_quote_id', type_='unique')
    op.create_index(
        'uq_invoices_session_seat', 'invoices', ['quote_id', 'patient_id'], unique=True,
        sqlite_where=sa.text("kind = 'session'"), postgresql_where=sa.text("kind = 'session'"),
    )
    with op.batch_alter_table('invoice_lines') as batch:
        batch.add_column(sa.Column('billing_code', sa.String(length=32), nullable=True))
    # The pay page's "save this card" consent, kept on the payment until it succeeds.
    with op.batch_alter_table('payments') as batch:
        batch.add_column(sa.Column('save_card_consent', sa.Text(), nullable=True))
        batch.add_column(sa.Column('save_card_agreed_at', sa.DateTime(timezone=True), nullable=True))

    op.create_table(
        'bookings',
        sa.Column('booking_id', sa.String(length=64), nullable=False),
        sa.Column('quote_id', sa.String(length=32), nullable=False),
        sa.Column('session_type', sa.String(length=32), nullable=False),
        sa.Column('currency', sa.String(length=3), nullable=False),
        sa.Column('scheduled_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('state', sa.String(length=24), nullable=False),
        sa.Column('api_key_id', sa.Integer(), nullable=True),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(['quote_id'], ['quotes.id'], name=op.f('fk_bookings_quote_id_quotes')),
        sa.ForeignKeyConstraint(['api_key_id'], ['api_keys.id'], name=op.f('fk_bookings_api_key_id_api_keys')),
        sa.PrimaryKeyConstraint('booking_id', name=op.f('pk_bookings')),
    )
    op.create_table(
        'booking_seats',
        sa.Column('quote_id', sa.String(length=32), nullable=False),
        sa.Column('patient_id', sa.String(length=64), nullable=False),
        sa.Column('booking_id', sa.String(length=64), nullable=False),
        sa.Column('invoice_id', sa.String(length=32), nullable=False),
        sa.Column('attendance', sa.String(length=16), nullable=True),
        sa.Column('attendance_marked_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('cancelled_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('cancelled_by', sa.String(length=16), nullable=True),
        sa.Column('cancellation_late', sa.Boolean(), nullable=True),
        sa.Column('fee_invoice_id', sa.String(length=32), nullable=True),
        sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(['quote_id'], ['quotes.id'], name=op.f('fk_booking_seats_quote_id_quotes')),
        sa.ForeignKeyConstraint(['invoice_id'], ['invoices.id'], name=op.f('fk_booking_seats_invoice_id_invoices')),
        sa.ForeignKeyConstraint(['fee_invoice_id'], ['invoices.id'], name=op.f('fk_booking_seats_fee_invoice_id_invoices')),
        sa.PrimaryKeyConstraint('quote_id', 'patient_id', name=op.f('pk_booking_seats')),
    )
    op.create_index(op.f('ix_booking_seats_booking_id'), 'booking_seats', ['booking_id'])
    op.create_index('ix_booking_seats_patient_attendance', 'booking_seats', ['patient_id', 'attendance'])

    op.create_table(
        'card_consents',
        sa.Column('payment_method_id', sa.String(length=255), nullable=False),
        sa.Column('patient_id', sa.String(length=64), nullable=False),
        sa.Column('consent_text', sa.Text(), nullable=True),
        sa.Column('agreed_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('invoice_id', sa.String(length=32), nullable=True),
        sa.Column('hsa_fsa', sa.Boolean(), nullable=False, server_default=sa.false()),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('removed_at', sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint('payment_method_id', name=op.f('pk_card_consents')),
    )
    op.create_index(op.f('ix_card_consents_patient_id'), 'card_consents', ['patient_id'])
    _backfill_bookings()


def _backfill_bookings() -> None:
    """Bookings invoiced before this migration: the newest invoiced quote of each becomes
    the booking, its invoices its places. Invoices of older quotes of the same booking get
    no place, so nothing treats them as superseded: they stay as they were. Every value is
    copied in SQL, so each database keeps its own way of storing times."""
    bind = op.get_bind()
    rows = bind.execute(sa.text(
        "SELECT q.id, q.booking_id FROM quotes q"
        " WHERE EXISTS (SELECT 1 FROM invoices i WHERE i.quote_id = q.id)"
        " ORDER BY q.booking_id, q.created_at DESC, q.id DESC"
    )).all()
    newest: dict[str, str] = {}
    for quote_id, booking_id in rows:
        newest.setdefault(booking_id, quote_id)
    for quote_id in newest.values():
        bind.execute(sa.text(
            "INSERT INTO bookings (booking_id, quote_id, session_type, currency, scheduled_at,"
            " state, created_at, updated_at)"
            " SELECT q.booking_id, q.id, q.session_type, q.currency, q.scheduled_at, 'active',"
            " f.first_at, f.first_at FROM quotes q"
            " JOIN (SELECT quote_id, MIN(created_at) AS first_at FROM invoices"
            " GROUP BY quote_id) f ON f.quote_id = q.id WHERE q.id = :quote_id"
        ), {"quote_id": quote_id})
        bind.execute(sa.text(
            "INSERT INTO booking_seats (quote_id, patient_id, booking_id, invoice_id, updated_at)"
            " SELECT quote_id, patient_id, booking_id, id, created_at FROM invoices"
            " WHERE quote_id = :quote_id"
        ), {"quote_id": quote_id})


def downgrade() -> None:
    # Refused by the database once fee invoices exist (two invoices of one patient and
    # quote): fees are money, and a downgrade must not drop them.
    op.drop_table('card_consents')
    op.drop_table('booking_seats')
    op.drop_table('bookings')
    with op.batch_alter_table('payments') as batch:
        batch.drop_column('save_card_agreed_at')
        batch.drop_column('save_card_consent')
    with op.batch_alter_table('invoice_lines') as batch:
        batch.drop_column('billing_code')
    op.drop_index('uq_invoices_session_seat', table_name='invoices')
    with op.batch_alter_table('invoices') as batch:
        batch.create_unique_constraint('uq_invoices_quote_id', ['quote_id', 'patient_id'])
        batch.drop_column('fee_reason')
        batch.drop_column('kind')
    with op.batch_alter_table('price_versions') as batch:
        for column in ('no_show_fee_amount', 'no_show_fee_percent', 'late_cancellation_fee_amount',
                       'late_cancellation_fee_percent', 'notice_hours'):
            batch.drop_column(column)
