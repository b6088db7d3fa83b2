"""The typed ORM schema. Every change here comes with an Alembic migration."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, ClassVar

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship
from sqlalchemy.types import TypeDecorator

from storage.packing import unpack_text

if TYPE_CHECKING:
    from sqlalchemy import Table

Id = BigInteger().with_variant(Integer(), "sqlite")


class UtcDateTime(TypeDecorator[datetime]):
    """An instant, stored in UTC on every backend and read back time-zone aware.

    SQLite has no time zone type: without this, a mail sent at 09:00+01:00 came back as a naive
    09:00 while PostgreSQL said 08:00+00:00, and timelines ordered by local clock readings.
    A naive value is taken to be UTC.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        utc = value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
        return utc.replace(tzinfo=None) if dialect.name == "sqlite" else utc

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


MAX_ID = 2**63 - 1  # ids are 64-bit integer columns; a larger one cannot exist


class Base(DeclarativeBase):
    type_annotation_map: ClassVar[dict[Any, Any]] = {dict[str, Any]: JSON, list[Any]: JSON}

    if TYPE_CHECKING:
        # SQLAlchemy types it as any FromClause; each row class here has a __tablename__: a Table.
        __table__: ClassVar[Table]


class AccountRow(Base):
    __tablename__ = "accounts"
    id: Mapped[int] = mapped_column(Id, primary_key=True)
    name: Mapped[str] = mapped_column(String(300), unique=True)
    owner: Mapped[str] = mapped_column(String(320), default="", index=True)  # the start page
    domains: Mapped[list[AccountDomainRow]] = relationship(
        back_populates="account", cascade="all, delete-orphan", lazy="selectin"
    )


