"""events, webhook endpoints and deliveries, emails, job leases; quote and link expiry

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-01 08:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op


revision: str = '0009'
down_revision: str | None = '0008'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _id() -> sa.types.TypeEngine:
    return sa.BigInteger().with_variant(sa.Integer(), 'sqlite')


def upgrade() -> None:
    postgresql = op.get_bind().dialect.name == 'postgresql'
    # PostgreSQL: the writing transaction's id, so the feed can be read without gaps.
    xid_default = sa.text('(pg_current_xact_id()::text::bigint)') if postgresql else None
    op.create_table(
        'events',
        sa.Column('id', _id(), nullable=False),
        sa.Column('public_id', sa.String(length=32), nullable=False),
        sa.Column('type', sa.String(length=64), nullable=False),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('data', sa.Text(), nullable=False),
        sa.Column('xid', sa.BigInteger(), nullable=True, server_default=xid_default),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_events')),
        sa.UniqueConstraint('public_id', name=op.f('uq_events_public_id')),
    )
    op.create_index('ix_events_type', 'events', ['type'])
    op.create_index('ix_events_order', 'events', ['xid', 'id'])
    op.create_table(
        'webhook_endpoints',
        sa.Column('id', sa.String(length=32), nullable=False),
        sa.Column('url', sa.String(length=2048), nullable=False),
        sa.Column('description', sa.String(length=200), nullable=True),
        sa.Column('event_types', sa.Text(), nullable=False),
        sa.Column('secret', sa.String(length=80), nullable=False),
        sa.Column('status', sa.String(length=16), nullable=False),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('failing_since', sa.DateTime(timezone=True), nullable=True),
        sa.Column('disabled_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('disabled_reason', sa.String(length=200), nullable=True),
        sa.Column('deleted_at', sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_webhook_endpoints')),
    )
    op.create_table(
        'webhook_deliveries',
        sa.Column('id', sa.String(length=32), nullable=False),
        sa.Column('endpoint_id', sa.String(length=32), nullable=False),
        sa.Column('event_id', _id(), nullable=False),
        sa.Column('status', sa.String(length=16), nullable=False),
        sa.Column('attempts', sa.Integer(), nullable=False),
        sa.Column('next_attempt_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('lease_until', sa.DateTime(timezone=True), nullable=True),
        sa.Column('last_attempt_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('last_status_code', sa.Integer(), nullable=True),
        sa.Column('last_error', sa.String(length=500), nullable=True),
        sa.Column('delivered_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(['endpoint_id'], ['webhook_endpoints.id'], name=op.f('fk_webhook_deliveries_endpoint_id_webhook_endpoints')),
        sa.ForeignKeyConstraint(['event_id'], ['events.id'], name=op.f('fk_webhook_deliveries_event_id_events')),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_webhook_deliveries')),
    )
    op.create_index('ix_webhook_deliveries_due', 'webhook_deliveries', ['status', 'next_attempt_at'])
    op.create_index('ix_webhook_deliveries_endpoint', 'webhook_deliveries', ['endpoint_id', 'created_at'])
    op.create_index(op.f('ix_webhook_deliveries_event_id'), 'webhook_deliveries', ['event_id'])
    op.create_table(
        'webhook_attempts',
        sa.Column('id', _id(), nullable=False),
        sa.Column('delivery_id', sa.String(length=32), nullable=False),
        sa.Column('attempted_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('status_code', sa.Integer(), nullable=True),
        sa.Column('error', sa.String(length=500), nullable=True),
        sa.Column('duration_ms', sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(['delivery_id'], ['webhook_deliveries.id'], name=op.f('fk_webhook_attempts_delivery_id_webhook_deliveries')),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_webhook_attempts')),
    )
    op.create_index(op.f('ix_webhook_attempts_delivery_id'), 'webhook_attempts', ['delivery_id'])
    op.create_table(
        'email_messages',
        sa.Column('id', sa.String(length=32), nullable=False),
        sa.Column('dedupe_key', sa.String(length=128), nullable=False),
        sa.Column('kind', sa.String(length=32), nullable=False),
        sa.Column('invoice_id', sa.String(length=32), nullable=True),
        sa.Column('to_address', sa.String(length=254), nullable=False),
        sa.Column('subject', sa.String(length=200), nullable=False),
        sa.Column('text_body', sa.Text(), nullable=False),
        sa.Column('html_body', sa.Text(), nullable=False),
        sa.Column('status', sa.String(length=16), nullable=False),
        sa.Column('attempts', sa.Integer(), nullable=False),
        sa.Column('next_attempt_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('lease_until', sa.DateTime(timezone=True), nullable=True),
        sa.Column('sent_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('last_error', sa.String(length=500), nullable=True),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(['invoice_id'], ['invoices.id'], name=op.f('fk_email_messages_invoice_id_invoices')),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_email_messages')),
        sa.UniqueConstraint('dedupe_key', name=op.f('uq_email_messages_dedupe_key')),
    )
    op.create_index('ix_email_messages_due', 'email_messages', ['status', 'next_attempt_at'])
    op.create_index(op.f('ix_email_messages_invoice_id'), 'email_messages', ['invoice_id'])
    op.create_table(
        'job_leases',
        sa.Column('name', sa.String(length=64), nullable=False),
        sa.Column('holder', sa.String(length=128), nullable=True),
        sa.Column('until', sa.DateTime(timezone=True), nullable=True),
        sa.Column('last_started_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('last_finished_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('last_error', sa.String(length=500), nullable=True),
        sa.Column('cursor', sa.String(length=64), nullable=True),
        sa.PrimaryKeyConstraint('name', name=op.f('pk_job_leases')),
    )
    with op.batch_alter_table('quotes') as batch:
        batch.add_column(sa.Column('expired_at', sa.DateTime(timezone=True), nullable=True))
    with op.batch_alter_table('pay_links') as batch:
        batch.add_column(sa.Column('expired_at', sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('pay_links') as batch:
        batch.drop_column('expired_at')
    with op.batch_alter_table('quotes') as batch:
        batch.drop_column('expired_at')
    op.drop_table('job_leases')
    op.drop_index(op.f('ix_email_messages_invoice_id'), table_name='email_messages')
    op.drop_index('ix_email_messages_due', table_name='email_messages')
    op.drop_table('email_messages')
    op.drop_index(op.f('ix_webhook_attempts_delivery_id'), table_name='webhook_attempts')
    op.drop_table('webhook_attempts')
    op.drop_index(op.f('ix_webhook_deliveries_event_id'), table_name='webhook_deliveries')
    op.drop_index('ix_webhook_deliveries_endpoint', table_name='webhook_deliveries')
    op.drop_index('ix_webhook_deliveries_due', table_name='webhook_deliveries')
    op.drop_table('webhook_deliveries')
    op.drop_index('ix_events_order', table_name='events')
    op.drop_index('ix_events_type', table_name='events')
    op.drop_table('events')
