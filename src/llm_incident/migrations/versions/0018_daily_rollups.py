"""daily rollups: per route × UTC day × env × model, merged from the hourly rollups

event_rollups_daily: the columns of event_rollups, one row per UTC day (`minute` = its midnight),
the sum of that day's hour rows with their sketches merged. The upgrade builds the day rows of
every hour row already stored (a month of one route's hours at a time); from then on the rollup
job rewrites a day whenever it rewrites one of its hours. Comparisons and charts over long ranges
read whole days from here (a 30-day overview reads ~30 rows per route instead of ~720).

Revision ID: 0018
Revises: 0017
Create Date: 2026-12-09 10:00:00
"""

from datetime import timedelta

from alembic import op
import sqlalchemy as sa
import sqlmodel
from sqlalchemy.orm import Session


revision = '0018'
down_revision = '0017'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'event_rollups_daily',
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
    op.create_index('ix_event_rollups_daily_route_minute', 'event_rollups_daily',
                    ['route', 'minute'])
    op.create_index('ix_event_rollups_daily_minute', 'event_rollups_daily', ['minute'])
    from llm_incident.rollups.hours import DAYS, rebuild_all

    session = Session(bind=op.get_bind())
    rebuild_all(session, DAYS, span=timedelta(days=31))
    session.close()


def downgrade() -> None:
    op.drop_index('ix_event_rollups_daily_minute', table_name='event_rollups_daily')
    op.drop_index('ix_event_rollups_daily_route_minute', table_name='event_rollups_daily')
    op.drop_table('event_rollups_daily')
