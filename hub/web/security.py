"""The web view's edges: security headers on every response, a Secure session cookie over
HTTPS, and request bodies of bounded size.

Plain ASGI middleware, so it wraps error responses and 404s as well as the routes.
"""

from __future__ import annotations

import json

from starlette.types import ASGIApp, Message, Receive, Scope, Send

SESSION_COOKIE = "crmhub_session"
# No script of any origin but ours, none inline; mail HTML may carry inline styles (it is
# sanitised, and `img-src` keeps CSS from fetching anything remote).
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; font-src 'self'; connect-src 'self'; form-action 'self'; "
    "base-uri 'none'; frame-ancestors 'none'"
)
# The interaction page once its reader asked for a mail's remote images.
CSP_REMOTE_IMAGES = CSP.replace("img-src 'self' data:", "img-src 'self' data: https: http:")
HEADERS = (
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"x-frame-options", b"DENY"),
)


class SecurityHeaders:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        https = scope.get("scheme") == "https"

        async def sending(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = [
                    (k, _secure(v) if https and k == b"set-cookie" else v)
                    for k, v in message.get("headers", [])
                ]
                present = {k for k, _ in headers}
                if b"content-security-policy" not in present:
                    headers.append((b"content-security-policy", CSP.encode()))
                headers.extend(h for h in HEADERS if h[0] not in present)
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, sending)


def _secure(cookie: bytes) -> bytes:
    """Over HTTPS (directly, or behind a trusted proxy that says so) the session cookie never
    travels in clear again."""
    if cookie.startswith(SESSION_COOKIE.encode() + b"=") and b"; secure" not in cookie.lower():
        return cookie + b"; secure"
    return cookie


class BodyLimit:
    """Refuses bodies over the limit with 413: JSON (and anything else) at `json_bytes`,
    forms and uploads at `upload_bytes`. A declared Content-Length is judged at once, a
    streamed body as it arrives."""

    def __init__(self, app: ASGIApp, *, json_bytes: int, upload_bytes: int) -> None:
        self.app, self.json_bytes, self.upload_bytes = app, json_bytes, upload_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers", []))
        kind = headers.get(b"content-type", b"").split(b";")[0].strip().lower()
        form = kind in (b"application/x-www-form-urlencoded", b"multipart/form-data")
        limit = self.upload_bytes if form else self.json_bytes
        declared = headers.get(b"content-length", b"")
        if declared.isdigit() and int(declared) > limit:
            await _too_large(scope, send, limit)
            return
        seen = 0
        answered = False

        async def receiving() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    raise _TooLarge
            return message

        async def sending(message: Message) -> None:
            nonlocal answered
            answered = True
            await send(message)

        try:
            await self.app(scope, receiving, sending)
        except _TooLarge:
            if not answered:
                await _too_large(scope, send, limit)


class _TooLarge(Exception):
    pass


async def _too_large(scope: Scope, send: Send, limit: int) -> None:
    api = str(scope.get("path", "")).startswith("/api/")
    text = f"The request body is larger than {limit} bytes."
    if api:
        body = json.dumps({"error": {"code": "too_large", "message": text}}).encode()
        kind = b"application/json"
    else:
        body = text.encode()
        kind = b"text/plain; charset=utf-8"
    await send(
        {
            "type": "http.response.start",
            "status": 413,
            "headers": [(b"content-type", kind), (b"content-length", str(len(body)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": body})
