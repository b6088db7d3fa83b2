"""Data-subject requests: export everything stored about a person, or erase it.

The person is named by one mail address or phone number, normalised as matching normalises
participants. An export covers the items where that identifier takes part, the contact records
that have it, the raw messages, attachments and quarantined raw items that mention it. An
erasure also covers the contact's other addresses and numbers: items whose only outside
parties are the person are deleted, the others are redacted for the parties that remain, and
every other trace is removed (storage.erasure). The audit log records that an export or an
erasure happened; an erasure's entry carries counts only.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import zipfile
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, BinaryIO

import phonenumbers
from sqlalchemy.ext.asyncio import AsyncSession

from hub.bootstrap import Hub, secret_key_for
from hub.rematch import rematch
from hub.screening import identity_digest
from matching.identities import normalize_email, normalize_name, normalize_phone
from matching.parties import external_parties
from storage import db
from storage.audit import record
from storage.erasure import (
    ErasureCounts,
    Subject,
    Survey,
    erase,
    quarantined_mentioning,
    survey,
)
from storage.mentions import Mentions
from storage.parties import stored_parties
from storage.privacy import (
    account_names,
    blob_content,
    contact_document,
    contacts_with,
    item_documents,
    items_with,
    spellings,
)
from storage.tables import QuarantineRow

log = logging.getLogger(__name__)
RAW_SUFFIX = {"email": "eml", "meeting": "ics"}


class PrivacyError(ValueError):
    """A request that cannot be carried out as asked; the message says why."""


def identity_key(identifier: str, region: str) -> str:
    """The normalised address or E.164 number a request names."""
    key = normalize_email(identifier) if "@" in identifier else normalize_phone(identifier, region)
    if key is None:
        raise PrivacyError(
            f"{identifier!r} is neither a mail address nor a complete phone number "
            "(like jane@example.com or +49 511 6890756)"
        )
    return key


def phone_spellings(e164: str) -> set[str]:
    """How a number may be written in stored text: E.164, international and national."""
    parsed = phonenumbers.parse(e164, None)
    written = {
        e164,
        e164.removeprefix("+"),
        phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.INTERNATIONAL),
        phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.NATIONAL),
    }
    written.update({"".join(c for c in s if c.isdigit() or c == "+") for s in set(written)})
    return written


async def _subject(session: AsyncSession, key: str, extend: bool) -> Subject:
    """The person: with `extend`, their contact records' other identifiers too."""
    contacts = await contacts_with(session, [key]) if extend else []
    keys = {key}
    for contact in contacts:
        keys.update(e.address for e in contact.emails)
        keys.update(p.e164 for p in contact.phones)
    contact_ids = {c.id for c in contacts}
    found = await spellings(session, keys, contact_ids)
    names = {c.name for c in contacts} | found.names
    written = found.keys | found.written | {n for n in names if normalize_name(n)}
    for number in (k for k in found.keys if k.startswith("+")):
        written |= phone_spellings(number)
    return Subject(frozenset(found.keys), frozenset(contact_ids), Mentions.of(written))


@dataclass
class ErasurePlan:
    """What an erasure removes; shown without --yes, carried out with it."""

    key: str
    subject: Subject
    doomed: set[int]
    redacted: set[int]
    found: Survey

    def lines(self) -> list[str]:
        found = self.found
        return [
            f"person: {', '.join(sorted(self.subject.keys))}",
            f"items deleted (no other outside party): {len(self.doomed)}",
            f"items redacted (kept for their other parties): {len(self.redacted)}",
            f"contact records deleted: {len(self.subject.contact_ids)}",
            f"review questions and ignore-keys removed: "
            f"{len(found.review_items) + len(found.ignored)}",
            f"quarantined items removed: {len(found.quarantine)}",
            f"blocklist entries removed: {len(found.blocklist)}",
            f"audit entries redacted: {len(found.audit)}",
        ]


async def _plan(hub: Hub, session: AsyncSession, identifier: str) -> ErasurePlan:
    key = identity_key(identifier, hub.settings.default_region)
    subject = await _subject(session, key, extend=True)
    index = await hub.identity_index()
    doomed: set[int] = set()
    redacted: set[int] = set()
    ids = await items_with(session, subject.keys, subject.contact_ids)
    for item_id, stored in (await stored_parties(session, sorted(ids))).items():
        parties = external_parties(stored.participants, index)
        others = [p for p in parties if p is None or p not in subject.keys]
        (redacted if others else doomed).add(item_id)
    return ErasurePlan(key, subject, doomed, redacted, await survey(session, subject))


async def plan_erasure(hub: Hub, identifier: str) -> ErasurePlan:
    """What `erase_subject` would remove, changing nothing."""
    async with hub.sessions() as session:
        return await _plan(hub, session, identifier)


