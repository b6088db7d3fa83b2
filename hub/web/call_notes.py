"""Call notes as the API and the call page's form both read and write them (one rule each).

Who sees what: a note is part of what a call says, so it is shown where the call's notes are
(hub.policy.shows_body: the call center, sales and managers, as far as the connector's cap
allows; an admin sees a call's metadata only). A call the viewer may not see does not exist
for them (404), notes and all; one whose notes they may not read answers its notes as None.
Writing needs Permission.CORRECT (checked by the route) and notes the writer may read.
"""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession
from starlette.requests import Request

from hub.policy import shows_body
from hub.web.http import ApiError, hub_of, not_found, viewer_of
from hub.web.reads import note_reads, visible_interaction
from hub.web.views import InteractionView
from storage import audit
from storage.call_notes import BadNote, CallNote, add_note, checked, notes_of
from storage.tables import InteractionRow


def notes_shown(view: InteractionView) -> bool:
    return view.channel == "call" and shows_body(view.disclosure, view.channel)


async def _call(request: Request, session: AsyncSession) -> tuple[InteractionRow, InteractionView]:
    """The call the path names, as the viewer sees it; 404 for anything else."""
    row, view = await visible_interaction(request, session)
    if view.channel != "call":
        raise not_found(f"call {view.id}")
    return row, view


async def read_notes(request: Request) -> tuple[int, list[CallNote] | None]:
    """The call's id and its notes, oldest first; None when the viewer sees its metadata only."""
    async with hub_of(request).reads() as session, session.begin():
        row, view = await _call(request, session)
        await note_reads(request, session, [row], "notes")
        if not notes_shown(view):
            return view.id, None
        return view.id, await notes_of(session, view.id)


async def write_note(request: Request, outcome: object, text: object) -> list[CallNote]:
    """Add the viewer's note to the call; answers the call's notes after it. The entry in the
    audit log names the outcome, not the text (the text is the call's content, not a fact
    about who did what)."""
    viewer = viewer_of(request)
    async with hub_of(request).sessions() as session, session.begin():
        _, view = await _call(request, session)  # first: a call not theirs is not there
        if not notes_shown(view):
            raise ApiError(
                403, "forbidden", "Your role does not see this call's notes, so it cannot add one."
            )
        try:
            outcome, text = checked(outcome, text)
        except BadNote as e:
            raise ApiError(422, "bad_note", str(e)) from e
        note = await add_note(session, view.id, viewer.email, outcome, text)
        audit.record(
            session,
            viewer.email,
            "call.note",
            after={"note": note.id, "outcome": outcome},
            interaction_id=view.id,
        )
    async with hub_of(request).reads() as session:
        return await notes_of(session, view.id)
