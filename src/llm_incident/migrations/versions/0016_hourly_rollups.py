"""hourly rollups: per route × hour × env × model, merged from the minute rollups

event_rollups_hourly: the columns of event_rollups, one row per hour (`minute` = the hour's first
minute), the sum of that hour's minute rows with their sketches merged. The upgrade builds the
hour rows of every minute row already stored (a week of one route's minutes at a time); from then
on the rollup job rewrites an hour whenever it rewrites one of its minutes.

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-07 10:00:00
"""

from alembic import op
import sqlalchemy as sa
import sqlmodel
from sqlalchemy.orm import Session


revision = '0016'
down_revision = '0015'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'event_rollups_hourly',
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
    op.create_index('ix_event_rollups_hourly_route_minute', 'event_rollups_hourly',
                    ['route', 'minute'])
    op.create_index('ix_event_rollups_hourly_minute', 'event_rollups_hourly', ['minute'])
    from llm_incident.rollups.hours import rebuild_all_hours

    session = Session(bind=op.get_bind())
    rebuild_all_hours(session)
    session.close()


def downgrade() -> None:
    op.drop_index('ix_event_rollups_hourly_minute', table_name='event_rollups_hourly')
    op.drop_index('ix_event_rollups_hourly_route_minute', table_name='event_rollups_hourly')
    op.drop_table('event_rollups_hourly')