async def erase_subject(hub: Hub, identifier: str, actor: str) -> ErasureCounts:
    """Erase one person everywhere, in one transaction; re-attribute the redacted items (a
    link that came through the person goes); then, on SQLite, empty the WAL so that the old
    pages are gone from disk (secure_delete has zeroed them in the database file)."""
    secret_key = secret_key_for(hub.settings)
    async with hub.sessions() as session, session.begin():
        plan = await _plan(hub, session, identifier)
        digests = {identity_digest(secret_key, key) for key in plan.subject.keys}
        counts = await erase(
            session,
            plan.subject,
            plan.found,
            plan.doomed,
            plan.redacted,
            digests,
            datetime.now(UTC),
        )
        record(session, actor, "privacy.erase", after=counts.as_json())
    if plan.redacted:  # their links now follow only the parties that remain
        await rematch(hub, plan.redacted)
    await empty_wal(hub)
    log.info("erasure by %s: %s", actor, counts.as_json())
    return counts


async def empty_wal(hub: Hub) -> bool:
    """`PRAGMA wal_checkpoint(TRUNCATE)` on SQLite; False when a reader kept it from finishing
    (the WAL is then emptied at a later checkpoint). True on PostgreSQL: nothing to do."""
    if db.sqlite_path(hub.settings.database_url) is None:
        return True
    async with hub.engine.connect() as connection:
        result = await connection.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
        busy = result.one()[0]
    if busy:
        log.warning("the WAL could not be emptied now: another connection is reading")
    return not busy


@dataclass
class ExportSummary:
    key: str
    items: int = 0
    contacts: int = 0
    raw_messages: int = 0
    attachments: int = 0
    quarantined: int = 0

    def as_json(self) -> dict[str, object]:
        return {
            "items": self.items,
            "contacts": self.contacts,
            "raw_messages": self.raw_messages,
            "attachments": self.attachments,
            "quarantined": self.quarantined,
        }


async def export_subject(
    hub: Hub, identifier: str, out: Path | BinaryIO, actor: str
) -> ExportSummary:
    """Write a zip with `export.json` and the raw files it names, to a file (created owner-only,
    mode 0600, and complete or not at all) or into an open binary file (the API's response)."""
    key = identity_key(identifier, hub.settings.default_region)
    if not isinstance(out, Path):
        return await _write_export(hub, key, out, actor)
    partial = out.with_name(out.name + ".partial")
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        with os.fdopen(fd, "wb") as handle:
            summary = await _write_export(hub, key, handle, actor)
        partial.replace(out)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    return summary


async def _write_export(hub: Hub, key: str, out: BinaryIO, actor: str) -> ExportSummary:
    summary = ExportSummary(key)
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as z:
        async with hub.sessions() as session, session.begin():
            document = await _export(session, key, z, summary)
            record(session, actor, "privacy.export", after=summary.as_json(), target=key)
        text = json.dumps(document, ensure_ascii=False, indent=2)
        await asyncio.to_thread(z.writestr, "export.json", text)
    return summary


async def _export(
    session: AsyncSession, key: str, z: zipfile.ZipFile, summary: ExportSummary
) -> dict[str, Any]:
    subject = await _subject(session, key, extend=False)
    contacts = await contacts_with(session, [key])
    names = await account_names(session, {c.account_id for c in contacts})
    items = await item_documents(session, await items_with(session, [key]))
    for item in items:
        blob_id = item.pop("raw_blob_id")
        if blob_id is not None:
            item["raw"] = f"raw/{item['id']}.{RAW_SUFFIX.get(item['channel'], 'raw')}"
            await _write(z, item["raw"], await blob_content(session, blob_id))
            summary.raw_messages += 1
        for attachment in item["attachments"]:
            attachment_id, blob_id = attachment.pop("id"), attachment.pop("blob_id")
            if blob_id is not None:
                name = "".join(
                    c if c.isalnum() or c in "._-" else "_" for c in attachment["filename"]
                )
                attachment["file"] = f"attachments/{item['id']}/{attachment_id}-{name}"
                await _write(z, attachment["file"], await blob_content(session, blob_id))
                summary.attachments += 1
    quarantined = []
    for row in await quarantined_mentioning(session, subject.mentions):
        entry = _quarantine_document(row)
        if row.raw_blob_id is not None:
            entry["raw"] = f"quarantine/{row.id}.raw"
            await _write(z, entry["raw"], await blob_content(session, row.raw_blob_id))
        quarantined.append(entry)
    summary.items = len(items)
    summary.contacts = len(contacts)
    summary.quarantined = len(quarantined)
    return {
        "identity": key,
        "exported_at": datetime.now(UTC).isoformat(),
        "contacts": [contact_document(c, names.get(c.account_id or 0, "")) for c in contacts],
        "items": items,
        "quarantined": quarantined,
    }


def _quarantine_document(row: QuarantineRow) -> dict[str, Any]:
    return {
        "id": row.id,
        "connector": row.connector,
        "external_id": row.external_id,
        "reason": row.reason,
        "created_at": row.created_at.isoformat(),
    }


async def _write(z: zipfile.ZipFile, name: str, data: bytes) -> None:
    await asyncio.to_thread(z.writestr, name, data)
