"""Who is asking: a bearer token (API) or the session cookie (web view)."""

from __future__ import annotations

from starlette.requests import Request

from hub.bootstrap import Hub
from storage.tables import UserRow
from storage.users import user_by_token


async def current_user(request: Request) -> UserRow | None:
    hub: Hub = request.app.state.hub
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    async with hub.sessions() as session:
        if scheme.lower() == "bearer" and token.strip():
            return await user_by_token(session, token.strip())
        user_id = request.session.get("user_id") if "session" in request.scope else None
        if user_id is not None:
            return await session.get(UserRow, int(user_id))
    return None
