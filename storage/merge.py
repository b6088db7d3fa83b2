"""Merging duplicate directory records: one account into another, one contact into another.

A company imported twice, or a person entered twice, splits one customer's timeline in two. A
merge moves everything the dropped record owns to the kept one inside the caller's transaction,
so nobody sees a half-merged directory, and deletes the dropped record. People's decisions
survive: a manual link stays manual, and a tombstone ("not this customer") is carried over to
the kept record, except on an item where the other record has a live manual link: a person
said "this customer" there, as `correct` does when a removal is taken back.

Storage only moves rows. Which stored items must be attributed anew (the dropped record's
identities and the items whose links moved) is reported in `MergeResult` for the caller.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass, field
from typing import Any, cast

from sqlalchemy import CursorResult, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from storage import audit
from storage.directory import _add_missing, bump_version
from storage.tables import (
    MAX_ID,
    AccountDomainRow,
    AccountRow,
    AttributionRow,
    ContactEmailRow,
    ContactPhoneRow,
    ContactRow,
    ParticipantRow,
)


class MergeError(ValueError):
    """The merge cannot be done as asked; the message says why."""


class UnknownRecord(MergeError):
    """KEEP or DROP names no stored record; `which` says which of the two ("keep", "drop")."""

    def __init__(self, which: str, message: str) -> None:
        super().__init__(message)
        self.which = which


@dataclass
class MergeResult:
    """What moved from DROP to KEEP, and what the caller must re-attribute."""

    kind: str  # "account" or "contact"
    keep_id: int
    keep_name: str
    drop_id: int
    drop_name: str
    domains: int = 0
    contacts: int = 0  # account merge: DROP's contacts now at KEEP
    contacts_merged: int = 0  # account merge: DROP's contacts folded into a namesake at KEEP
    emails: int = 0
    phones: int = 0
    participants: int = 0
    attributions: int = 0  # DROP's links now on KEEP
    redundant: int = 0  # links deleted: duplicates, or tombstones outranked by a manual link
    notes: list[str] = field(default_factory=list)
    # For re-matching: normalised addresses and numbers, domains, and items whose links moved.
    addresses: set[str] = field(default_factory=set)
    domain_names: set[str] = field(default_factory=set)
    interactions: set[int] = field(default_factory=set)

    def moved(self) -> dict[str, int]:
        counts = {
            "emails": self.emails,
            "phones": self.phones,
            "participants": self.participants,
            "attributions": self.attributions,
            "redundant_attributions": self.redundant,
        }
        if self.kind == "contact":
            return counts
        return {
            "domains": self.domains,
            "contacts": self.contacts,
            "contacts_merged": self.contacts_merged,
            **counts,
        }


@dataclass
class _Links:
    """Attribution rows a merge rewrote or deleted, counted once however often they were seen."""

    rewritten: set[int] = field(default_factory=set)
    deleted: set[int] = field(default_factory=set)

    async def delete(self, session: AsyncSession, row: AttributionRow) -> None:
        self.deleted.add(row.id)
        await session.delete(row)

    def count_into(self, result: MergeResult) -> None:
        result.attributions = len(self.rewritten - self.deleted)
        result.redundant = len(self.deleted)


async def merge_accounts(
    session: AsyncSession, keep_ref: int | str, drop_ref: int | str, *, actor: str
) -> MergeResult:
    """Move DROP's domains, contacts and links to KEEP, delete DROP, write the audit entry.

    A reference is an id or an exact account name. A DROP contact whose name KEEP already has
    is the same person (the company was entered twice): it is merged into KEEP's contact.
    """
    keep = await _account(session, keep_ref, "keep")
    drop = await _account(session, drop_ref, "drop")
    if keep.id == drop.id:
        raise MergeError(f"KEEP and DROP are both account {keep.id}; name two different accounts")
    keep_contacts = await _contacts_of(session, keep.id)
    drop_contacts = await _contacts_of(session, drop.id)
    before = {
        "keep": _account_doc(keep, keep_contacts),
        "drop": _account_doc(drop, drop_contacts),
    }
    result = MergeResult("account", keep.id, keep.name, drop.id, drop.name)
    links = _Links()
    result.domain_names = {d.domain for d in drop.domains}
    gained: set[str] = set()
    drop_domains = tuple(sorted(result.domain_names))
    _add_missing(keep.domains, "domain", drop_domains, AccountDomainRow, gained)
    result.domains = len(gained)
    keep.owner = keep.owner or drop.owner
    namesakes = {c.name: c for c in keep_contacts}
    for contact in drop_contacts:
        namesake = namesakes.get(contact.name)
        if namesake is None:
            contact.account_id = keep.id
            result.contacts += 1
            result.addresses.update(_identities(contact))
            continue
        await _fold_contact(session, namesake, contact, result, links)
        result.contacts_merged += 1
        result.notes.append(
            f"contact {contact.id} {contact.name!r} was merged into contact {namesake.id}, "
            "its namesake at the kept account"
        )
    await session.flush()
    await _move_account_links(session, keep.id, drop.id, result, links)
    await session.delete(drop)
    await session.flush()
    await bump_version(session)
    links.count_into(result)
    audit.record(
        session,
        actor,
        "account.merge",
        before,
        {"keep": _account_doc(keep, await _contacts_of(session, keep.id)), "moved": result.moved()},
    )
    return result


async def merge_contacts(
    session: AsyncSession, keep_id: int, drop_id: int, *, actor: str
) -> MergeResult:
    """Move DROP's emails, phones, participants and links to KEEP, delete DROP, audit it.

    KEEP stays in its own account. A manual link keeps the account a person chose for it.
    """
    keep = await _contact(session, keep_id, "keep")
    drop = await _contact(session, drop_id, "drop")
    if keep.id == drop.id:
        raise MergeError(f"KEEP and DROP are both contact {keep.id}; name two different contacts")
    before = {"keep": _contact_doc(keep), "drop": _contact_doc(drop)}
    result = MergeResult("contact", keep.id, keep.name, drop.id, drop.name)
    if keep.account_id != drop.account_id:
        result.notes.append(
            f"contact {drop.id} was at {await _account_label(session, drop.account_id)}; the "
            f"merged contact stays at {await _account_label(session, keep.account_id)}"
        )
    links = _Links()
    await _fold_contact(session, keep, drop, result, links)
    await session.flush()
    await bump_version(session)
    links.count_into(result)
    audit.record(
        session,
        actor,
        "contact.merge",
        before,
        {"keep": _contact_doc(keep), "moved": result.moved()},
    )
    return result


async def _fold_contact(
    session: AsyncSession,
    keep: ContactRow,
    drop: ContactRow,
    result: MergeResult,
    links: _Links,
) -> None:
    """Give KEEP what DROP has (emails and phones without duplicates), point DROP's
    participants and links at KEEP, and delete DROP."""
    result.addresses.update(_identities(drop))
    emails: set[str] = set()
    drop_emails = tuple(e.address for e in drop.emails)
    _add_missing(keep.emails, "address", drop_emails, ContactEmailRow, emails)
    phones: set[str] = set()
    _add_missing(keep.phones, "e164", tuple(p.e164 for p in drop.phones), ContactPhoneRow, phones)
    result.emails += len(emails)
    result.phones += len(phones)
    keep.owner = keep.owner or drop.owner
    participants = update(ParticipantRow).where(ParticipantRow.contact_id == drop.id)
    moved = await session.execute(participants.values(contact_id=keep.id))
    result.participants += cast(CursorResult[Any], moved).rowcount
    items = select(AttributionRow.interaction_id).where(AttributionRow.contact_id == drop.id)
    rows = await _links_of(session, items, AttributionRow.contact_id.in_((keep.id, drop.id)))
    rows.sort(key=lambda r: (not r.manual, r.contact_id != keep.id, r.id))
    for row in rows:
        if row.contact_id == drop.id:
            row.contact_id = keep.id
            links.rewritten.add(row.id)
            result.interactions.add(row.interaction_id)
    await _fold(
        session, rows, lambda r: (r.interaction_id, r.account_id, r.contact_id, r.removed), links
    )
    await session.flush()
    await session.delete(drop)


async def _move_account_links(
    session: AsyncSession, keep_id: int, drop_id: int, result: MergeResult, links: _Links
) -> None:
    """Per item, DROP's links join KEEP's: one link per contact, a tombstone unless a live
    manual link outranks it."""
    items = select(AttributionRow.interaction_id).where(AttributionRow.account_id == drop_id)
    rows = await _links_of(session, items, AttributionRow.account_id.in_((keep_id, drop_id)))
    by_item: dict[int, list[AttributionRow]] = {}
    for row in sorted(rows, key=lambda r: (not r.manual, r.account_id != keep_id, r.id)):
        by_item.setdefault(row.interaction_id, []).append(row)
    for interaction_id, item_rows in by_item.items():
        result.interactions.add(interaction_id)
        live_manual = any(r.manual and not r.removed for r in item_rows)
        tombstoned = any(r.removed for r in item_rows) and not live_manual
        survivors = [r for r in item_rows if r.removed == tombstoned]
        for row in item_rows:
            if row.removed != tombstoned:
                await links.delete(session, row)
        for row in survivors:
            if row.account_id == drop_id:
                row.account_id = keep_id
                links.rewritten.add(row.id)
        await _fold(session, survivors, lambda r: r.contact_id, links)
    await session.flush()


async def _fold(
    session: AsyncSession,
    rows: Sequence[AttributionRow],
    key: Callable[[AttributionRow], Hashable],
    links: _Links,
) -> None:
    """Keep the first row per key (rows come best first) and delete the rest; the kept one is
    manual when any of its duplicates was."""
    kept: dict[Hashable, AttributionRow] = {}
    for row in rows:
        first = kept.setdefault(key(row), row)
        if first is not row:
            first.manual = first.manual or row.manual
            await links.delete(session, row)


async def _links_of(session: AsyncSession, items: Any, which: Any) -> list[AttributionRow]:
    """The attribution rows matching `which` on the items the `items` subquery selects."""
    query = select(AttributionRow).where(AttributionRow.interaction_id.in_(items), which)
    return list((await session.execute(query.order_by(AttributionRow.id))).scalars())


async def _account(session: AsyncSession, ref: int | str, which: str) -> AccountRow:
    if isinstance(ref, int):
        row = await session.get(AccountRow, ref, with_for_update=True) if ref <= MAX_ID else None
        missing = f"there is no account {ref}"
    else:
        query = select(AccountRow).where(AccountRow.name == ref).with_for_update()
        row = (await session.execute(query)).scalar_one_or_none()
        missing = f"there is no account named {ref!r} (names must match exactly)"
    if row is None:
        raise UnknownRecord(which, missing)
    return row


async def _contact(session: AsyncSession, ref: int, which: str) -> ContactRow:
    row = await session.get(ContactRow, ref, with_for_update=True) if ref <= MAX_ID else None
    if row is None:
        raise UnknownRecord(which, f"there is no contact {ref}")
    return row


async def _contacts_of(session: AsyncSession, account_id: int) -> list[ContactRow]:
    query = select(ContactRow).where(ContactRow.account_id == account_id).order_by(ContactRow.id)
    return list((await session.execute(query)).scalars())


async def _account_label(session: AsyncSession, account_id: int | None) -> str:
    row = await session.get(AccountRow, account_id) if account_id is not None else None
    return f"account {row.id} {row.name!r}" if row is not None else "no account"


def _identities(contact: ContactRow) -> set[str]:
    return {e.address for e in contact.emails} | {p.e164 for p in contact.phones}


def _account_doc(row: AccountRow, contacts: list[ContactRow]) -> dict[str, Any]:
    return {
        "id": row.id,
        "name": row.name,
        "owner": row.owner,
        "domains": sorted(d.domain for d in row.domains),
        "contacts": [{"id": c.id, "name": c.name} for c in contacts],
    }


def _contact_doc(row: ContactRow) -> dict[str, Any]:
    return {
        "id": row.id,
        "name": row.name,
        "account_id": row.account_id,
        "owner": row.owner,
        "emails": sorted(e.address for e in row.emails),
        "phones": sorted(p.e164 for p in row.phones),
    }
