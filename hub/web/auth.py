"""Who is asking: a bearer token (API) or the session cookie (web view).

A session cookie carries the user's id and the session epoch it was issued in; disabling the
user or changing their password raises the epoch, which ends every session at once although
cookies are not stored. A revoked or expired token, or a disabled user's, is refused.
"""

from __future__ import annotations

from datetime import UTC, datetime

from starlette.requests import Request

from hub.bootstrap import Hub
from storage.tables import UserRow
from storage.tokens import active_token, touch_token
from storage.users import Caller, session_caller


async def signed_in(request: Request) -> tuple[Caller | None, bool]:
    """Who is asking, and whether the login came by cookie (which needs CSRF protection).

    A request that names a bearer token is judged by the token alone, never by a cookie.
    """
    hub: Hub = request.app.state.hub
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        at = datetime.now(UTC)
        async with hub.reads() as session:
            found = await active_token(session, token.strip(), at)
        if found is None:
            return None, False
        if found.touch_due:  # at most once a minute per token: a write only then
            async with hub.sessions() as session, session.begin():
                await touch_token(session, found.token_id, at)
        return found.caller, False
    if "session" not in request.scope:
        return None, False
    user_id, epoch = request.session.get("user_id"), request.session.get("epoch", 0)
    if not isinstance(user_id, int) or not isinstance(epoch, int):
        return None, True
    async with hub.reads() as session:
        caller = await session_caller(session, user_id, epoch)
    if caller is None:
        request.session.pop("user_id", None)
    return caller, True


def start_session(request: Request, user: UserRow, csrf: str) -> None:
    """A fresh session for `user`: nothing of the anonymous one carries over but `next`."""
    request.session.clear()
    request.session.update(user_id=user.id, epoch=user.session_epoch, csrf=csrf)
