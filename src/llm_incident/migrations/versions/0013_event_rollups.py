"""event rollups: per route × minute × env × model aggregates and percentile sketches

event_rollups: counts, sums and DDSketch buckets (duration, tokens in/out) per minute;
rollup_state: how far the rollup job got. An existing database's events are rolled up by the
job after the upgrade (in bounded batches), not by the migration.

Revision ID: 0013
Revises: 0011
Create Date: 2026-12-05 10:00:00
"""

from alembic import op
import sqlalchemy as sa
import sqlmodel


revision = '0013'
down_revision = '0011'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'event_rollups',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('route', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
        sa.Column('minute', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.Column('env', sqlmodel.sql.sqltypes.AutoString(length=100), nullable=False),
        sa.Column('model', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=True),
        sa.Column('calls', sa.Integer(), nullable=False),
        sa.Column('flagged', sa.Integer(), nullable=False),
        sa.Column('errors', sa.Integer(), nullable=False),
        sa.Column('retries', sa.Integer(), nullable=False),
        sa.Column('priced', sa.Integer(), nullable=False),
        sa.Column('cost_usd', sa.Float(), nullable=False),
        sa.Column('n_tokens_in', sa.Integer(), nullable=False),
        sa.Column('sum_tokens_in', sa.BigInteger(), nullable=False),
        sa.Column('n_tokens_out', sa.Integer(), nullable=False),
        sa.Column('sum_tokens_out', sa.BigInteger(), nullable=False),
        sa.Column('error_codes', sa.JSON(), nullable=False),
        sa.Column('duration_sketch', sa.LargeBinary(), nullable=True),
        sa.Column('tokens_in_sketch', sa.LargeBinary(), nullable=True),
        sa.Column('tokens_out_sketch', sa.LargeBinary(), nullable=True),
        sa.PrimaryKeyConstraint('id'),
    )
    op.create_index('ix_event_rollups_route_minute', 'event_rollups', ['route', 'minute'])
    op.create_index('ix_event_rollups_minute', 'event_rollups', ['minute'])
    op.create_table(
        'rollup_state',
        sa.Column('name', sqlmodel.sql.sqltypes.AutoString(length=50), nullable=False),
        sa.Column('last_id', sa.BigInteger(), nullable=False),
        sa.Column('complete_until', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
        sa.Column('updated_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint('name'),
    )


def downgrade() -> None:
    op.drop_table('rollup_state')
    op.drop_index('ix_event_rollups_minute', table_name='event_rollups')
    op.drop_index('ix_event_rollups_route_minute', table_name='event_rollups')
    op.drop_table('event_rollups')
