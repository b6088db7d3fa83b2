"""Call notes, missed calls, and the party index that joins one call seen by two systems

Revision ID: 0016
Revises: 0015

- call_notes: an agent's note and outcome per call, read per call in writing order.
- call_parties: each call's sorted pair of normalised numbers at its start; the same call from
  a PBX and from Twilio is a range of ix_call_parties_pair_time within 60 s. Backfilled from
  the calls stored so far whose two parties have a normalised number.
- missed_calls: open until answered; partial indexes of the open rows by owner (the start
  page) and by contact (closing). Not backfilled: calls missed before this upgrade would fill
  every start page with history nobody is waiting on.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None

Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
OPEN = sa.text("closed_at IS NULL")


def upgrade() -> None:
    op.create_table(
        "call_notes",
        sa.Column("id", Id, primary_key=True),
        sa.Column(
            "interaction_id",
            Id,
            sa.ForeignKey("interactions.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("author", sa.String(320), nullable=False),
        sa.Column("written_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("outcome", sa.String(32), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
    )
    op.create_index("ix_call_notes_item", "call_notes", ["interaction_id", "id"])
    op.create_table(
        "call_parties",
        sa.Column(
            "interaction_id",
            Id,
            sa.ForeignKey("interactions.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("pair", sa.String(80), nullable=False),
        sa.Column("occurred_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_call_parties_pair_time", "call_parties", ["pair", "occurred_at"])
    op.create_table(
        "missed_calls",
        sa.Column("id", Id, primary_key=True),
        sa.Column(
            "interaction_id",
            Id,
            sa.ForeignKey("interactions.id", ondelete="CASCADE"),
            nullable=False,
            unique=True,
        ),
        sa.Column("contact_id", Id, sa.ForeignKey("contacts.id", ondelete="SET NULL")),
        sa.Column("account_id", Id, sa.ForeignKey("accounts.id", ondelete="SET NULL")),
        sa.Column("owner", sa.String(320), nullable=False),
        sa.Column("occurred_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("closed_at", sa.DateTime(timezone=True)),
        sa.Column("closed_by", sa.String(340), nullable=False),
    )
    for name, first in (("owner", "owner"), ("contact", "contact_id")):
        op.create_index(
            f"ix_missed_calls_{name}_open",
            "missed_calls",
            [first, "occurred_at"],
            sqlite_where=OPEN,
            postgresql_where=OPEN,
        )
    _backfill_parties()


def _backfill_parties() -> None:
    people = sa.table(
        "participants",
        sa.column("interaction_id", sa.Integer),
        sa.column("normalized", sa.String),
        sa.column("occurred_at", sa.DateTime),
    )
    calls = sa.table("interactions", sa.column("id", sa.Integer), sa.column("channel", sa.String))
    rows = op.get_bind().execute(
        sa.select(people.c.interaction_id, people.c.normalized, people.c.occurred_at)
        .join(calls, calls.c.id == people.c.interaction_id)
        .where(calls.c.channel == "call")
        .order_by(people.c.interaction_id)
    )
    numbers: dict[int, list[str]] = {}
    times: dict[int, object] = {}
    for item, normalized, at in rows:
        numbers.setdefault(item, []).append(normalized or "")
        times[item] = at
    found = [
        {"interaction_id": item, "pair": "|".join(sorted(n)), "occurred_at": times[item]}
        for item, n in numbers.items()
        if len(n) == 2 and all(n) and times[item] is not None
    ]
    table = sa.table(
        "call_parties",
        sa.column("interaction_id", sa.Integer),
        sa.column("pair", sa.String),
        sa.column("occurred_at", sa.DateTime),
    )
    for start in range(0, len(found), 1000):
        op.bulk_insert(table, found[start : start + 1000])


def downgrade() -> None:
    for name in ("owner", "contact"):
        op.drop_index(f"ix_missed_calls_{name}_open", table_name="missed_calls")
    op.drop_table("missed_calls")
    op.drop_index("ix_call_parties_pair_time", table_name="call_parties")
    op.drop_table("call_parties")
    op.drop_index("ix_call_notes_item", table_name="call_notes")
    op.drop_table("call_notes")
