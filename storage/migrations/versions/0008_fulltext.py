"""Full-text index of interactions: FTS5 on SQLite, tsvector with GIN on PostgreSQL

Revision ID: 0008
Revises: 0007

Every stored item is indexed here, a batch at a time (the table is never read whole). The
tables are this migration's own, as of this revision; the word analysis, the time key and the
tsvector form are storage.fulltext's, because the index must hold what the running code looks
for: a later change of them comes with a migration that indexes anew.
On PostgreSQL the indexes are built after the rows are in, which is several times faster than
keeping them up to date row by row.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from alembic import op

from storage.fulltext import terms, time_key, tsvector
from storage.packing import unpack_text

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

BATCH = 1000


def _sqlite_row(id_: int, at: datetime, subject: str, body: str) -> tuple[Any, ...]:
    return (time_key(id_, at), " ".join(terms(subject)), " ".join(terms(body)))


def _postgresql_row(id_: int, at: datetime, subject: str, body: str) -> tuple[Any, ...]:
    return (id_, at, tsvector(terms(subject), terms(body)))


def upgrade() -> None:
    connection = op.get_bind()
    if connection.dialect.name == "sqlite":
        op.execute(
            "CREATE VIRTUAL TABLE interaction_fts USING fts5("
            "subject, body, tokenize = 'ascii', detail = column)"
        )
        insert = "INSERT INTO interaction_fts (rowid, subject, body) VALUES (?, ?, ?)"
        row = _sqlite_row
    else:
        op.execute(
            "CREATE TABLE interaction_terms ("
            " interaction_id BIGINT PRIMARY KEY REFERENCES interactions (id) ON DELETE CASCADE,"
            " occurred_at TIMESTAMP WITH TIME ZONE NOT NULL,"
            " terms TSVECTOR NOT NULL)"
        )
        insert = (
            "INSERT INTO interaction_terms (interaction_id, occurred_at, terms)"
            " VALUES (%s, %s, CAST(%s AS tsvector))"
        )
        row = _postgresql_row
    interactions = sa.table(
        "interactions",
        sa.column("id", sa.BigInteger),
        sa.column("occurred_at", sa.DateTime(timezone=True)),
        sa.column("subject", sa.Text),
        sa.column("snippet", sa.Text),
        sa.column("body", sa.LargeBinary),
    )
    c = interactions.c
    last = 0
    while True:
        batch = connection.execute(
            sa.select(c.id, c.occurred_at, c.subject, c.snippet, c.body)
            .where(c.id > last)
            .order_by(c.id)
            .limit(BATCH)
        ).all()
        if not batch:
            break
        last = batch[-1][0]
        connection.exec_driver_sql(
            insert,
            [
                row(id_, at, subject or "", f"{snippet or ''}\n{unpack_text(body)}")
                for id_, at, subject, snippet, body in batch
            ],
        )
    if connection.dialect.name != "sqlite":
        op.execute("CREATE INDEX ix_interaction_terms_terms ON interaction_terms USING gin (terms)")
        op.execute(
            "CREATE INDEX ix_interaction_terms_occurred_at"
            " ON interaction_terms (occurred_at, interaction_id)"
        )


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        op.execute("DROP TABLE interaction_fts")
    else:
        op.execute("DROP TABLE interaction_terms")
