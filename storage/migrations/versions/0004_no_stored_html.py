"""interactions.body_html goes: the HTML of a mail is read from its raw message when shown

Revision ID: 0004
Revises: 0003

Measured on the 10,000-mail IMAP bench: the HTML bodies were a third of the interactions table
(36 of 109 MB), written at ingest for a view that opens one mail at a time.
ALTER TABLE ... DROP COLUMN, not a batch table copy: on SQLite a copy drops the old table,
and with foreign keys on that would cascade into every table that refers to it.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("ALTER TABLE interactions DROP COLUMN body_html")


def downgrade() -> None:
    op.add_column(
        "interactions", sa.Column("body_html", sa.Text(), nullable=False, server_default="")
    )
