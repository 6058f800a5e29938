"""alert states, notifications and job slots

alert_states: the level last notified per (rule, route); alert_notifications: each notified
change, unique per (rule, route, version); job_slots: one row per scheduled send that ran.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-26 22:45:56.186255
"""

from alembic import op
import sqlalchemy as sa
import sqlmodel


revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('alert_notifications',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('rule_id', sqlmodel.sql.sqltypes.AutoString(length=100), nullable=False),
    sa.Column('route', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('metric', sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
    sa.Column('label', sqlmodel.sql.sqltypes.AutoString(length=100), nullable=False),
    sa.Column('previous_level', sqlmodel.sql.sqltypes.AutoString(length=10), nullable=False),
    sa.Column('level', sqlmodel.sql.sqltypes.AutoString(length=10), nullable=False),
    sa.Column('value', sa.Float(), nullable=True),
    sa.Column('baseline', sa.Float(), nullable=True),
    sa.Column('calls', sa.Integer(), nullable=False),
    sa.Column('window', sqlmodel.sql.sqltypes.AutoString(length=20), nullable=False),
    sa.Column('ts', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.Column('incident_number', sa.Integer(), nullable=True),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('rule_id', 'route', 'version', name='uq_alert_notifications_rule_route_version')
    )
    with op.batch_alter_table('alert_notifications', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_alert_notifications_route'), ['route'], unique=False)

    op.create_table('alert_states',
    sa.Column('rule_id', sqlmodel.sql.sqltypes.AutoString(length=100), nullable=False),
    sa.Column('route', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
    sa.Column('level', sqlmodel.sql.sqltypes.AutoString(length=10), nullable=False),
    sa.Column('since', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.Column('notified_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
    sa.Column('value', sa.Float(), nullable=True),
    sa.Column('baseline', sa.Float(), nullable=True),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.PrimaryKeyConstraint('rule_id', 'route')
    )
    op.create_table('job_slots',
    sa.Column('job', sqlmodel.sql.sqltypes.AutoString(length=50), nullable=False),
    sa.Column('slot', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
    sa.Column('done_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.PrimaryKeyConstraint('job', 'slot')
    )


def downgrade() -> None:
    op.drop_table('job_slots')
    op.drop_table('alert_states')
    with op.batch_alter_table('alert_notifications', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_alert_notifications_route'))

    op.drop_table('alert_notifications')