class AccountDomainRow(Base):
    __tablename__ = "account_domains"
    id: Mapped[int] = mapped_column(Id, primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"))
    domain: Mapped[str] = mapped_column(String(255), index=True)
    account: Mapped[AccountRow] = relationship(back_populates="domains")
    __table_args__ = (UniqueConstraint("account_id", "domain"),)


class ContactRow(Base):
    __tablename__ = "contacts"
    id: Mapped[int] = mapped_column(Id, primary_key=True)
    account_id: Mapped[int | None] = mapped_column(
        ForeignKey("accounts.id", ondelete="SET NULL"), index=True
    )
    name: Mapped[str] = mapped_column(String(300))
    owner: Mapped[str] = mapped_column(String(320), default="")
    title: Mapped[str] = mapped_column(String(200), default="", server_default="")
    emails: Mapped[list[ContactEmailRow]] = relationship(
        cascade="all, delete-orphan", lazy="selectin"
    )
    phones: Mapped[list[ContactPhoneRow]] = relationship(
        cascade="all, delete-orphan", lazy="selectin"
    )
    __table_args__ = (UniqueConstraint("account_id", "name"),)


class ContactEmailRow(Base):
    __tablename__ = "contact_emails"
    id: Mapped[int] = mapped_column(Id, primary_key=True)
    contact_id: Mapped[int] = mapped_column(ForeignKey("contacts.id", ondelete="CASCADE"))
    address: Mapped[str] = mapped_column(String(320), index=True)
    __table_args__ = (UniqueConstraint("contact_id", "address"),)


class ContactPhoneRow(Base):
    __tablename__ = "contact_phones"
    id: Mapped[int] = mapped_column(Id, primary_key=True)
    contact_id: Mapped[int] = mapped_column(ForeignKey("contacts.id", ondelete="CASCADE"))
    e164: Mapped[str] = mapped_column(String(32), index=True)
    __table_args__ = (UniqueConstraint("contact_id", "e164"),)


class DirectoryTermRow(Base):
    """A word an account or contact is found by (storage.directory_search): kept from the
    directory's own rows at every change, searched as a range of the primary key."""

    __tablename__ = "directory_terms"
    kind: Mapped[str] = mapped_column(String(8), primary_key=True)  # account, contact
    term: Mapped[str] = mapped_column(String(64), primary_key=True)
    record_id: Mapped[int] = mapped_column(Id, primary_key=True)
    # Not (kind, record_id): SQLite took such an index for `kind = ?` and read every term of
    # the kind instead of the range of the ones asked for (test_query_plans).
    __table_args__ = (Index("ix_directory_terms_record", "record_id", "kind"),)


class BlobRow(Base):
    """Raw bytes, compressed (storage.blobs.pack), addressed by the SHA-256 of the content."""

    __tablename__ = "blobs"
    id: Mapped[int] = mapped_column(Id, primary_key=True)
    sha256: Mapped[str] = mapped_column(String(64), unique=True)
    size: Mapped[int] = mapped_column(Integer)
    data: Mapped[bytes] = mapped_column(LargeBinary)


class InteractionRow(Base):
    __tablename__ = "interactions"
    id: Mapped[int] = mapped_column(Id, primary_key=True)
    dedupe_key: Mapped[str] = mapped_column(String(512), unique=True)
    channel: Mapped[str] = mapped_column(String(16))
    direction: Mapped[str] = mapped_column(String(16))
    occurred_at: Mapped[datetime] = mapped_column(UtcDateTime(), index=True)
    ends_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    duration_seconds: Mapped[int | None] = mapped_column(Integer)
    subject: Mapped[str] = mapped_column(Text, default="")
    snippet: Mapped[str] = mapped_column(Text, default="")
    # The body text, packed (storage.packing): measured, plain text was 44 % of the bytes a
    # mail sync wrote, for a column only the detail view and the review queue read.
    body: Mapped[bytes | None] = mapped_column(LargeBinary)
    message_id: Mapped[str | None] = mapped_column(String(512), index=True)
    thread_id: Mapped[str | None] = mapped_column(String(512), index=True)
    in_reply_to: Mapped[list[Any]] = mapped_column(JSON, default=list)
    references: Mapped[list[Any]] = mapped_column(JSON, default=list)
    not_logged: Mapped[str] = mapped_column(String(200), default="")
    # Indexed, as every reference to a blob: deleting an item asks whether its blob is still
    # referenced (storage.deletion), and SQLite checks the foreign key on every blob deleted.
    raw_blob_id: Mapped[int | None] = mapped_column(ForeignKey("blobs.id"), index=True)
    extra: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    participants: Mapped[list[ParticipantRow]] = relationship(
        cascade="all, delete-orphan", lazy="selectin", order_by="ParticipantRow.id"
    )
    attributions: Mapped[list[AttributionRow]] = relationship(
        cascade="all, delete-orphan", lazy="selectin", order_by="AttributionRow.id"
    )
    sources: Mapped[list[SourceRow]] = relationship(
        cascade="all, delete-orphan", lazy="selectin", order_by="SourceRow.id"
    )
    attachments: Mapped[list[AttachmentRow]] = relationship(
        cascade="all, delete-orphan", lazy="selectin", order_by="AttachmentRow.id"
    )

    # Retention deletes per channel by age: without it, each pass would read every old item
    # of the channels that are kept to find the few of the channel that is not.
    __table_args__ = (Index("ix_interactions_channel_occurred_at", "channel", "occurred_at"),)

    @property
    def body_text(self) -> str:
        return unpack_text(self.body)


class ParticipantRow(Base):
    __tablename__ = "participants"
    id: Mapped[int] = mapped_column(Id, primary_key=True)
    interaction_id: Mapped[int] = mapped_column(
        ForeignKey("interactions.id", ondelete="CASCADE"), index=True
    )
    role: Mapped[str] = mapped_column(String(16))
    kind: Mapped[str] = mapped_column(String(8))
    address: Mapped[str] = mapped_column(String(320))
    normalized: Mapped[str | None] = mapped_column(String(320), index=True)
    name: Mapped[str] = mapped_column(String(300), default="")
    contact_id: Mapped[int | None] = mapped_column(ForeignKey("contacts.id", ondelete="SET NULL"))
    # The item's time, copied (it never changes): a contact's timeline is then one index range
    # scan over (contact_id, occurred_at, interaction_id), whatever the size of the table.
    occurred_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    # The mail domain with its labels reversed ("de.acme.eu" for eu.acme.de), so that "acme.de
    # and every subdomain of it" is an index range scan when an account gains a domain.
    rdomain: Mapped[str | None] = mapped_column(String(255), index=True)
    __table_args__ = (
        Index("ix_participants_contact_timeline", "contact_id", "occurred_at", "interaction_id"),
    )


class AuditRow(Base):
    """Who did what, when: logins, changes of users, tokens, connectors and policies, manual
    attributions (with the state before and after), exports, erasures and audited reads.

    Append-only: nothing but an erasure rewrites an entry, and only to remove the erased
    person's identifiers from it (storage.privacy).
    """

    __tablename__ = "audit_log"
    id: Mapped[int] = mapped_column(Id, primary_key=True)
    at: Mapped[datetime] = mapped_column(UtcDateTime(), index=True)
    actor: Mapped[str] = mapped_column(String(320))
    action: Mapped[str] = mapped_column(String(64), index=True)
    # What the entry is about, for filtering: a user's address, a connector name, a token id.
    target: Mapped[str] = mapped_column(String(320), default="")
    interaction_id: Mapped[int | None] = mapped_column(
        ForeignKey("interactions.id", ondelete="SET NULL"), index=True
    )
    before: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    after: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


class ReviewItemRow(Base):
    """One open (or settled) review question about one item; see hub.model.ReviewCase.

    The queue shows them grouped by (kind, key): one decision settles every item of a sender.
    """

    __tablename__ = "review_items"
    id: Mapped[int] = mapped_column(Id, primary_key=True)
    interaction_id: Mapped[int] = mapped_column(
        ForeignKey("interactions.id", ondelete="CASCADE"), index=True
    )
    kind: Mapped[str] = mapped_column(String(32))
    key: Mapped[str] = mapped_column(String(320))
    name: Mapped[str] = mapped_column(String(300), default="")
    reason: Mapped[str] = mapped_column(Text, default="")
    candidates: Mapped[list[Any]] = mapped_column(JSON, default=list)
    opened_at: Mapped[datetime] = mapped_column(UtcDateTime())
    settled_by: Mapped[str | None] = mapped_column(String(320))
    settled_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    settlement: Mapped[str] = mapped_column(Text, default="")
    # The item's time, copied: the queue is read newest first from (open, time, item), and
    # whether a case has items newer than a page's start is a range of its own index.
    occurred_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    # Who may see the item, copied by the database's triggers (migration 0021 says why and
    # how): its one mailbox owner ("" for none, NULL for several) and whether an attribution
    # that is no tombstone names it. Never written by the code: the triggers keep them.
    item_owner: Mapped[str | None] = mapped_column(String(320))
    item_attributed: Mapped[bool | None] = mapped_column(Boolean)
    __table_args__ = (
        UniqueConstraint("interaction_id", "kind", "key"),
        # Open rows only (migration 0010 says why), by the question: a case's rows, a key's.
        Index(
            "ix_review_items_open",
            "key",
            "kind",
            "occurred_at",
            sqlite_where=text("settled_at IS NULL"),
            postgresql_where=text("settled_at IS NULL"),
        ),
        # Partial: PostgreSQL does not take `settled_at IS NULL` as an equality that leaves the
        # index in time order, and settled rows are never walked.
        Index(
            "ix_review_items_queue",
            "occurred_at",
            "id",
            sqlite_where=text("settled_at IS NULL"),
            postgresql_where=text("settled_at IS NULL"),
        ),
    )


class ReviewIgnoredRow(Base):
    """A key (address, number or domain) people asked the review queue never to show again."""

    __tablename__ = "review_ignored"
    id: Mapped[int] = mapped_column(Id, primary_key=True)
    key: Mapped[str] = mapped_column(String(320), unique=True)
    actor: Mapped[str] = mapped_column(String(320))
    at: Mapped[datetime] = mapped_column(UtcDateTime())


class DirectoryStateRow(Base):
    """One row whose `version` every directory change raises, in the same transaction.

    Long-running processes (web, dropbox, worker) keep an IdentityIndex in memory and rebuild
    it only when this number moved: one cheap read per use instead of loading the directory.
    """

    __tablename__ = "directory_state"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    version: Mapped[int] = mapped_column(BigInteger, default=0)


class AttributionRow(Base):
    """`removed` marks a tombstone: a manually removed link that re-matching must not re-add."""

    __tablename__ = "attributions"
    id: Mapped[int] = mapped_column(Id, primary_key=True)
    interaction_id: Mapped[int] = mapped_column(ForeignKey("interactions.id", ondelete="CASCADE"))
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"))
    contact_id: Mapped[int | None] = mapped_column(ForeignKey("contacts.id", ondelete="SET NULL"))
    rule: Mapped[str] = mapped_column(String(32))
    confidence: Mapped[float] = mapped_column(Float)
    explanation: Mapped[str] = mapped_column(Text, default="")
    manual: Mapped[bool] = mapped_column(Boolean, default=False)
    removed: Mapped[bool] = mapped_column(Boolean, default=False)
    # The item's time, copied (it never changes), so that a timeline page is one index range
    # scan from (account or contact, time, item): measured at a million items, the join on
    # interactions.occurred_at discarded hundreds of thousands of rows per page.
    occurred_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    __table_args__ = (
        # Covering "is the item attributed" (storage.visibility), asked per row of a listing.
        Index("ix_attributions_item_present", "interaction_id", "removed"),
        Index("ix_attributions_account_interaction", "account_id", "interaction_id"),
        Index("ix_attributions_account_timeline", "account_id", "occurred_at", "interaction_id"),
        Index("ix_attributions_contact_timeline", "contact_id", "occurred_at", "interaction_id"),
    )


class SourceRow(Base):
    """Where a stored interaction was seen: one row per (connector, external id)."""

    __tablename__ = "sources"
    id: Mapped[int] = mapped_column(Id, primary_key=True)
    interaction_id: Mapped[int] = mapped_column(ForeignKey("interactions.id", ondelete="CASCADE"))
    connector: Mapped[str] = mapped_column(String(100))
    external_id: Mapped[str] = mapped_column(String(512))
    content_sha256: Mapped[str] = mapped_column(String(64), default="")
    # The mailbox owner of the connector at ingest ("" for none): who may always see the item.
    # Kept here, not read from the connector, so that removing a connector never makes its
    # private items ownerless.
    owner: Mapped[str] = mapped_column(String(320), default="")
    # The connector's visibility cap (full, subject, metadata) for everyone but the owner;
    # changing the connector's setting rewrites it here, so tightening reaches stored items.
    visibility: Mapped[str] = mapped_column(String(8), default="full")
    # The item's time, copied (it never changes): a user's unmatched items are then a range of
    # (owner, time, item) read newest first, not a walk through everybody's items.
    occurred_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    __table_args__ = (
        UniqueConstraint("connector", "external_id"),
        # Covering who owns the item and its cap (storage.visibility), asked per row listed.
        Index("ix_sources_item_access", "interaction_id", "owner", "visibility"),
        Index("ix_sources_owner_timeline", "owner", "occurred_at", "interaction_id"),
        # A connector's newest item and its items per day (storage.connectors_state): ranges
        # of one connector, not a walk through every source row.
        Index("ix_sources_connector_time", "connector", "occurred_at"),
    )


class NativeIdRow(Base):
    """A call's or message's own id in the system that reported it (a Twilio CallSid, an
    Asterisk uniqueid or linkedid), so that a script holding that id finds the item: one
    call can have several (its legs, a PBX and a carrier), one id one row per item."""

    __tablename__ = "native_ids"
    id: Mapped[int] = mapped_column(Id, primary_key=True)
    interaction_id: Mapped[int] = mapped_column(ForeignKey("interactions.id", ondelete="CASCADE"))
    native_id: Mapped[str] = mapped_column(String(200))
    __table_args__ = (
        UniqueConstraint("native_id", "interaction_id"),
        Index("ix_native_ids_item", "interaction_id"),
    )


class AttachmentRow(Base):
    __tablename__ = "attachments"
    id: Mapped[int] = mapped_column(Id, primary_key=True)
    interaction_id: Mapped[int] = mapped_column(
        ForeignKey("interactions.id", ondelete="CASCADE"), index=True
    )
    filename: Mapped[str] = mapped_column(String(500))
    content_type: Mapped[str] = mapped_column(String(200))
    size: Mapped[int] = mapped_column(Integer)
    blob_id: Mapped[int | None] = mapped_column(ForeignKey("blobs.id"), index=True)


class QuarantineRow(Base):
    __tablename__ = "quarantine"
    id: Mapped[int] = mapped_column(Id, primary_key=True)
    connector: Mapped[str] = mapped_column(String(100))
    external_id: Mapped[str] = mapped_column(String(512))
    reason: Mapped[str] = mapped_column(Text)
    raw_blob_id: Mapped[int | None] = mapped_column(ForeignKey("blobs.id"), index=True)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())
    owner: Mapped[str] = mapped_column(String(320), default="")  # as SourceRow.owner
    __table_args__ = (UniqueConstraint("connector", "external_id"),)


