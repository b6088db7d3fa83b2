"""Who sees what (DESIGN.md): the one place that decides what a user's role allows, whether an
item exists for them, and which of its fields they see.

Pure: no I/O. Every route declares the permission it needs (hub.web.endpoints refuses a route
without one); item handlers, search, downloads, exports and sending ask `disclosure`;
storage.visibility states the same rules in SQL for listings, and a test holds the two equal.

Where DESIGN.md is silent, the choices here are the ones a data protection officer signs:
- An item seen in several mailboxes takes the most open of their visibility caps: each
  mailbox on its own would show it that way.
- Unattributed items of a source without owner (a shared archive, a PBX) exist for admins as
  metadata: IT must see what its sources could not attribute, and nobody owns such mail.
- SUBJECT shows a call's notes too; a mail's body, snippet and attachments need FULL.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Protocol

from hub.model import Channel, Disclosure, ReadScope


class Role(enum.StrEnum):
    ADMIN = "admin"
    MANAGER = "manager"
    SALES = "sales"
    CALLCENTER = "callcenter"


ROLES = tuple(r.value for r in Role)


class Permission(enum.StrEnum):
    """What a route needs. Each route of the web view and the API declares exactly one."""

    PUBLIC = "public"  # no login: the login page, health checks
    SIGNED_IN = "signed-in"  # any user, for their own things: logout, own blocklist, API doc
    READ = "read"  # the directory, and items as far as `disclosure` allows
    SEND = "send"  # through a connector the user owns (`may_send_through`)
    CORRECT = "correct"  # add or remove a customer link on an item
    REVIEW = "review"  # answer the review queue
    MERGE = "merge"  # merge duplicate accounts or contacts
    ADMINISTER = "administer"  # users, tokens, connectors, policies, quarantine, audit, exports


_EVERYONE = {Permission.SIGNED_IN, Permission.READ, Permission.SEND}
PERMISSIONS: dict[Role, frozenset[Permission]] = {
    Role.ADMIN: frozenset(_EVERYONE | {Permission.ADMINISTER}),
    Role.MANAGER: frozenset(_EVERYONE | {Permission.CORRECT, Permission.REVIEW, Permission.MERGE}),
    Role.SALES: frozenset(_EVERYONE | {Permission.CORRECT, Permission.REVIEW}),
    Role.CALLCENTER: frozenset(_EVERYONE | {Permission.CORRECT}),
}
# What each role sees of items attributed to customers, before the connectors' caps.
ATTRIBUTED: dict[Role, Disclosure] = {
    Role.ADMIN: Disclosure.METADATA,
    Role.MANAGER: Disclosure.FULL,
    Role.SALES: Disclosure.FULL,
    Role.CALLCENTER: Disclosure.SUBJECT,
}


@dataclass(frozen=True, slots=True)
class Viewer:
    """The user a request acts for. `email` is compared with item and connector owners."""

    email: str
    role: Role

    @classmethod
    def of(cls, email: str, role: str) -> Viewer:
        return cls(email.strip().lower(), Role(role))

    def may(self, permission: Permission) -> bool:
        return permission is Permission.PUBLIC or permission in PERMISSIONS[self.role]

    def owns(self, owner: str) -> bool:
        return bool(owner) and owner.strip().lower() == self.email


@dataclass(frozen=True, slots=True)
class ItemSource:
    """One place an item was seen: the connector, its owner ("" for none) and its cap."""

    owner: str
    visibility: str = "full"
    connector: str = ""


def disclosure(viewer: Viewer, *, attributed: bool, sources: Iterable[_Capped]) -> Disclosure:
    """How much of an item `viewer` sees; NONE means it does not exist for them (404)."""
    seen = sources if isinstance(sources, Sequence) else list(sources)
    if any(viewer.owns(s.owner) for s in seen):
        return Disclosure.FULL
    if not attributed:
        ownerless = not any(s.owner for s in seen)
        return Disclosure.METADATA if ownerless and viewer.role is Role.ADMIN else Disclosure.NONE
    cap = max((Disclosure.of_cap(s.visibility) for s in seen), default=Disclosure.FULL)
    return min(ATTRIBUTED[viewer.role], cap)


class _Capped(Protocol):
    """What `disclosure` reads of a source: ItemSource, a stored source, an ORM row."""

    @property
    def owner(self) -> str: ...

    @property
    def visibility(self) -> str: ...


class _Source(_Capped, Protocol):
    @property
    def connector(self) -> str: ...


class _Link(Protocol):
    @property
    def removed(self) -> bool: ...


class StoredItem(Protocol):
    """What `item_disclosure` reads of a stored item (an ORM row or a storage.items record)."""

    @property
    def sources(self) -> Sequence[_Source]: ...

    @property
    def attributions(self) -> Sequence[_Link]: ...


def item_sources(item: StoredItem) -> list[ItemSource]:
    return [ItemSource(s.owner, s.visibility, s.connector) for s in item.sources]


def item_disclosure(viewer: Viewer, item: StoredItem) -> Disclosure:
    """`disclosure` of a stored item: attributed while any link to a customer is live."""
    attributed = any(not a.removed for a in item.attributions)
    # The item's own sources, not item_sources' copies: made per item of a page, the copies
    # were a fifth of a timeline's policy time (profiled).
    return disclosure(viewer, attributed=attributed, sources=item.sources)


def read_scope(viewer: Viewer) -> ReadScope:
    """`disclosure` for whole listings, in the form storage.visibility turns into SQL."""
    ownerless = Disclosure.METADATA if viewer.role is Role.ADMIN else Disclosure.NONE
    return ReadScope(viewer.email, ATTRIBUTED[viewer.role], ownerless)


def shows_subject(level: Disclosure) -> bool:
    return level >= Disclosure.SUBJECT


def shows_body(level: Disclosure, channel: str) -> bool:
    """Body and snippet: FULL, or a call's notes from SUBJECT on."""
    return level >= Disclosure.FULL or (level >= Disclosure.SUBJECT and channel == Channel.CALL)


def shows_attachments(level: Disclosure) -> bool:
    return level >= Disclosure.FULL


def may_send_through(viewer: Viewer, connector_owner: str) -> bool:
    """Every role sends, but only through a mailbox of its own."""
    return viewer.owns(connector_owner)


def may_read_quarantined(viewer: Viewer, owner: str) -> bool:
    """Raw bytes of an item that could not be read: its owner, or IT when nobody owns it."""
    return viewer.owns(owner) or (not owner and viewer.may(Permission.ADMINISTER))


def audits_read(viewer: Viewer, sources: Iterable[ItemSource], audited: set[str]) -> bool:
    """Whether reading an item goes into the audit log: a connector named in `audited` (those
    marked `audit_reads`) holds it, and the reader is not among the item's owners."""
    seen = list(sources)
    if any(viewer.owns(s.owner) for s in seen):
        return False
    return any(s.connector in audited for s in seen)
