"""Read models: what handlers, templates and the JSON API get instead of ORM rows.

An interaction view is built for one viewer through hub.policy, so a field the viewer may not
see is not in it at all: no template or serializer can show it by mistake.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, date, datetime
from typing import Any

from hub.model import Channel, Disclosure, record
from hub.policy import Viewer, item_disclosure, shows_attachments, shows_body, shows_subject
from storage.directory_reads import StoredAccount, StoredContact
from storage.items import StoredInteraction, StoredParticipant
from storage.tables import (
    AccountRow,
    AuditRow,
    ContactRow,
    InteractionRow,
    QuarantineRow,
)


@record
class AccountView:
    id: int
    name: str
    domains: tuple[str, ...]
    owner: str

    def as_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "domains": list(self.domains),
            "owner": self.owner,
        }


def account_view(row: AccountRow | StoredAccount) -> AccountView:
    if isinstance(row, StoredAccount):
        return AccountView(row.id, row.name, row.domains, row.owner)
    return AccountView(row.id, row.name, tuple(d.domain for d in row.domains), row.owner)


@record
class ContactView:
    id: int
    name: str
    account_id: int | None
    emails: tuple[str, ...]
    phones: tuple[str, ...]
    owner: str
    title: str = ""

    def as_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "title": self.title,
            "account_id": self.account_id,
            "emails": list(self.emails),
            "phones": list(self.phones),
            "owner": self.owner,
        }


def contact_view(row: ContactRow | StoredContact) -> ContactView:
    if isinstance(row, StoredContact):
        return ContactView(
            row.id, row.name, row.account_id, row.emails, row.phones, row.owner, row.title
        )
    return ContactView(
        row.id,
        row.name,
        row.account_id,
        tuple(e.address for e in row.emails),
        tuple(p.e164 for p in row.phones),
        row.owner,
        row.title,
    )


@record
class ParticipantView:
    role: str
    kind: str
    address: str
    name: str
    contact_id: int | None
    contact_name: str = ""  # the directory's name, when the party is a known contact
    answer: str = ""  # a meeting attendee's reply (RFC 5545 PARTSTAT, lower case)

    @property
    def shown(self) -> str:
        """How a person reads the party: the contact's name before the number a PBX logged,
        and a number nobody can call back (anonymous, restricted, empty) as withheld."""
        if self.contact_name:
            return self.contact_name
        if self.kind == "phone" and not any(c.isdigit() for c in self.address):
            return "withheld number"  # whatever name the network put beside it ("Anonymous")
        return self.name or self.address


@record
class AttributionView:
    account_id: int
    contact_id: int | None
    rule: str
    confidence: float
    manual: bool
    explanation: str


@record
class AttachmentView:
    id: int
    filename: str
    content_type: str
    size: int
    downloadable: bool


@record
class SourceView:
    connector: str
    external_id: str


@record
class InteractionView:
    """One item as one viewer may see it. `subject`, `snippet` and `body_text` are None when
    withheld (`disclosure` says how much is shown); withheld attachments are simply absent."""

    id: int
    disclosure: Disclosure
    channel: str
    direction: str | None  # None for a meeting: nobody sends one to the other
    occurred_at: datetime
    ends_at: datetime | None
    duration_seconds: int | None
    subject: str | None
    snippet: str | None
    body_text: str | None
    participants: tuple[ParticipantView, ...]
    attributions: tuple[AttributionView, ...]
    sources: tuple[SourceView, ...]
    attachments: tuple[AttachmentView, ...]
    message_id: str | None
    thread_id: str | None
    not_logged: str
    owned: bool  # the viewer is among the owners: the item is in their own mailbox
    location: str | None = None  # a meeting's place; None when the subject is withheld
    outcome: str = ""  # a call's disposition as the PBX logged it ("answered", "no answer")
    # The latest call note's outcome and words, and how many notes (storage.call_notes keeps
    # them on the call); None where the viewer may not read the call's notes.
    note: dict[str, Any] | None = None
    cancelled: bool = False  # a meeting its organizer cancelled: it stays, marked
    # An all-day meeting's day (ISO date): shown as that day, not as a time in any zone.
    all_day: str | None = None
    # A call's recordings (Twilio RecordingSids), heard through /api/interactions/{id}/recording;
    # () where the viewer may not hear them (as a call's notes: hub.policy.shows_body).
    recordings: tuple[str, ...] = ()

    @property
    def upcoming(self) -> bool:
        """Whether the item is still ahead (a meeting booked for later): the timeline shows
        it above the past, next first."""
        return self.occurred_at > datetime.now(UTC)

    @property
    def title(self) -> str | None:
        """The line a listing shows: a call by its parties (their names, not numbers), anything
        else by its subject (None when withheld from the viewer)."""
        if self.channel == "call":
            caller = next((p.shown for p in self.participants if p.role == "caller"), "")
            callee = next((p.shown for p in self.participants if p.role == "callee"), "")
            if caller or callee:
                return f"Call from {caller or 'withheld number'} to {callee or 'unknown'}"
        return self.subject

    @property
    def accounts(self) -> list[tuple[int, list[AttributionView]]]:
        """The attributions one line per account (a meeting with three people of one customer
        is that customer's once), in the order they were made."""
        lines: dict[int, list[AttributionView]] = {}
        for a in self.attributions:
            lines.setdefault(a.account_id, []).append(a)
        return list(lines.items())

    def as_json(self, *, full: bool = False) -> dict[str, Any]:
        doc: dict[str, Any] = {
            "id": self.id,
            "channel": self.channel,
            "direction": self.direction,
            "occurred_at": self.occurred_at.isoformat(),
            "ends_at": self.ends_at.isoformat() if self.ends_at else None,
            "subject": self.subject,
            "snippet": self.snippet,
            "participants": [
                {
                    "role": p.role,
                    "kind": p.kind,
                    "address": p.address,
                    "name": p.name,
                    "contact_id": p.contact_id,
                }
                for p in self.participants
            ],
            "attributions": [
                {
                    "account_id": a.account_id,
                    "contact_id": a.contact_id,
                    "rule": a.rule,
                    "confidence": a.confidence,
                    "manual": a.manual,
                    "explanation": a.explanation,
                }
                for a in self.attributions
            ],
            "sources": [
                {"connector": s.connector, "external_id": s.external_id} for s in self.sources
            ],
            "message_id": self.message_id,
            "thread_id": self.thread_id,
            "not_logged": self.not_logged,
            "duration_seconds": self.duration_seconds,
            "attachments": [
                {
                    "id": a.id,
                    "filename": a.filename,
                    "content_type": a.content_type,
                    "size": a.size,
                    "downloadable": a.downloadable,
                }
                for a in self.attachments
            ],
            "visibility": self.disclosure.name.lower(),
            "cancelled": self.cancelled,
            "all_day": self.all_day,
        }
        if full:
            doc["body_text"] = self.body_text
        return doc


Item = InteractionRow | StoredInteraction


def interaction_view(
    viewer: Viewer, row: Item, names: Mapping[int, str] | None = None
) -> InteractionView | None:
    """The item as `viewer` may see it, or None when it does not exist for them.

    A listing reads items without their bodies (storage.items): their views say None for the
    body, as no listing shows one; the detail view passes the stored row, and the names of
    its parties' contacts (`names`), which a listing reads with the item.
    """
    level = item_disclosure(viewer, row)
    if level is Disclosure.NONE:
        return None
    body = shows_body(level, row.channel)
    extra = row.extra or {}
    answers = extra.get("answers")
    if not isinstance(answers, dict):
        answers = {}

    def contact_name(p: Any) -> str:
        if isinstance(p, StoredParticipant):
            return p.contact_name or ""
        return (names or {}).get(p.contact_id, "") if p.contact_id else ""

    return InteractionView(
        id=row.id,
        disclosure=level,
        channel=row.channel,
        direction=None if row.channel == Channel.MEETING else row.direction,
        occurred_at=row.occurred_at,
        ends_at=row.ends_at,
        duration_seconds=row.duration_seconds,
        subject=row.subject if shows_subject(level) else None,
        snippet=row.snippet if body else None,
        body_text=row.body_text if body and isinstance(row, InteractionRow) else None,
        participants=tuple(
            ParticipantView(
                p.role,
                p.kind,
                p.address,
                p.name,
                p.contact_id,
                contact_name(p),
                str(answers.get(p.address.lower(), "")),
            )
            for p in row.participants
        ),
        attributions=tuple(
            AttributionView(
                a.account_id, a.contact_id, a.rule, a.confidence, a.manual, a.explanation
            )
            for a in row.attributions
            if not a.removed
        ),
        sources=tuple(SourceView(s.connector, s.external_id) for s in row.sources),
        attachments=tuple(
            AttachmentView(a.id, a.filename, a.content_type, a.size, a.blob_id is not None)
            for a in row.attachments
        )
        if shows_attachments(level)
        else (),
        message_id=row.message_id,
        thread_id=row.thread_id,
        not_logged=row.not_logged,
        owned=any(viewer.owns(s.owner) for s in row.sources),
        location=str(extra.get("location") or "") if shows_subject(level) else None,
        outcome=str(extra.get("disposition") or "").lower(),
        note=extra.get("notes") if body and isinstance(extra.get("notes"), dict) else None,
        cancelled=extra.get("status") == "cancelled",
        all_day=_day(extra.get("all_day")),
        recordings=tuple(str(r) for r in extra.get("recordings") or ()) if body else (),
    )


def _day(value: Any) -> str | None:
    """The stored all-day date, when it is one (a value that is not a date shows the time)."""
    try:
        return date.fromisoformat(value).isoformat() if isinstance(value, str) else None
    except ValueError:
        return None


@record
class ThreadRow:
    """A timeline row: one item, or a thread's newest mail on the page with the thread's
    other mails of the page (`earlier`) and its size as the reader may see it."""

    item: InteractionView
    earlier: tuple[InteractionView, ...] = ()
    size: int = 1

    @property
    def people(self) -> list[str]:
        """Everyone who wrote or was written to in the thread's mails on the page, once."""
        names = {p.shown: None for v in (self.item, *self.earlier) for p in v.participants}
        return list(names)


def thread_rows(views: list[InteractionView], sizes: Mapping[str, int]) -> list[ThreadRow]:
    """A page's items as rows, a mail thread's items folded into the row of its newest."""
    heads: list[InteractionView] = []
    earlier: dict[int, list[InteractionView]] = {}  # by the id of the thread's row
    row_of: dict[str, int] = {}  # thread id -> id of its row's item
    for view in views:
        thread = view.thread_id if view.channel == "email" else None
        if thread and thread in row_of:
            earlier[row_of[thread]].append(view)
            continue
        if thread:
            row_of[thread] = view.id
            earlier[view.id] = []
        heads.append(view)
    rows = []
    for head in heads:
        folded = earlier.get(head.id, [])
        size = max(sizes.get(head.thread_id or "", 1), 1 + len(folded)) if head.id in earlier else 1
        rows.append(ThreadRow(head, tuple(folded), size))
    return rows


def interaction_views(viewer: Viewer, rows: list[Item]) -> list[InteractionView]:
    """Rows a listing found (already filtered in SQL) as views; the policy is asked again."""
    return [v for v in (interaction_view(viewer, r) for r in rows) if v is not None]


@record
class QuarantineView:
    id: int
    connector: str
    external_id: str
    reason: str
    created_at: datetime
    raw_readable: bool

    def as_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "connector": self.connector,
            "external_id": self.external_id,
            "reason": self.reason,
            "created_at": self.created_at.isoformat(),
            "raw_readable": self.raw_readable,
        }


def quarantine_view(row: QuarantineRow, raw_readable: bool) -> QuarantineView:
    return QuarantineView(
        row.id,
        row.connector,
        row.external_id,
        row.reason,
        row.created_at,
        raw_readable and row.raw_blob_id is not None,
    )


@record
class AuditView:
    id: int
    at: datetime
    actor: str
    action: str
    target: str
    interaction_id: int | None
    before: dict[str, Any]
    after: dict[str, Any]

    def as_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "at": self.at.isoformat(),
            "actor": self.actor,
            "action": self.action,
            "target": self.target,
            "interaction_id": self.interaction_id,
            "before": self.before,
            "after": self.after,
        }


def audit_view(row: AuditRow) -> AuditView:
    return AuditView(
        row.id,
        row.at,
        row.actor,
        row.action,
        row.target,
        row.interaction_id,
        dict(row.before or {}),
        dict(row.after or {}),
    )
