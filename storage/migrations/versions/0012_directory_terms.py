"""The directory is searched by word: directory_terms, filled from the accounts and contacts
already stored; accounts are found by owner

Revision ID: 0012
Revises: 0011

The one search (GET /api/search, the header of every page) finds a contact by any word of the
name, an address or a phone number written any way, and an account by a word of its name or
a domain (storage.directory_search). The terms of every stored record are written here, in
batches; at 10,000 accounts and 100,000 contacts this takes seconds. The start page lists the
accounts a user owns: ix_accounts_owner.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from storage.directory_search import reindex  # the terms as the running code writes them

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None

BATCH = 2000


def upgrade() -> None:
    op.create_table(
        "directory_terms",
        sa.Column("kind", sa.String(8), primary_key=True),
        sa.Column("term", sa.String(64), primary_key=True),
        sa.Column(
            "record_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), primary_key=True
        ),
    )
    op.create_index("ix_directory_terms_record", "directory_terms", ["record_id", "kind"])
    op.create_index("ix_accounts_owner", "accounts", ["owner"])
    connection = op.get_bind()
    for table, kind in (("accounts", "account"), ("contacts", "contact")):
        ids = [row[0] for row in connection.execute(sa.text(f"SELECT id FROM {table} ORDER BY id"))]
        for start in range(0, len(ids), BATCH):
            chunk = ids[start : start + BATCH]
            reindex(
                connection, chunk if kind == "account" else [], chunk if kind == "contact" else []
            )


def downgrade() -> None:
    op.drop_index("ix_accounts_owner", table_name="accounts")
    op.drop_index("ix_directory_terms_record", table_name="directory_terms")
    op.drop_table("directory_terms")
