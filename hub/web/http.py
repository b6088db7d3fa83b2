"""What the API and the pages share about HTTP: errors, paging, filters and request bodies.

Both read the same query parameters the same way and fail with the same messages; the API
answers an ApiError as `{"error": {"code", "message"}}`, a page as a styled error page.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import JSONResponse as _StarletteJSON

from hub.bootstrap import Hub
from hub.model import Channel
from hub.policy import Viewer
from storage import queries
from storage.tables import MAX_ID

MAX_QUERY = 200  # characters of a search; longer is no search a person types
MAX_JSON_BYTES = 1_000_000


class ApiError(Exception):
    """A request that cannot be answered as asked; `message` is for the person who asked."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


def not_found(what: str) -> ApiError:
    """The one answer for a record that does not exist or may not be seen (never 403)."""
    return ApiError(404, "not_found", f"There is no {what}.")


class JSONResponse(_StarletteJSON):
    """JSON encoded with orjson: measured on a 25-item timeline page, 22 us against the
    standard library's 439 us, a tenth of a whole timeline request at a million items."""

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content, option=orjson.OPT_NON_STR_KEYS)


def error_json(status: int, code: str, message: str) -> JSONResponse:
    return JSONResponse({"error": {"code": code, "message": message}}, status_code=status)


def hub_of(request: Request) -> Hub:
    return request.app.state.hub  # type: ignore[no-any-return]


def viewer_of(request: Request) -> Viewer:
    """The signed-in user of the request (hub.web.endpoints sets it before any handler)."""
    return request.state.viewer  # type: ignore[no-any-return]


def page_limit(request: Request, default: int = 50) -> int:
    raw = request.query_params.get("limit", str(default))
    if not raw.isdigit() or not 1 <= int(raw) <= queries.MAX_LIMIT:
        raise ApiError(400, "bad_limit", f"limit must be a number from 1 to {queries.MAX_LIMIT}")
    return int(raw)


def date_param(request: Request, name: str) -> datetime | None:
    raw = request.query_params.get(name)
    if not raw:
        return None
    try:
        value = datetime.fromisoformat(raw)
    except ValueError as e:
        raise ApiError(
            400, "bad_date", f"{name}={raw[:40]!r} is not an ISO date or date-time"
        ) from e
    return value if value.tzinfo else value.astimezone()


def search_words(request: Request, name: str = "q") -> str | None:
    raw = request.query_params.get(name) or None
    if raw is not None and len(raw) > MAX_QUERY:
        raise ApiError(400, "bad_query", f"{name}: at most {MAX_QUERY} characters")
    if raw is not None and "\x00" in raw:
        raise ApiError(400, "bad_query", f"{name}: must not contain a NUL character")
    return raw


def timeline_filter(request: Request) -> queries.TimelineFilter:
    channel = request.query_params.get("channel") or None
    if channel and channel not in {c.value for c in Channel}:
        raise ApiError(400, "bad_channel", f"channel={channel[:40]!r} is not a channel")
    return queries.TimelineFilter(
        channel, date_param(request, "since"), date_param(request, "until"), search_words(request)
    )


def object_id(request: Request, name: str = "id") -> int:
    value = int(request.path_params[name])
    if value > MAX_ID:
        raise ApiError(404, "not_found", f"There is no object {value}.")
    return value


def _cursor(request: Request, *shape: type) -> str | None:
    """The `cursor` parameter, checked against the shape this listing hands out.

    Storage decodes a cursor but trusts what is inside; a hand-made or truncated one must be
    answered with 400, not fail in the database.
    """
    raw = request.query_params.get("cursor") or None
    if raw is None:
        return None
    values = queries.decode_cursor(raw)
    fits = len(values) == len(shape) and all(
        isinstance(v, kind)
        and not isinstance(v, bool)
        and (not isinstance(v, int) or 0 <= v <= MAX_ID)
        for v, kind in zip(values, shape, strict=True)
    )
    if not fits:
        raise queries.BadCursor(f"cursor {raw[:40]!r} is not valid")
    return raw


def name_cursor(request: Request) -> str | None:
    """Listings ordered by (name, id): accounts."""
    return _cursor(request, str, int)


def time_cursor(request: Request) -> str | None:
    """Listings ordered by (time, id): timelines, interactions."""
    return _cursor(request, str, int)


def id_cursor(request: Request) -> str | None:
    """Listings ordered by id alone: quarantine, audit log."""
    return _cursor(request, int)


async def json_object(request: Request) -> dict[str, Any]:
    """The body as a JSON object of at most MAX_JSON_BYTES, or an error that says what is wrong.

    Only `application/json`: a cross-site form cannot send it without a CORS preflight.
    """
    if request.headers.get("content-type", "").split(";")[0].strip() != "application/json":
        raise ApiError(415, "unsupported_media_type", "send the body as application/json")
    body = await request.body()
    if len(body) > MAX_JSON_BYTES:
        raise ApiError(413, "too_large", f"the body is larger than {MAX_JSON_BYTES} bytes")
    try:
        values = json.loads(body)
    except (ValueError, UnicodeDecodeError) as e:
        raise ApiError(400, "bad_json", "the body is not valid JSON") from e
    if not isinstance(values, dict):
        raise ApiError(400, "bad_json", "expected a JSON object")
    return values


def optional_id(values: dict[str, Any], name: str, *, code: str = "bad_field") -> int | None:
    """An id from JSON (a number) or a form (digits), or None when absent; one beyond 64 bits
    names nothing and is refused like any other bad id, never sent to the database."""
    value = values.get(name)
    if value in (None, ""):
        return None
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value)
    if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= MAX_ID:
        raise ApiError(422, code, f"{name}: expected an id")
    return value


def required_id(values: dict[str, Any], name: str, *, code: str = "bad_field") -> int:
    found = optional_id(values, name, code=code)
    if found is None:
        raise ApiError(422, code, f"{name}: expected an id")
    return found


def text_field(
    values: dict[str, Any], name: str, *, limit: int = 1000, code: str = "bad_field"
) -> str:
    value = values.get(name, "")
    if not isinstance(value, str):
        raise ApiError(422, code, f"{name}: expected a string")
    if len(value) > limit:
        raise ApiError(422, code, f"{name}: at most {limit} characters")
    return value.strip()