class ConnectorRow(Base):
    __tablename__ = "connectors"
    id: Mapped[int] = mapped_column(Id, primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    kind: Mapped[str] = mapped_column(String(200))
    settings: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    secrets: Mapped[str] = mapped_column(Text, default="")
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    status: Mapped[str] = mapped_column(String(16), default="new")
    last_error: Mapped[str] = mapped_column(Text, default="")
    cursor: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    last_sync_at: Mapped[datetime | None] = mapped_column(UtcDateTime())  # failed or not
    last_success_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    # The latest sync run, claimed here by one process at a time (storage.connectors_state):
    # running while not ended and beating; a run whose beat stopped died with its process.
    run_started_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    run_beat_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    run_ended_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    run_progress: Mapped[dict[str, Any]] = mapped_column(
        JSON, default=dict, server_default=text("'{}'")
    )
    # The process listening to a live source (connectors.base.Listener), one at a time across
    # processes and machines (hub.listener_lease): a lease it renews; a stale one is free.
    listener_holder: Mapped[str | None] = mapped_column(String(100))
    listener_beat_at: Mapped[datetime | None] = mapped_column(UtcDateTime())


class UserRow(Base):
    __tablename__ = "users"
    id: Mapped[int] = mapped_column(Id, primary_key=True)
    email: Mapped[str] = mapped_column(String(320), unique=True)
    role: Mapped[str] = mapped_column(String(16))
    password_hash: Mapped[str] = mapped_column(String(300), default="")
    disabled: Mapped[bool] = mapped_column(Boolean, default=False)
    # Every session cookie carries the epoch it was issued in; raising it (password change,
    # disabling) ends all of the user's sessions at once, though cookies are not stored.
    session_epoch: Mapped[int] = mapped_column(Integer, default=0)
    last_login_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    timezone: Mapped[str] = mapped_column(String(64), default="", server_default="")  # "": config


class TokenRow(Base):
    __tablename__ = "tokens"
    id: Mapped[int] = mapped_column(Id, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    token_sha256: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())
    expires_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    revoked_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    last_used_at: Mapped[datetime | None] = mapped_column(UtcDateTime())


class BlocklistRow(Base):
    """An address or domain whose items are never stored: admin-wide (`user` "") or for the
    mailboxes of one user."""

    __tablename__ = "blocklist"
    id: Mapped[int] = mapped_column(Id, primary_key=True)
    entry: Mapped[str] = mapped_column(String(320))
    user: Mapped[str] = mapped_column(String(320), default="")
    created_by: Mapped[str] = mapped_column(String(320))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())
    __table_args__ = (UniqueConstraint("entry", "user"),)


