"""Meeting replies: attendees' answers by mail kept for meetings that arrive after them

Revision ID: 0019
Revises: 0018

- meeting_replies: one row per answer of an iMIP reply mail (storage.meeting_answers), looked
  up by the meeting's UID (ix_meeting_replies_uid, unique with the mail and the address) when
  a meeting is stored or revised; deleted with the mail (ix_meeting_replies_item).
- Backfilled from the reply mails stored so far (not logged as iMIP replies, their facts in
  `extra`), with the sender's own answers only, as hub.meeting_replies keeps them.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import op

revision = "0019"
down_revision = "0018"
branch_labels = None
depends_on = None

Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
# hub.meeting_replies.NOT_LOGGED as of this revision: what marks a stored reply mail.
REPLY_MAIL = "bulk or automated (iMIP reply to a meeting invitation)"


def upgrade() -> None:
    op.create_table(
        "meeting_replies",
        sa.Column("id", Id, primary_key=True),
        sa.Column(
            "interaction_id",
            Id,
            sa.ForeignKey("interactions.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("uid", sa.String(512), nullable=False),
        sa.Column("occurrence", sa.String(512), nullable=True),
        sa.Column("sequence", sa.Integer(), nullable=False),
        sa.Column("address", sa.String(320), nullable=False),
        sa.Column("answer", sa.String(32), nullable=False),
        sa.Column("sent_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index(
        "ix_meeting_replies_uid",
        "meeting_replies",
        ["uid", "interaction_id", "address"],
        unique=True,
    )
    op.create_index("ix_meeting_replies_item", "meeting_replies", ["interaction_id"])
    rows = _stored_replies()
    replies = sa.table(
        "meeting_replies",
        *(
            sa.column(name)
            for name in (
                "interaction_id", "uid", "occurrence", "sequence", "address", "answer", "sent_at",
            )
        ),
    )  # fmt: skip
    for start in range(0, len(rows), 1000):
        op.bulk_insert(replies, rows[start : start + 1000])


def _stored_replies() -> list[dict[str, Any]]:
    bind = op.get_bind()
    items = sa.table(
        "interactions",
        sa.column("id", sa.Integer),
        sa.column("channel", sa.String),
        sa.column("not_logged", sa.String),
        sa.column("occurred_at", sa.DateTime(timezone=True)),
        sa.column("extra", sa.JSON),
    )
    people = sa.table(
        "participants",
        sa.column("interaction_id", sa.Integer),
        sa.column("role", sa.String),
        sa.column("address", sa.String),
    )
    mails = bind.execute(
        sa.select(items.c.id, items.c.occurred_at, items.c.extra).where(
            items.c.channel == "email", items.c.not_logged == REPLY_MAIL
        )
    ).all()
    found: list[dict[str, Any]] = []
    for item_id, sent_at, extra in mails:
        facts = (extra or {}).get("imip_reply") if isinstance(extra, dict) else None
        if not isinstance(facts, dict) or not isinstance(facts.get("answers"), dict):
            continue
        senders = {
            str(address).lower()
            for address in bind.execute(
                sa.select(people.c.address).where(
                    people.c.interaction_id == item_id, people.c.role == "from"
                )
            ).scalars()
        }
        sequence = facts.get("sequence")
        for address, answer in facts["answers"].items():
            if address not in senders:
                continue
            found.append(
                {
                    "interaction_id": item_id,
                    "uid": str(facts.get("uid", ""))[:512],
                    "occurrence": str(facts["occurrence"])[:512]
                    if facts.get("occurrence")
                    else None,
                    "sequence": sequence if isinstance(sequence, int) else 0,
                    "address": address[:320],
                    "answer": str(answer)[:32],
                    "sent_at": sent_at,
                }
            )
    return found


def downgrade() -> None:
    op.drop_index("ix_meeting_replies_item", table_name="meeting_replies")
    op.drop_index("ix_meeting_replies_uid", table_name="meeting_replies")
    op.drop_table("meeting_replies")
