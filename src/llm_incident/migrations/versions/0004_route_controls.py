"""route controls and their audit history

A route without a `route_controls` row reads as defaults at version 0; no backfill needed.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-26 20:04:59.761707
"""

from alembic import op
import sqlalchemy as sa
import sqlmodel


revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('control_changes',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('route', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
    sa.Column('env', sqlmodel.sql.sqltypes.AutoString(length=100), nullable=False),
    sa.Column('kind', sqlmodel.sql.sqltypes.AutoString(length=20), nullable=False),
    sa.Column('fields', sa.JSON(), nullable=False),
    sa.Column('before', sa.JSON(), nullable=False),
    sa.Column('after', sa.JSON(), nullable=False),
    sa.Column('actor', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
    sa.Column('reason', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('incident', sa.Integer(), nullable=True),
    sa.Column('ts', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('outcome', sqlmodel.sql.sqltypes.AutoString(length=20), nullable=False),
    sa.Column('expires_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('control_changes', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_control_changes_incident'), ['incident'], unique=False)
        batch_op.create_index('ix_control_changes_route_env_id', ['route', 'env', 'id'], unique=False)

    op.create_table('route_controls',
    sa.Column('route', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
    sa.Column('env', sqlmodel.sql.sqltypes.AutoString(length=100), nullable=False),
    sa.Column('enabled', sa.Boolean(), nullable=False),
    sa.Column('max_tokens', sa.Integer(), nullable=True),
    sa.Column('model', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=True),
    sa.Column('provider', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=True),
    sa.Column('retry_cap', sa.Integer(), nullable=True),
    sa.Column('fallback_message', sqlmodel.sql.sqltypes.AutoString(length=2000), nullable=True),
    sa.Column('expires_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('updated_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.Column('updated_by', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
    sa.PrimaryKeyConstraint('route', 'env')
    )
    with op.batch_alter_table('route_controls', schema=None) as batch_op:
        batch_op.create_index('ix_route_controls_expires_at', ['expires_at'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('route_controls', schema=None) as batch_op:
        batch_op.drop_index('ix_route_controls_expires_at')

    op.drop_table('route_controls')
    with op.batch_alter_table('control_changes', schema=None) as batch_op:
        batch_op.drop_index('ix_control_changes_route_env_id')
        batch_op.drop_index(batch_op.f('ix_control_changes_incident'))

    op.drop_table('control_changes')