class ErasedIdentityRow(Base):
    """An address or number that was erased, kept only as a keyed hash (HMAC-SHA256 with the
    hub's secret key): enough for ingest to refuse it again, useless for finding out who."""

    __tablename__ = "erased_identities"
    id: Mapped[int] = mapped_column(Id, primary_key=True)
    digest: Mapped[str] = mapped_column(String(64), unique=True)
    erased_at: Mapped[datetime] = mapped_column(UtcDateTime())


class LoginThrottleRow(Base):
    """Failed logins per account ("account:EMAIL") and per client address ("client:IP").

    In the database, not in memory, so that several web processes share one count.
    """

    __tablename__ = "login_throttle"
    id: Mapped[int] = mapped_column(Id, primary_key=True)
    key: Mapped[str] = mapped_column(String(400), unique=True)
    failures: Mapped[int] = mapped_column(Integer, default=0)
    blocked_until: Mapped[datetime | None] = mapped_column(UtcDateTime())
    last_failure_at: Mapped[datetime] = mapped_column(UtcDateTime())


class CallNoteRow(Base):
    """What an agent wrote about a call, with the outcome word they chose (storage.call_notes
    OUTCOMES): it stays with the call, in the order written, and its words find the call."""

    __tablename__ = "call_notes"
    id: Mapped[int] = mapped_column(Id, primary_key=True)
    interaction_id: Mapped[int] = mapped_column(ForeignKey("interactions.id", ondelete="CASCADE"))
    author: Mapped[str] = mapped_column(String(320))
    written_at: Mapped[datetime] = mapped_column(UtcDateTime())
    outcome: Mapped[str] = mapped_column(String(32), default="")
    text: Mapped[str] = mapped_column(Text, default="")
    __table_args__ = (Index("ix_call_notes_item", "interaction_id", "id"),)


