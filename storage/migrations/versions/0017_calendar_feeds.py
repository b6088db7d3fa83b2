"""Calendar feeds: read-only iCalendar subscriptions to an account's meetings

Revision ID: 0017
Revises: 0016

- calendar_feeds: one row per subscription link a manager made for an account; the token in
  the link is stored as its SHA-256 only (unique: the feed is looked up by it), revoked rows
  stay for the audit trail. Nothing to backfill.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0017"
down_revision = "0016"
branch_labels = None
depends_on = None

Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "calendar_feeds",
        sa.Column("id", Id, primary_key=True),
        sa.Column(
            "account_id", Id, sa.ForeignKey("accounts.id", ondelete="CASCADE"), nullable=False
        ),
        sa.Column("token_sha256", sa.String(64), nullable=False, unique=True),
        sa.Column("created_by", sa.String(320), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
    )
    op.create_index("ix_calendar_feeds_account_id", "calendar_feeds", ["account_id"])


def downgrade() -> None:
    op.drop_index("ix_calendar_feeds_account_id", table_name="calendar_feeds")
    op.drop_table("calendar_feeds")
