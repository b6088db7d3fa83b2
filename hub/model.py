"""The domain vocabulary of crmhub: plain dataclasses and enums, no I/O, no project imports.

Connectors translate what they fetch into these types, matching reads them, storage persists
them. Keeping them free of frameworks lets every layer be tested without a database.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, TypeVar, dataclass_transform

_Record = TypeVar("_Record")


@dataclass_transform(frozen_default=True)
def record(cls: type[_Record]) -> type[_Record]:
    """A frozen dataclass with slots, for values a request builds per row: a timeline page's
    items with their parties, links and sources, a review page's cases.

    Frozen for mypy, which the suite runs (tests/unit/test_static_checks.py): assigning a
    field is a type error. At run time it is a plain dataclass, hashable like a frozen one.
    A frozen dataclass sets every field through object.__setattr__: 2.8 µs to build a view
    of 26 fields against 0.5 µs, six such objects and more per item of a page.
    """
    return dataclass(slots=True, unsafe_hash=True)(cls)


class Channel(enum.StrEnum):
    EMAIL = "email"
    CALL = "call"
    SMS = "sms"
    IM = "im"  # chat messages (WhatsApp through Twilio)
    MEETING = "meeting"
    FAX = "fax"
    NOTE = "note"


class Direction(enum.StrEnum):
    INBOUND = "inbound"
    OUTBOUND = "outbound"
    INTERNAL = "internal"


class Role(enum.StrEnum):
    """What a participant did in an interaction."""

    FROM = "from"
    TO = "to"
    CC = "cc"
    BCC = "bcc"
    ORGANIZER = "organizer"
    ATTENDEE = "attendee"
    CALLER = "caller"
    CALLEE = "callee"


class AddressKind(enum.StrEnum):
    EMAIL = "email"
    PHONE = "phone"


@dataclass(frozen=True, slots=True)
class Participant:
    """One party of an interaction, as the source named it (not yet normalised)."""

    role: Role
    address: str
    kind: AddressKind = AddressKind.EMAIL
    name: str = ""
    # The source knows this party is us: a number of our own Twilio account, a PBX extension
    # the PBX names. A full number otherwise looks like any customer's.
    ours: bool = False


@dataclass(frozen=True, slots=True)
class Attachment:
    filename: str
    content_type: str
    size: int
    content: bytes | None = None  # None when the body was dropped (size caps)


@dataclass(slots=True)
class Interaction:
    """One communication event as a connector saw it.

    `dedupe_key` identifies the event across sources: the Message-ID for mail, UID plus
    RECURRENCE-ID for a meeting occurrence, the PBX's call id for a call. Two connectors that
    see the same key produce one stored interaction with two sources.
    """

    channel: Channel
    occurred_at: datetime
    dedupe_key: str
    direction: Direction = Direction.INBOUND
    subject: str = ""
    snippet: str = ""
    body_text: str = ""
    body_html: str = ""
    participants: list[Participant] = field(default_factory=list)
    message_id: str | None = None
    in_reply_to: list[str] = field(default_factory=list)
    references: list[str] = field(default_factory=list)
    thread_key: str | None = None
    attachments: list[Attachment] = field(default_factory=list)
    headers: dict[str, str] = field(default_factory=dict)
    duration_seconds: int | None = None
    ends_at: datetime | None = None
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Account:
    """A customer company. `domains` are lower-case, IDNA-encoded mail domains it owns."""

    name: str
    domains: tuple[str, ...] = ()
    owner: str = ""
    id: int | None = None


@dataclass(frozen=True, slots=True)
class Contact:
    """A person at a customer. Emails normalised, phones in E.164."""

    name: str
    account_id: int | None
    emails: tuple[str, ...] = ()
    phones: tuple[str, ...] = ()
    owner: str = ""
    id: int | None = None
    title: str = ""  # job title, as the directory gives it


@dataclass(frozen=True, slots=True)
class Attribution:
    """Why an interaction belongs to a customer. `rule` names the policy rule that decided."""

    account_id: int
    rule: str
    confidence: float
    explanation: str = ""
    contact_id: int | None = None
    manual: bool = False


class Disclosure(enum.IntEnum):
    """How much of one stored item a user may see (DESIGN.md "Who sees what"), in order.

    SUBJECT shows a call's notes as well: they are what a call center writes about a call.
    """

    NONE = 0  # the item does not exist for this user (404, never 403)
    METADATA = 1  # channel, direction, times, participants, attributions, sources
    SUBJECT = 2  # and the subject (and a call's notes); no mail body, snippet or attachment
    FULL = 3  # everything

    @classmethod
    def of_cap(cls, visibility: str) -> Disclosure:
        """A connector's `visibility` setting (full, subject, metadata) as a disclosure."""
        return {"full": cls.FULL, "subject": cls.SUBJECT, "metadata": cls.METADATA}.get(
            visibility, cls.METADATA
        )


@dataclass(frozen=True, slots=True)
class ReadScope:
    """What one user may list, as storage needs it to filter in SQL (hub.policy builds it).

    `email` sees everything of the items it owns; attributed items up to `attributed`, capped
    by each source's visibility; unattributed items without any owner up to `ownerless`.
    """

    email: str
    attributed: Disclosure
    ownerless: Disclosure = Disclosure.NONE


class ReviewKind(enum.StrEnum):
    """Why matching wants a person to look: it could not decide, or decided on thin ground."""

    UNKNOWN_SENDER = "unknown-sender"  # free-mail or unknown number, no thread, no attribution
    NAME_LOOKALIKE = "name-lookalike"  # display name of a contact, address of nobody we know
    SHARED_DOMAIN = "shared-domain"  # one domain listed by several accounts
    SHARED_ADDRESS = "shared-address"  # one address or number on contacts of several accounts


@dataclass(frozen=True, slots=True)
class ReviewCase:
    """One open question about one item. `key` is what a decision settles for every item:
    the normalised address or number, or the domain for SHARED_DOMAIN. `candidates` are the
    accounts (SHARED_DOMAIN) or contacts (the other kinds) matching already suspects."""

    kind: ReviewKind
    key: str
    name: str = ""
    reason: str = ""
    candidates: tuple[int, ...] = ()


@dataclass(frozen=True, slots=True)
class RawItem:
    """One item as fetched, before translation: kept compressed so it can be re-parsed later."""

    external_id: str
    data: bytes
    content_type: str = "message/rfc822"
    # Why the fetcher found the item private (an IMAP keyword, a folder) before downloading
    # it: `data` is then empty, and translation turns the item into Skipped untouched.
    private: str = ""
    # The mailbox the item came from, for a connector that reads many (Exchange impersonation,
    # a Microsoft 365 tenant): its owner instead of the connector's. "" for the connector's.
    owner: str = ""


@dataclass(frozen=True, slots=True)
class Quarantined:
    """A raw item that could not be translated, with the reason shown to the user."""

    raw: RawItem
    reason: str


@dataclass(frozen=True, slots=True)
class Skipped:
    """A raw item that is deliberately not stored (marked private, blocklisted): counted in the
    sync report as `skipped`, never translated further, never quarantined."""

    raw: RawItem
    reason: str


@dataclass(frozen=True, slots=True)
class Translated:
    """A raw item and the interaction it was translated to."""

    raw: RawItem
    interaction: Interaction
