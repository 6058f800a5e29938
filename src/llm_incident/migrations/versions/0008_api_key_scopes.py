"""api key scopes

api_keys.scope: the space-separated scopes of a key (ingest, read, controls, admin). Keys created
before scopes existed keep today's meaning: every scope.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-01 22:49:29.930281
"""

from alembic import op
import sqlalchemy as sa
import sqlmodel


revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('api_keys', schema=None) as batch_op:
        batch_op.add_column(sa.Column('scope', sqlmodel.sql.sqltypes.AutoString(length=100), nullable=False,
                                      server_default='ingest read controls admin'))


def downgrade() -> None:
    with op.batch_alter_table('api_keys', schema=None) as batch_op:
        batch_op.drop_column('scope')
