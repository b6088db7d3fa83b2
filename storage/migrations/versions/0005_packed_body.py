"""interactions.body_text becomes interactions.body: the same text, UTF-8, zstd-compressed

Revision ID: 0005
Revises: 0004

Measured on the 10,000-mail IMAP bench: plain body texts were 57 of the 131 MB a sync wrote.
Only the detail view and the review queue read them, one item at a time; searches use subject
and snippet. Existing texts are packed here, in chunks. DROP COLUMN, not a table copy: see 0004.
"""

from __future__ import annotations

import sqlalchemy as sa
import zstandard
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

CHUNK = 1000
ZSTD_LEVEL = 3  # as storage.packing; a migration keeps its own copy so it never changes


def upgrade() -> None:
    op.add_column("interactions", sa.Column("body", sa.LargeBinary(), nullable=True))
    interactions = sa.table(
        "interactions",
        sa.column("id", sa.BigInteger),
        sa.column("body_text", sa.Text),
        sa.column("body", sa.LargeBinary),
    )
    connection = op.get_bind()
    compressor = zstandard.ZstdCompressor(level=ZSTD_LEVEL)
    last = 0
    while True:
        rows = connection.execute(
            sa.select(interactions.c.id, interactions.c.body_text)
            .where(interactions.c.id > last)
            .order_by(interactions.c.id)
            .limit(CHUNK)
        ).all()
        if not rows:
            break
        last = rows[-1][0]
        packed = [
            {"iid": id_, "packed": compressor.compress(text.encode("utf-8", "surrogatepass"))}
            for id_, text in rows
            if text
        ]
        if packed:
            connection.execute(
                interactions.update()
                .where(interactions.c.id == sa.bindparam("iid"))
                .values(body=sa.bindparam("packed")),
                packed,
            )
    op.execute("ALTER TABLE interactions DROP COLUMN body_text")


def downgrade() -> None:
    op.add_column(
        "interactions", sa.Column("body_text", sa.Text(), nullable=False, server_default="")
    )
    interactions = sa.table(
        "interactions",
        sa.column("id", sa.BigInteger),
        sa.column("body_text", sa.Text),
        sa.column("body", sa.LargeBinary),
    )
    connection = op.get_bind()
    decompressor = zstandard.ZstdDecompressor()
    rows = connection.execute(
        sa.select(interactions.c.id, interactions.c.body).where(interactions.c.body.is_not(None))
    ).all()
    for start in range(0, len(rows), CHUNK):
        connection.execute(
            interactions.update()
            .where(interactions.c.id == sa.bindparam("iid"))
            .values(body_text=sa.bindparam("text")),
            [
                {"iid": id_, "text": decompressor.decompress(body).decode("utf-8", "surrogatepass")}
                for id_, body in rows[start : start + CHUNK]
            ],
        )
    op.execute("ALTER TABLE interactions DROP COLUMN body")
