"""postmortem snapshots: the postmortem as it was at the close

postmortem_snapshots: one row per closed incident, the compiled postmortem (JSON) of its last
close; a closed incident's postmortem is read from here, so later control changes do not
rewrite it.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-04 10:00:00
"""

from alembic import op
import sqlalchemy as sa
import sqlmodel


revision = '0011'
down_revision = '0010'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'postmortem_snapshots',
        sa.Column('incident_id', sa.Integer(), nullable=False),
        sa.Column('closed_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.Column('format', sa.Integer(), nullable=False),
        sa.Column('data', sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(['incident_id'], ['incidents.id'], ),
        sa.PrimaryKeyConstraint('incident_id'),
    )


def downgrade() -> None:
    op.drop_table('postmortem_snapshots')
