"""Native ids of calls and messages

Revision ID: 0015
Revises: 0014

A call is known by the id its own system gave it (Twilio's CallSid, Asterisk's uniqueid and
linkedid): `GET /api/interactions?external_id=` finds it through this table's unique
(native_id, interaction_id) index, a range of one id. The source id cannot serve: a CDR line is
named by its hash, and one call has several ids. Backfilled from the calls stored so far,
whose Asterisk uniqueid is in `extra`.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "native_ids",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), primary_key=True),
        sa.Column(
            "interaction_id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            sa.ForeignKey("interactions.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("native_id", sa.String(200), nullable=False),
        sa.UniqueConstraint("native_id", "interaction_id"),
    )
    op.create_index("ix_native_ids_item", "native_ids", ["interaction_id"])
    calls = sa.table(
        "interactions",
        sa.column("id", sa.Integer),
        sa.column("channel", sa.String),
        sa.column("extra", sa.JSON),
    )
    bind = op.get_bind()
    rows = bind.execute(sa.select(calls.c.id, calls.c.extra).where(calls.c.channel == "call"))
    found = [
        {"interaction_id": item, "native_id": str(extra["uniqueid"])[:200]}
        for item, extra in rows
        if isinstance(extra, dict) and extra.get("uniqueid")
    ]
    native = sa.table(
        "native_ids", sa.column("interaction_id", sa.Integer), sa.column("native_id", sa.String)
    )
    for start in range(0, len(found), 1000):
        op.bulk_insert(native, found[start : start + 1000])


def downgrade() -> None:
    op.drop_index("ix_native_ids_item", table_name="native_ids")
    op.drop_table("native_ids")
