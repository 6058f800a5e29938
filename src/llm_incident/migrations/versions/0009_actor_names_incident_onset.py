"""actor names in the audit; an incident's onset

control_changes.actor_name, timeline_entries.actor_name: the name behind an actor id (a Slack
user's name), kept beside the id. incidents.onset_at / onset_source: when the incident began
(detected, given with `since`, or inherited from an alert) beside `started_at` (declared).

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-02 01:30:00
"""

from alembic import op
import sqlalchemy as sa
import sqlmodel


revision = '0009'
down_revision = '0008'
branch_labels = None
depends_on = None


def upgrade() -> None:
    for table in ('control_changes', 'timeline_entries'):
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.add_column(sa.Column('actor_name', sqlmodel.sql.sqltypes.AutoString(length=200),
                                          nullable=True))
    with op.batch_alter_table('incidents', schema=None) as batch_op:
        batch_op.add_column(sa.Column('onset_at', sa.DateTime(), nullable=True))
        batch_op.add_column(sa.Column('onset_source', sqlmodel.sql.sqltypes.AutoString(length=30),
                                      nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('incidents', schema=None) as batch_op:
        batch_op.drop_column('onset_source')
        batch_op.drop_column('onset_at')
    for table in ('timeline_entries', 'control_changes'):
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.drop_column('actor_name')
