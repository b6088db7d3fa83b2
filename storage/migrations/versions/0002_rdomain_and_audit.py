"""participants.rdomain for retroactive re-matching by domain; audit_log for manual changes

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def reversed_domain(address: str) -> str | None:
    domain = address.rpartition("@")[2]
    return ".".join(reversed(domain.split("."))) if "@" in address and domain else None


def upgrade() -> None:
    with op.batch_alter_table("participants", schema=None) as batch_op:
        batch_op.add_column(sa.Column("rdomain", sa.String(length=255), nullable=True))
        batch_op.create_index(batch_op.f("ix_participants_rdomain"), ["rdomain"], unique=False)
    participants = sa.table(
        "participants",
        sa.column("id", Id),
        sa.column("kind", sa.String),
        sa.column("normalized", sa.String),
        sa.column("rdomain", sa.String),
    )
    connection = op.get_bind()
    rows = connection.execute(
        sa.select(participants.c.id, participants.c.normalized).where(
            participants.c.kind == "email", participants.c.normalized.is_not(None)
        )
    ).all()
    updates = [{"pid": pid, "rd": reversed_domain(normalized)} for pid, normalized in rows]
    for start in range(0, len(updates), 1000):
        connection.execute(
            participants.update()
            .where(participants.c.id == sa.bindparam("pid"))
            .values(rdomain=sa.bindparam("rd")),
            updates[start : start + 1000],
        )
    op.create_table(
        "audit_log",
        sa.Column("id", Id, nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("actor", sa.String(length=320), nullable=False),
        sa.Column("action", sa.String(length=64), nullable=False),
        sa.Column("interaction_id", Id, nullable=True),
        sa.Column("before", sa.JSON(), nullable=False),
        sa.Column("after", sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(["interaction_id"], ["interactions.id"], ondelete="SET NULL"),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("audit_log", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_audit_log_at"), ["at"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_audit_log_interaction_id"), ["interaction_id"], unique=False
        )


def downgrade() -> None:
    op.drop_table("audit_log")
    with op.batch_alter_table("participants", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_participants_rdomain"))
        batch_op.drop_column("rdomain")
