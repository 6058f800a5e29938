"""events partitioned by day on PostgreSQL

PostgreSQL: the plain `events` table becomes `PARTITION BY RANGE (ts)` with one partition per UTC
day and a default partition (see llm_incident.events.partitions): renamed, parent created with the
same columns, defaults, sequence and secondary indexes (primary key `(id, ts)`, unique
`(event_id, ts)`), partitions for the days its rows cover and the next few, rows copied in id
batches, old table dropped. Ids and the sequence carry on. SQLite: nothing (one table).

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-08 10:00:00
"""

from datetime import datetime, timezone

from alembic import op

from llm_incident.events.partitions import convert_to_partitioned

revision = '0017'
down_revision = '0016'
branch_labels = None
depends_on = None


def upgrade() -> None:
    conn = op.get_bind()
    if conn.dialect.name == "postgresql":
        convert_to_partitioned(conn, datetime.now(timezone.utc))


def downgrade() -> None:
    pass  # a partitioned table serves every query the plain one did
