"""A user's unmatched items and the review queue as index ranges: sources and review rows
carry their item's time

Revision ID: 0009
Revises: 0008

The unmatched page walked every user's items by time to find one user's unattributed few, and
the review queue grouped every open question to sort the groups: both grew with the tables.
With the item's time on the source (indexed from its owner) and on the review row (indexed
from "open"), each reads the rows it shows and a bounded margin.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

When = sa.DateTime(timezone=True)
_COPY = (
    "UPDATE {table} SET occurred_at = "
    "(SELECT interactions.occurred_at FROM interactions "
    "WHERE interactions.id = {table}.interaction_id)"
)


def upgrade() -> None:
    for table in ("sources", "review_items"):
        op.add_column(table, sa.Column("occurred_at", When, nullable=True))
        op.execute(_COPY.format(table=table))
    op.drop_index("ix_sources_owner", table_name="sources")
    op.create_index(
        "ix_sources_owner_timeline", "sources", ["owner", "occurred_at", "interaction_id"]
    )
    op.drop_index("ix_review_items_open", table_name="review_items")
    op.create_index(
        "ix_review_items_open", "review_items", ["settled_at", "kind", "key", "occurred_at"]
    )
    # Partial: PostgreSQL does not take `settled_at IS NULL` as an equality that leaves an
    # index on (settled_at, occurred_at) in time order; settled rows are never walked.
    open_rows = sa.text("settled_at IS NULL")
    op.create_index(
        "ix_review_items_queue",
        "review_items",
        ["occurred_at", "id"],
        sqlite_where=open_rows,
        postgresql_where=open_rows,
    )


def downgrade() -> None:
    op.drop_index("ix_review_items_queue", table_name="review_items")
    op.drop_index("ix_review_items_open", table_name="review_items")
    op.create_index("ix_review_items_open", "review_items", ["settled_at", "kind", "key"])
    op.drop_index("ix_sources_owner_timeline", table_name="sources")
    op.create_index("ix_sources_owner", "sources", ["owner"])
    for table in ("sources", "review_items"):
        with op.batch_alter_table(table) as batch:
            batch.drop_column("occurred_at")
