"""Listener leases: one live listener per connector across processes

Revision ID: 0018
Revises: 0017

- connectors.listener_holder, listener_beat_at: the process that listens to a live source (a
  PBX's manager interface) and when it last said it is alive (hub.listener_lease). Every
  scheduler claims the lease before it listens, so two processes never store each call twice;
  a holder that stops beating loses it to the next. Empty at first: nobody listens yet.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0018"
down_revision = "0017"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("connectors") as table:
        table.add_column(sa.Column("listener_holder", sa.String(100), nullable=True))
        table.add_column(sa.Column("listener_beat_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("connectors") as table:
        table.drop_column("listener_beat_at")
        table.drop_column("listener_holder")