class CallPartiesRow(Base):
    """A call's two normalised numbers, sorted and joined (`pair`), at its start: the same
    call reported by a PBX and by a carrier is found as a range of (pair, time) within 60 s
    (storage.call_merge), not by reading every call of the minute."""

    __tablename__ = "call_parties"
    interaction_id: Mapped[int] = mapped_column(
        ForeignKey("interactions.id", ondelete="CASCADE"), primary_key=True
    )
    pair: Mapped[str] = mapped_column(String(80))
    occurred_at: Mapped[datetime] = mapped_column(UtcDateTime())
    __table_args__ = (Index("ix_call_parties_pair_time", "pair", "occurred_at"),)


class MissedCallRow(Base):
    """An inbound call from a known customer that nobody answered: open (closed_at NULL) until
    a later answered call or a mail with the customer, or its owner's "done", closes it.

    `owner` is the contact's owner, else its account's, when the call came in: whose start
    page lists it (storage.missed_calls)."""

    __tablename__ = "missed_calls"
    id: Mapped[int] = mapped_column(Id, primary_key=True)
    interaction_id: Mapped[int] = mapped_column(
        ForeignKey("interactions.id", ondelete="CASCADE"), unique=True
    )
    # SET NULL: a merged-away contact leaves its open calls on the owner's page, to close by hand.
    contact_id: Mapped[int | None] = mapped_column(ForeignKey("contacts.id", ondelete="SET NULL"))
    account_id: Mapped[int | None] = mapped_column(ForeignKey("accounts.id", ondelete="SET NULL"))
    owner: Mapped[str] = mapped_column(String(320), default="")
    occurred_at: Mapped[datetime] = mapped_column(UtcDateTime())
    closed_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    # What closed it: "interaction:ID" (a later call or mail) or "user:EMAIL" (done).
    closed_by: Mapped[str] = mapped_column(String(340), default="")
    __table_args__ = (
        # The start page: an owner's open ones, newest first. Partial: closed rows are history.
        Index(
            "ix_missed_calls_owner_open",
            "owner",
            "occurred_at",
            sqlite_where=text("closed_at IS NULL"),
            postgresql_where=text("closed_at IS NULL"),
        ),
        # Closing: a contact's open ones older than the item that answers them.
        Index(
            "ix_missed_calls_contact_open",
            "contact_id",
            "occurred_at",
            sqlite_where=text("closed_at IS NULL"),
            postgresql_where=text("closed_at IS NULL"),
        ),
    )


