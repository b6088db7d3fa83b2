"""Timelines as index range scans: attributions and participants carry their item's time

Revision ID: 0007
Revises: 0006

An account's or a contact's timeline joined attributions to interactions and sorted by
interactions.occurred_at: at a million items both databases walked the time index and threw
away hundreds of thousands of rows per page. The item's time, copied onto the rows that name
the account or contact (it never changes once stored), lets a page start at (account or
contact, time, item) in one index and read only the rows it shows.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

When = sa.DateTime(timezone=True)
_COPY = (
    "UPDATE {table} SET occurred_at = "
    "(SELECT interactions.occurred_at FROM interactions "
    "WHERE interactions.id = {table}.interaction_id)"
)


def upgrade() -> None:
    for table in ("attributions", "participants"):
        op.add_column(table, sa.Column("occurred_at", When, nullable=True))
        op.execute(_COPY.format(table=table))
    op.drop_index("ix_attributions_contact", table_name="attributions")
    op.drop_index("ix_participants_contact_id", table_name="participants")
    op.create_index(
        "ix_attributions_account_timeline",
        "attributions",
        ["account_id", "occurred_at", "interaction_id"],
    )
    op.create_index(
        "ix_attributions_contact_timeline",
        "attributions",
        ["contact_id", "occurred_at", "interaction_id"],
    )
    op.create_index(
        "ix_participants_contact_timeline",
        "participants",
        ["contact_id", "occurred_at", "interaction_id"],
    )


def downgrade() -> None:
    op.drop_index("ix_participants_contact_timeline", table_name="participants")
    op.drop_index("ix_attributions_contact_timeline", table_name="attributions")
    op.drop_index("ix_attributions_account_timeline", table_name="attributions")
    op.create_index("ix_participants_contact_id", "participants", ["contact_id"])
    op.create_index("ix_attributions_contact", "attributions", ["contact_id"])
    for table in ("attributions", "participants"):
        with op.batch_alter_table(table) as batch:
            batch.drop_column("occurred_at")
