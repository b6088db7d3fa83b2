"""GET /api/interactions/{id}/recording: a call's recording, streamed through crmhub.

The audio stays at Twilio; crmhub fetches it with the connector's credentials and passes it
on, so that no user ever holds a Twilio URL or the account's token, and who hears it is
decided here, like everything else, by hub.policy. A recording is what was said on the call:
it is treated as the call's body (`shows_body`), so the roles that read a call's notes hear it
(callcenter included, DESIGN.md), admins (metadata only) and anyone the item does not exist
for get 404, as for an item that is not there.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack

from sqlalchemy import select
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from connectors.base import ConnectorError, TransientError
from connectors.twilio import TwilioConnector
from connectors.twilio_api import TwilioRefused, recording_media
from hub.policy import Permission, item_disclosure, shows_body
from hub.web.endpoints import ID, Answer, Endpoint, Param
from hub.web.http import ApiError, hub_of, not_found, viewer_of
from hub.web.reads import note_reads, visible_interaction
from storage.tables import ConnectorRow

log = logging.getLogger(__name__)


async def recording(request: Request) -> Response:
    """The audio of the call's recording (`sid`: one of its recordings; default the first)."""
    hub = hub_of(request)
    async with hub.reads() as session, session.begin():
        row, _ = await visible_interaction(request, session)
        if not shows_body(item_disclosure(viewer_of(request), row), row.channel):
            raise not_found(f"interaction {row.id}")
        sids = [str(s) for s in (row.extra or {}).get("recordings") or ()]
        wanted = request.query_params.get("sid") or (sids[0] if sids else "")
        if wanted not in sids:
            raise not_found(f"recording of interaction {row.id}")
        names = [s.connector for s in row.sources]
        connectors = (
            await session.execute(
                select(ConnectorRow).where(
                    ConnectorRow.name.in_(names), ConnectorRow.kind == TwilioConnector.kind
                )
            )
        ).scalars()
        source = next(iter(connectors), None)
        if source is None:
            raise not_found(f"recording of interaction {row.id} (its connector was removed)")
        await note_reads(request, session, [row], "recording")
    connector = hub.connector(source)
    assert isinstance(connector, TwilioConnector)
    return await _stream(connector, wanted)


async def _stream(connector: TwilioConnector, sid: str) -> Response:
    """Twilio's answer is awaited before ours begins, so its refusal becomes a readable error
    rather than a cut-off download."""
    stack = AsyncExitStack()
    try:
        media = await stack.enter_async_context(recording_media(connector.account(), sid))
    except TwilioRefused as e:
        await stack.aclose()
        if e.status == 404:
            raise not_found(f"recording {sid} at Twilio (deleted there?)") from e
        log.warning("%s: recording %s: %s", connector.name, sid, e)
        raise ApiError(
            502, "source_refused", f"Twilio refused connector {connector.name}'s credentials"
        ) from e
    except (TransientError, ConnectorError) as e:
        await stack.aclose()
        log.warning("%s: recording %s: %s", connector.name, sid, e)
        raise ApiError(503, "source_busy", "Twilio did not answer; try again shortly") from e

    async def body() -> AsyncIterator[bytes]:
        try:
            async for chunk in media.chunks:
                yield chunk
        finally:
            await stack.aclose()

    return StreamingResponse(
        body(),
        media_type=media.content_type,
        headers={
            "Content-Disposition": f'inline; filename="{sid}.mp3"',
            "Cache-Control": "private",
        },
    )


ENDPOINTS = [
    Endpoint(
        "/api/interactions/{id:int}/recording",
        recording,
        Permission.READ,
        summary="a call's recording, streamed from Twilio through crmhub, for those who may "
        "read the call's notes (not admins)",
        params=(*ID, Param("sid", doc="one of the call's recording SIDs; default the first")),
        ok=Answer(200, "the recording's audio", None, "audio/mpeg"),
        errors={
            404: "no such interaction or recording, or not one the caller may hear",
            502: "Twilio refused the connector's credentials",
            503: "Twilio did not answer",
        },
    ),
]
