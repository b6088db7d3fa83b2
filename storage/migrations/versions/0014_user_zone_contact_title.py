"""A user's own time zone, and a contact's job title

Revision ID: 0014
Revises: 0013

Pages show times in the user's zone (empty: the configured `timezone`), and an account's
contacts with their titles ("Einkaufsleiterin"), read from the directory CSV's optional `title`
column and vCard TITLE. Both columns get a constant default: adding them rewrites no table on
PostgreSQL 11+ and is a quick ALTER on SQLite.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("users") as table:
        table.add_column(sa.Column("timezone", sa.String(64), nullable=False, server_default=""))
    with op.batch_alter_table("contacts") as table:
        table.add_column(sa.Column("title", sa.String(200), nullable=False, server_default=""))


def downgrade() -> None:
    with op.batch_alter_table("contacts") as table:
        table.drop_column("title")
    with op.batch_alter_table("users") as table:
        table.drop_column("timezone")
