"""client instances and control proofs: which SDK instances applied a control change

client_instances: one row per SDK instance, as last reported with its long-poll (identity, routes it
guards, the control version it applied per route and when, first and last seen);
control_proofs: control changes made in an incident whose thread line is kept up to date with how
many instances applied them and, for a kill, whether upstream traffic stopped.

Revision ID: 0015
Revises: 0013
Create Date: 2026-12-06 10:00:00
"""

from alembic import op
import sqlalchemy as sa
import sqlmodel


revision = '0015'
down_revision = '0013'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'client_instances',
        sa.Column('id', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column('name', sqlmodel.sql.sqltypes.AutoString(length=100), nullable=False),
        sa.Column('host', sqlmodel.sql.sqltypes.AutoString(length=100), nullable=False),
        sa.Column('pid', sa.Integer(), nullable=True),
        sa.Column('version', sqlmodel.sql.sqltypes.AutoString(length=100), nullable=False),
        sa.Column('env', sqlmodel.sql.sqltypes.AutoString(length=100), nullable=True),
        sa.Column('wait_seconds', sa.Float(), nullable=False),
        sa.Column('routes', sa.JSON(), nullable=False),
        sa.Column('applied', sa.JSON(), nullable=False),
        sa.Column('first_seen', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.Column('last_seen', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint('id'),
    )
    op.create_index('ix_client_instances_last_seen', 'client_instances', ['last_seen'], unique=False)
    op.create_table(
        'control_proofs',
        sa.Column('change_id', sa.Integer(), nullable=False),
        sa.Column('incident_number', sa.Integer(), nullable=False),
        sa.Column('route', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
        sa.Column('env', sqlmodel.sql.sqltypes.AutoString(length=100), nullable=False),
        sa.Column('version', sa.Integer(), nullable=False),
        sa.Column('verb', sqlmodel.sql.sqltypes.AutoString(length=20), nullable=False),
        sa.Column('line', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column('changed_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.Column('ack', sqlmodel.sql.sqltypes.AutoString(), nullable=True),
        sa.Column('acked_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
        sa.Column('shown', sqlmodel.sql.sqltypes.AutoString(), nullable=True),
        sa.Column('done', sa.Boolean(), nullable=False),
        sa.ForeignKeyConstraint(['change_id'], ['control_changes.id'], ),
        sa.PrimaryKeyConstraint('change_id'),
    )
    op.create_index('ix_control_proofs_incident_number', 'control_proofs', ['incident_number'], unique=False)
    op.create_index('ix_control_proofs_done', 'control_proofs', ['done'], unique=False)


def downgrade() -> None:
    op.drop_index('ix_control_proofs_done', table_name='control_proofs')
    op.drop_index('ix_control_proofs_incident_number', table_name='control_proofs')
    op.drop_table('control_proofs')
    op.drop_index('ix_client_instances_last_seen', table_name='client_instances')
    op.drop_table('client_instances')
