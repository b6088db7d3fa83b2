"""Reading items for a viewer, shared by the API and the pages: load, ask the policy, audit.

An item a viewer may not see is answered exactly like one that does not exist (404), and a
read of an item from a connector marked `audit_reads` by anyone but its owners is recorded.
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.requests import Request

from connectors.base import SWITCH
from hub.model import ReadScope
from hub.policy import Permission, audits_read, item_sources, may_read_quarantined, read_scope
from hub.web.http import hub_of, id_cursor, not_found, object_id, viewer_of
from hub.web.views import (
    InteractionView,
    Item,
    QuarantineView,
    interaction_view,
    interaction_views,
    quarantine_view,
)
from storage import audit, queries
from storage.connectors_state import settings_by_name
from storage.directory_reads import StoredAccount, StoredContact
from storage.items import StoredInteraction
from storage.tables import AccountRow, ContactRow, InteractionRow


def _audits(setting: object) -> bool:
    """Whether a connector's stored `audit_reads` value switches auditing on."""
    return SWITCH.get(str(setting or "off").lower(), False)


async def audited_connectors(session: AsyncSession) -> set[str]:
    """Asked on every read of single items (a listing's page brings the settings along):
    two columns, a Core statement built once (storage.connectors_state.settings_by_name)."""
    return {
        name
        for name, settings in (await settings_by_name(session)).items()
        if _audits(settings.get("audit_reads"))
    }


async def note_reads(
    request: Request, session: AsyncSession, rows: Sequence[Item], what: str
) -> None:
    """Record the reads that connectors marked `audit_reads` ask for: one entry per request,
    naming the items and how they were read, committed before the items are answered.

    `session` may be a read-only one (hub.Hub.reads): the entry is written in a transaction
    of its own."""
    if not rows:
        return
    viewer = viewer_of(request)
    listed = [r for r in rows if isinstance(r, StoredInteraction)]
    if len(listed) == len(rows):  # a listing's page: the settings came with it
        audited = {s.connector for r in listed for s in r.sources if _audits(s.audit_reads)}
    else:
        audited = await audited_connectors(session)
    if not audited:
        return
    read = [r.id for r in rows if audits_read(viewer, item_sources(r), audited)]
    if read:
        async with hub_of(request).sessions() as writing, writing.begin():
            audit.record(
                writing,
                viewer.email,
                "item.read",
                after={"interactions": read, "how": what, "path": request.url.path},
                interaction_id=read[0] if len(read) == 1 else None,
            )


async def visible_interaction(
    request: Request, session: AsyncSession, interaction_id: int | None = None
) -> tuple[InteractionRow, InteractionView]:
    """The item the path names as the viewer may see it; 404 when it does not exist for them."""
    id_ = object_id(request) if interaction_id is None else interaction_id
    row = await session.get(InteractionRow, id_)
    view = None
    if row is not None:
        known = {p.contact_id for p in row.participants if p.contact_id}
        names = await queries.contact_names(session, known) if known else {}
        view = interaction_view(viewer_of(request), row, names)
    if row is None or view is None:
        raise not_found(f"interaction {id_}")
    return row, view


async def read_interaction(request: Request, what: str = "detail") -> InteractionView:
    """visible_interaction, with the read audited when a connector asks for it."""
    async with hub_of(request).reads() as session, session.begin():
        row, view = await visible_interaction(request, session)
        await note_reads(request, session, [row], what)
    return view


async def page_of_views(
    request: Request, session: AsyncSession, page: queries.Page, what: str
) -> tuple[list[InteractionView], str | None]:
    """A listing's rows as the viewer's views (the policy asked once more), reads audited."""
    await note_reads(request, session, page.items, what)
    return interaction_views(viewer_of(request), page.items), page.next_cursor


async def account_names(session: AsyncSession, views: list[InteractionView]) -> dict[int, str]:
    ids = {a.account_id for v in views for a in v.attributions}
    return {i: row.name for i, row in (await queries.accounts_by_ids(session, ids)).items()}


def scope_of(request: Request) -> ReadScope:
    return read_scope(viewer_of(request))


async def account_or_404(session: AsyncSession, id_: int) -> StoredAccount:
    """An account by id (every role reads the directory), or the documented 404."""
    found = await queries.accounts_by_ids(session, {id_})
    if id_ not in found:
        raise not_found(f"account {id_}")
    return found[id_]


async def contact_or_404(session: AsyncSession, id_: int) -> StoredContact:
    """A contact by id (every role reads the directory), or the documented 404."""
    found = await queries.contacts_by_ids(session, {id_})
    if id_ not in found:
        raise not_found(f"contact {id_}")
    return found[id_]


async def id_or_404(
    session: AsyncSession, model: type[AccountRow | ContactRow], id_: int, what: str
) -> int:
    """account_or_404 or contact_or_404 for a handler that needs only to know the record
    exists (a timeline): one indexed select, not the record with its domains or addresses."""
    if (await session.execute(select(model.id).where(model.id == id_))).first() is None:
        raise not_found(f"{what} {id_}")
    return id_


async def quarantined_page(request: Request, limit: int) -> tuple[list[QuarantineView], str | None]:
    """Quarantined items the viewer may list: all of them for IT (the reasons), those of their
    own mailboxes for everyone else; each says whether its raw bytes may be read."""
    viewer = viewer_of(request)
    owner = None if viewer.may(Permission.ADMINISTER) else viewer.email
    async with hub_of(request).reads() as session:
        page = await queries.quarantine(session, owner, id_cursor(request), limit)
    views = [quarantine_view(r, may_read_quarantined(viewer, r.owner)) for r in page.items]
    return views, page.next_cursor
