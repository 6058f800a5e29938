"""routes, incidents, timeline, slack outbox

The route registry is backfilled from stored events.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-26 20:00:45.956511
"""

from alembic import op
import sqlalchemy as sa
import sqlmodel


revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('incidents',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('number', sa.Integer(), nullable=False),
    sa.Column('incident_class', sqlmodel.sql.sqltypes.AutoString(length=20), nullable=False),
    sa.Column('severity', sqlmodel.sql.sqltypes.AutoString(length=10), nullable=False),
    sa.Column('status', sqlmodel.sql.sqltypes.AutoString(length=20), nullable=False),
    sa.Column('symptom', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('routes', sa.JSON(), nullable=False),
    sa.Column('envs', sa.JSON(), nullable=False),
    sa.Column('customer_tiers', sa.JSON(), nullable=False),
    sa.Column('channel_id', sqlmodel.sql.sqltypes.AutoString(length=50), nullable=True),
    sa.Column('origin_channel_id', sqlmodel.sql.sqltypes.AutoString(length=50), nullable=True),
    sa.Column('thread_ts', sqlmodel.sql.sqltypes.AutoString(length=50), nullable=True),
    sa.Column('commander', sqlmodel.sql.sqltypes.AutoString(length=50), nullable=False),
    sa.Column('started_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.Column('mitigated_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
    sa.Column('closed_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
    sa.Column('updated_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.Column('summary', sqlmodel.sql.sqltypes.AutoString(), nullable=True),
    sa.Column('request_key', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=True),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('number'),
    sa.UniqueConstraint('request_key')
    )
    with op.batch_alter_table('incidents', schema=None) as batch_op:
        batch_op.create_index('ix_incidents_channel_status', ['channel_id', 'status'], unique=False)

    op.create_table('routes',
    sa.Column('route', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
    sa.Column('first_seen', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.Column('last_seen', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.PrimaryKeyConstraint('route')
    )
    # Backfill the route registry from events already stored.
    op.execute(
        "INSERT INTO routes (route, first_seen, last_seen) "
        "SELECT route, min(ts), max(ts) FROM events GROUP BY route"
    )
    op.create_table('slack_outbox',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('key', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
    sa.Column('kind', sqlmodel.sql.sqltypes.AutoString(length=20), nullable=False),
    sa.Column('incident_number', sa.Integer(), nullable=True),
    sa.Column('channel', sqlmodel.sql.sqltypes.AutoString(length=50), nullable=True),
    sa.Column('payload', sa.JSON(), nullable=False),
    sa.Column('status', sqlmodel.sql.sqltypes.AutoString(length=20), nullable=False),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('next_attempt_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.Column('last_error', sqlmodel.sql.sqltypes.AutoString(), nullable=True),
    sa.Column('result_ts', sqlmodel.sql.sqltypes.AutoString(length=50), nullable=True),
    sa.Column('created_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.Column('sent_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('key')
    )
    with op.batch_alter_table('slack_outbox', schema=None) as batch_op:
        batch_op.create_index('ix_slack_outbox_due', ['status', 'next_attempt_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_slack_outbox_incident_number'), ['incident_number'], unique=False)

    op.create_table('slack_seen_requests',
    sa.Column('key', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
    sa.Column('seen_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.PrimaryKeyConstraint('key')
    )
    with op.batch_alter_table('slack_seen_requests', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_slack_seen_requests_seen_at'), ['seen_at'], unique=False)

    op.create_table('timeline_entries',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('incident_id', sa.Integer(), nullable=False),
    sa.Column('ts', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.Column('actor', sqlmodel.sql.sqltypes.AutoString(length=50), nullable=False),
    sa.Column('kind', sqlmodel.sql.sqltypes.AutoString(length=30), nullable=False),
    sa.Column('text', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('before', sa.JSON(), nullable=True),
    sa.Column('after', sa.JSON(), nullable=True),
    sa.ForeignKeyConstraint(['incident_id'], ['incidents.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('timeline_entries', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_timeline_entries_incident_id'), ['incident_id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('timeline_entries', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_timeline_entries_incident_id'))

    op.drop_table('timeline_entries')
    with op.batch_alter_table('slack_seen_requests', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_slack_seen_requests_seen_at'))

    op.drop_table('slack_seen_requests')
    with op.batch_alter_table('slack_outbox', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_slack_outbox_incident_number'))
        batch_op.drop_index('ix_slack_outbox_due')

    op.drop_table('slack_outbox')
    op.drop_table('routes')
    with op.batch_alter_table('incidents', schema=None) as batch_op:
        batch_op.drop_index('ix_incidents_channel_status')

    op.drop_table('incidents')
