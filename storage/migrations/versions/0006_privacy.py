"""Privacy and accounts: item owners and visibility caps, blocklist, erased identities,
disabled users and session epochs, expiring and revocable tokens, login throttling, audit targets

Revision ID: 0006
Revises: 0005

The owner and visibility cap of every stored source are filled in from the connector settings
as they are now; a source of a removed connector keeps no owner (as before, nobody owned it).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
When = sa.DateTime(timezone=True)


def _owner(settings: dict[str, str]) -> str:
    """As connectors.base.Connector.mailbox_owner on the day of this migration."""
    owner = str(settings.get("owner") or "").strip()
    if owner:
        return owner
    username = str(settings.get("username") or "").strip()
    local, _, domain = username.rpartition("@")
    looks = bool(local) and "." in domain.strip(".") and not any(c.isspace() for c in username)
    return username if looks else ""


def upgrade() -> None:
    with op.batch_alter_table("sources") as batch:
        batch.add_column(sa.Column("owner", sa.String(320), nullable=False, server_default=""))
        batch.add_column(
            sa.Column("visibility", sa.String(8), nullable=False, server_default="full")
        )
        batch.create_index("ix_sources_owner", ["owner"])
    with op.batch_alter_table("quarantine") as batch:
        batch.add_column(sa.Column("owner", sa.String(320), nullable=False, server_default=""))
    # Deleting items (erasure, retention, blocklist) asks whether a blob is still referenced,
    # and retention selects by channel and age: index-driven, never a full scan.
    op.create_index("ix_interactions_raw_blob_id", "interactions", ["raw_blob_id"])
    op.create_index("ix_attachments_blob_id", "attachments", ["blob_id"])
    op.create_index("ix_quarantine_raw_blob_id", "quarantine", ["raw_blob_id"])
    op.create_index(
        "ix_interactions_channel_occurred_at", "interactions", ["channel", "occurred_at"]
    )
    with op.batch_alter_table("audit_log") as batch:
        batch.add_column(sa.Column("target", sa.String(320), nullable=False, server_default=""))
        batch.create_index("ix_audit_log_action", ["action"])
    with op.batch_alter_table("users") as batch:
        batch.add_column(sa.Column("disabled", sa.Boolean(), nullable=False, server_default="0"))
        batch.add_column(
            sa.Column("session_epoch", sa.Integer(), nullable=False, server_default="0")
        )
        batch.add_column(sa.Column("last_login_at", When, nullable=True))
    with op.batch_alter_table("tokens") as batch:
        batch.add_column(sa.Column("expires_at", When, nullable=True))
        batch.add_column(sa.Column("revoked_at", When, nullable=True))
        batch.add_column(sa.Column("last_used_at", When, nullable=True))
        batch.create_index("ix_tokens_user_id", ["user_id"])
    op.create_table(
        "blocklist",
        sa.Column("id", Id, primary_key=True),
        sa.Column("entry", sa.String(320), nullable=False),
        sa.Column("user", sa.String(320), nullable=False),
        sa.Column("created_by", sa.String(320), nullable=False),
        sa.Column("created_at", When, nullable=False),
        sa.UniqueConstraint("entry", "user"),
    )
    op.create_table(
        "erased_identities",
        sa.Column("id", Id, primary_key=True),
        sa.Column("digest", sa.String(64), nullable=False, unique=True),
        sa.Column("erased_at", When, nullable=False),
    )
    op.create_table(
        "login_throttle",
        sa.Column("id", Id, primary_key=True),
        sa.Column("key", sa.String(400), nullable=False, unique=True),
        sa.Column("failures", sa.Integer(), nullable=False),
        sa.Column("blocked_until", When, nullable=True),
        sa.Column("last_failure_at", When, nullable=False),
    )
    connection = op.get_bind()
    connectors = sa.table(
        "connectors", sa.column("name", sa.String), sa.column("settings", sa.JSON)
    )
    sources = sa.table(
        "sources",
        sa.column("connector", sa.String),
        sa.column("owner", sa.String),
        sa.column("visibility", sa.String),
    )
    quarantine = sa.table("quarantine", sa.column("connector", sa.String), sa.column("owner"))
    for name, settings in connection.execute(sa.select(connectors.c.name, connectors.c.settings)):
        settings = settings or {}
        owner = _owner(settings)
        visibility = str(settings.get("visibility") or "full")
        connection.execute(
            sources.update()
            .where(sources.c.connector == name)
            .values(owner=owner, visibility=visibility)
        )
        if owner:
            connection.execute(
                quarantine.update().where(quarantine.c.connector == name).values(owner=owner)
            )


def downgrade() -> None:
    op.drop_table("login_throttle")
    op.drop_table("erased_identities")
    op.drop_table("blocklist")
    with op.batch_alter_table("tokens") as batch:
        batch.drop_index("ix_tokens_user_id")
        batch.drop_column("last_used_at")
        batch.drop_column("revoked_at")
        batch.drop_column("expires_at")
    with op.batch_alter_table("users") as batch:
        batch.drop_column("last_login_at")
        batch.drop_column("session_epoch")
        batch.drop_column("disabled")
    with op.batch_alter_table("audit_log") as batch:
        batch.drop_index("ix_audit_log_action")
        batch.drop_column("target")
    op.drop_index("ix_interactions_channel_occurred_at", "interactions")
    op.drop_index("ix_quarantine_raw_blob_id", "quarantine")
    op.drop_index("ix_attachments_blob_id", "attachments")
    op.drop_index("ix_interactions_raw_blob_id", "interactions")
    with op.batch_alter_table("quarantine") as batch:
        batch.drop_column("owner")
    with op.batch_alter_table("sources") as batch:
        batch.drop_index("ix_sources_owner")
        batch.drop_column("visibility")
        batch.drop_column("owner")
