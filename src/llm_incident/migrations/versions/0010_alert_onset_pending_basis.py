"""alert onsets, pending warnings and baseline wording

alert_states.onset / pending / pending_since: when the shift behind a level began, and a warning
seen once that the next evaluation confirms. alert_notifications.onset / basis / reason: the
onset an incident started from the alert inherits, which baseline was used ("vs the last 3 h; no
day-ago data yet"), and why a state was resolved without a judgement ("not judged: no traffic
since 14:05").

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-02 03:00:00
"""

from alembic import op
import sqlalchemy as sa
import sqlmodel


revision = '0010'
down_revision = '0009'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('alert_states', schema=None) as batch_op:
        batch_op.add_column(sa.Column('onset', sa.DateTime(), nullable=True))
        batch_op.add_column(sa.Column('pending', sqlmodel.sql.sqltypes.AutoString(length=10),
                                      nullable=True))
        batch_op.add_column(sa.Column('pending_since', sa.DateTime(), nullable=True))
    with op.batch_alter_table('alert_notifications', schema=None) as batch_op:
        batch_op.add_column(sa.Column('onset', sa.DateTime(), nullable=True))
        batch_op.add_column(sa.Column('basis', sqlmodel.sql.sqltypes.AutoString(length=200),
                                      nullable=True))
        batch_op.add_column(sa.Column('reason', sqlmodel.sql.sqltypes.AutoString(length=200),
                                      nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('alert_notifications', schema=None) as batch_op:
        batch_op.drop_column('reason')
        batch_op.drop_column('basis')
        batch_op.drop_column('onset')
    with op.batch_alter_table('alert_states', schema=None) as batch_op:
        batch_op.drop_column('pending_since')
        batch_op.drop_column('pending')
        batch_op.drop_column('onset')
