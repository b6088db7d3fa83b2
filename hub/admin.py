"""Administrative commands shared by the CLI, the demo and the web: directory and connectors."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession

from connectors.base import ConfigurationError, ConnectorError
from connectors.registry import connector_class
from hub.bootstrap import Hub
from hub.directory_files import RowError, read_directory
from hub.model import Account, Contact
from hub.rematch import rematch
from matching.identities import reversed_labels
from storage import audit, merge
from storage.connectors_state import connector_exists, connector_row
from storage.directory import DirectoryCounts, upsert_directory
from storage.merge import MergeResult
from storage.rematch import RematchCounts, affected_by
from storage.tables import ConnectorRow, QuarantineRow, SourceRow


@dataclass
class DirectoryImport:
    rows: int
    errors: list[RowError]
    counts: DirectoryCounts
    rematched: RematchCounts = field(default_factory=RematchCounts)

    def summary(self, name: str) -> str:
        c = self.counts
        return (
            f"{name}: {self.rows} rows imported, {len(self.errors)} rejected; accounts "
            f"{c.accounts_created} new, {c.accounts_updated} updated; contacts "
            f"{c.contacts_created} new, {c.contacts_updated} updated; "
            f"{self.rematched.changed} stored items attributed anew"
        )


async def import_directory(hub: Hub, path: Path) -> DirectoryImport:
    """Good rows import even when others are rejected; each rejection names line and field."""
    rows, errors = read_directory(path, hub.settings.default_region)
    entries: list[tuple[Account, Contact | None]] = [
        (
            Account(r.account, r.domains, r.owner),
            Contact(r.contact, None, r.emails, r.phones, r.owner, title=r.title)
            if r.contact
            else None,
        )
        for r in rows
    ]
    async with hub.sessions() as session, session.begin():
        counts = await upsert_directory(session, entries)
    async with hub.sessions() as session:
        affected = await affected_by(
            session, counts.new_addresses, map(reversed_labels, counts.new_domains)
        )
    rematched = await rematch(hub, affected) if affected else RematchCounts()
    return DirectoryImport(len(rows), errors, counts, rematched)


@dataclass
class DirectoryMerge:
    merged: MergeResult
    rematched: RematchCounts

    def summary(self) -> list[str]:
        """The lines `crmhub directory merge` prints: what moved, and the re-matching."""
        m = self.merged
        moved = ", ".join(f"{name.replace('_', ' ')} {n}" for name, n in m.moved().items())
        return [
            f"merged {m.kind} {m.drop_id} {m.drop_name!r} into {m.kind} {m.keep_id} "
            f"{m.keep_name!r}; {m.kind} {m.drop_id} is deleted",
            f"moved: {moved}",
            *(f"note: {note}" for note in m.notes),
            f"{self.rematched.examined} stored items re-matched, "
            f"{self.rematched.changed} stored items attributed anew",
        ]

    def as_json(self) -> dict[str, Any]:
        m = self.merged
        return {
            "kind": m.kind,
            "kept": m.keep_id,
            "dropped": m.drop_id,
            "moved": m.moved(),
            "notes": m.notes,
            "rematched": {"examined": self.rematched.examined, "changed": self.rematched.changed},
        }


async def merge_accounts(
    hub: Hub, keep: int | str, drop: int | str, *, actor: str
) -> DirectoryMerge:
    """Fold account DROP (an id or exact name) into KEEP, then re-attribute what it touched."""
    async with hub.sessions() as session, session.begin():
        merged = await merge.merge_accounts(session, keep, drop, actor=actor)
    return DirectoryMerge(merged, await _rematch_merged(hub, merged))


async def merge_contacts(hub: Hub, keep: int, drop: int, *, actor: str) -> DirectoryMerge:
    """Fold contact DROP into KEEP, then re-attribute what it touched."""
    async with hub.sessions() as session, session.begin():
        merged = await merge.merge_contacts(session, keep, drop, actor=actor)
    return DirectoryMerge(merged, await _rematch_merged(hub, merged))


async def _rematch_merged(hub: Hub, merged: MergeResult) -> RematchCounts:
    """Only the affected items: those with DROP's identities or domains, and those whose links
    moved (their explanations still name DROP; an automatic link may now belong elsewhere)."""
    async with hub.sessions() as session:
        affected = await affected_by(
            session, merged.addresses, map(reversed_labels, merged.domain_names)
        )
    affected |= merged.interactions
    return await rematch(hub, affected) if affected else RematchCounts()


async def add_connector(
    hub: Hub,
    kind: str,
    name: str,
    settings: dict[str, str],
    secrets: dict[str, str],
    *,
    actor: str = "cli",
) -> None:
    connector_class(kind).validate_settings(settings)
    if not name or not all(ch.isalnum() or ch in "-_." for ch in name):
        raise ConfigurationError(f"connector name {name!r}: use letters, digits, - _ and . only")
    async with hub.sessions() as session, session.begin():
        if await connector_exists(session, name):
            raise ConnectorExists(f"a connector named {name!r} exists; remove it first")
        session.add(
            ConnectorRow(
                name=name,
                kind=kind,
                settings=settings,
                secrets=hub.secret_box.seal(secrets),
                cursor={},
            )
        )
        audit.record(
            session,
            actor,
            "connector.add",
            after={"kind": kind, "settings": settings, "secrets": sorted(secrets)},
            target=name,
        )


class ConnectorExists(ConfigurationError):
    """A connector of that name exists already."""


class UnknownConnector(LookupError):
    """No connector of that name."""


async def change_connector(
    hub: Hub,
    name: str,
    changes: dict[str, str | None],
    *,
    enabled: bool | None = None,
    secrets: Mapping[str, str] | None = None,
    actor: str = "cli",
) -> dict[str, str]:
    """Set (or with None remove) settings of a connector; returns the new settings.

    `secrets` replace the stored ones of the same name; an empty value keeps the stored one,
    so a form need never show a secret back. The audit names the secrets changed, never a value.
    A new `owner` or `visibility` reaches the items already stored from it (DESIGN.md "Who
    sees what": tightening applies retroactively), in the same transaction as the setting.
    """
    new_secrets = {k: v for k, v in (secrets or {}).items() if v}
    async with hub.sessions() as session, session.begin():
        row = await _connector(session, name)
        cls = connector_class(row.kind)
        before, was_enabled = dict(row.settings or {}), row.enabled
        after = {k: v for k, v in {**before, **changes}.items() if v is not None}
        cls.validate_settings(after)
        row.settings = after
        if enabled is not None:
            row.enabled = enabled
        if new_secrets:
            row.secrets = hub.secret_box.seal({**hub.secret_box.open(row.secrets), **new_secrets})
        owner, visibility = cls.mailbox_owner(after), after.get("visibility", "full")
        if (cls.mailbox_owner(before), before.get("visibility", "full")) != (owner, visibility):
            await session.execute(
                update(SourceRow)
                .where(SourceRow.connector == name)
                .values(owner=owner, visibility=visibility)
            )
            await session.execute(
                update(QuarantineRow).where(QuarantineRow.connector == name).values(owner=owner)
            )
        audit.record(
            session,
            actor,
            "connector.change",
            before={"settings": before, "enabled": was_enabled},
            after={"settings": after, "enabled": row.enabled}
            | ({"secrets": sorted(new_secrets)} if new_secrets else {}),
            target=name,
        )
    return after


async def _connector(session: AsyncSession, name: str) -> ConnectorRow:
    row = await connector_row(session, name)
    if row is None:
        raise UnknownConnector(f"no connector named {name!r}")
    return row


async def remove_connector(hub: Hub, name: str, *, actor: str = "cli") -> None:
    """Remove a connector; its logged items stay, with the owner and cap they had."""
    async with hub.sessions() as session, session.begin():
        row = await _connector(session, name)
        await session.delete(row)
        audit.record(session, actor, "connector.remove", before={"kind": row.kind}, target=name)


async def check_connector(hub: Hub, name: str, *, actor: str = "cli") -> list[str]:
    """Lines describing what the source holds, read as a sync reads it; raises ConnectorError
    (ValueError for secrets that cannot be decrypted) when it is unusable. Audited with the
    outcome: a test reaches out to the source under the connector's login."""
    async with hub.sessions() as session:
        row = await _connector(session, name)
    outcome: dict[str, Any] = {"ok": False}
    try:
        lines = await hub.connector(row).check()
        outcome = {"ok": True}
        return lines
    except (ConnectorError, ValueError) as e:
        outcome = {"ok": False, "error": str(e)}
        raise
    finally:
        async with hub.sessions() as session, session.begin():
            audit.record(session, actor, "connector.test", after=outcome, target=name)
