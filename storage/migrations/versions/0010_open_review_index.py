"""The open review questions' index holds open rows only, keyed by the question

Revision ID: 0010
Revises: 0009

ix_review_items_open began with settled_at. SQLite's statistics average the rows per value of a
column, so `settled_at IS NULL` looked like a thousand rows where 52,000 were (1,000,000 items):
the queue's walk took that index and sorted every open row instead of walking
ix_review_items_queue in time order, 1.1 s a page. Partial on the open rows, and keyed by
(key, kind, time), the index answers every question asked of it (a case's rows, a key's open
rows when settling) and is no longer a candidate for the walk.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.drop_index("ix_review_items_open", table_name="review_items")
    open_rows = sa.text("settled_at IS NULL")
    op.create_index(
        "ix_review_items_open",
        "review_items",
        ["key", "kind", "occurred_at"],
        sqlite_where=open_rows,
        postgresql_where=open_rows,
    )


def downgrade() -> None:
    op.drop_index("ix_review_items_open", table_name="review_items")
    op.create_index(
        "ix_review_items_open", "review_items", ["settled_at", "kind", "key", "occurred_at"]
    )
