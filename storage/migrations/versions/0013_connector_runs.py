"""Connector administration: the last successful sync, the latest sync run, and the items of
one connector by time

Revision ID: 0013
Revises: 0012

The admin pages show each connector's last successful sync (`last_sync_at` is the last one,
failed or not: a failed sync's time is taken as the last success only where the status says it
succeeded), the progress of a sync started from the page in any web process (`run_*`, claimed
by one process at a time), and the age of its newest item and its items per day: ranges of
ix_sources_connector_time, never a walk through every source row.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None

RUN_TIMES = ("run_started_at", "run_beat_at", "run_ended_at")


def upgrade() -> None:
    with op.batch_alter_table("connectors") as table:
        for name in ("last_success_at", *RUN_TIMES):
            table.add_column(sa.Column(name, sa.DateTime(timezone=True), nullable=True))
        table.add_column(
            sa.Column("run_progress", sa.JSON(), nullable=False, server_default=sa.text("'{}'"))
        )
    op.execute("UPDATE connectors SET last_success_at = last_sync_at WHERE status = 'ok'")
    op.create_index("ix_sources_connector_time", "sources", ["connector", "occurred_at"])


def downgrade() -> None:
    op.drop_index("ix_sources_connector_time", table_name="sources")
    with op.batch_alter_table("connectors") as table:
        for name in ("run_progress", *reversed(RUN_TIMES), "last_success_at"):
            table.drop_column(name)