class CalendarFeedRow(Base):
    """A read-only iCalendar subscription to one account's meetings (storage.calendar_feeds):
    the token is in the feed's URL and stored as SHA-256 only. The feed shows what its creator
    may see, as their role is now; revoked (revoked_at set), the URL answers 404."""

    __tablename__ = "calendar_feeds"
    id: Mapped[int] = mapped_column(Id, primary_key=True)
    account_id: Mapped[int] = mapped_column(
        ForeignKey("accounts.id", ondelete="CASCADE"), index=True
    )
    token_sha256: Mapped[str] = mapped_column(String(64), unique=True)
    created_by: Mapped[str] = mapped_column(String(320))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())
    revoked_at: Mapped[datetime | None] = mapped_column(UtcDateTime())


class MeetingReplyRow(Base):
    """An attendee's answer from an iMIP reply mail (storage.meeting_answers), kept so that a
    meeting stored or revised after the mail still gets it: looked up by the meeting's UID,
    deleted with the mail."""

    __tablename__ = "meeting_replies"
    id: Mapped[int] = mapped_column(Id, primary_key=True)
    interaction_id: Mapped[int] = mapped_column(ForeignKey("interactions.id", ondelete="CASCADE"))
    uid: Mapped[str] = mapped_column(String(512))
    # The occurrence as in the meeting's dedupe key; NULL: the reply answers the whole series.
    occurrence: Mapped[str | None] = mapped_column(String(512))
    sequence: Mapped[int] = mapped_column(Integer)
    address: Mapped[str] = mapped_column(String(320))
    answer: Mapped[str] = mapped_column(String(32))
    sent_at: Mapped[datetime] = mapped_column(UtcDateTime())
    __table_args__ = (
        Index("ix_meeting_replies_uid", "uid", "interaction_id", "address", unique=True),
        Index("ix_meeting_replies_item", "interaction_id"),
    )
