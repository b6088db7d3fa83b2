"""What the connector API and the admin pages both do: add, change, test, remove and sync a
connector, through the same hub functions as the CLI (hub.admin, hub.connector_runs).

One implementation each, so a click and an API call act alike, fail with the same message and
leave the same audit entry; each caller only turns an ApiError into its own kind of answer.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from starlette.requests import Request

from connectors.base import ConfigurationError, ConnectorError
from hub.admin import (
    ConnectorExists,
    UnknownConnector,
    add_connector,
    change_connector,
    check_connector,
    remove_connector,
)
from hub.connector_hints import hint_for
from hub.connector_kinds import KindForm, kind_form
from hub.connector_runs import SyncProgress, SyncRuns, latest_run
from hub.connector_status import ConnectorStatus, connector_status
from hub.web.http import ApiError, hub_of, viewer_of
from storage.connectors_state import connector_row


def _not_found(e: UnknownConnector) -> ApiError:
    return ApiError(404, "not_found", f"There is {e}.")


def form_for(kind: str) -> KindForm:
    try:
        return kind_form(kind)
    except ConfigurationError as e:
        raise ApiError(422, "bad_settings", str(e)) from e


def texts(values: Any, what: str) -> dict[str, str]:
    """`{name: text}` from a JSON body."""
    if values is None:
        return {}
    if not isinstance(values, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in values.items()
    ):
        raise ApiError(422, "bad_settings", f"{what}: expected {{name: text}}")
    return values


async def create(
    request: Request, kind: str, name: str, settings: dict[str, str], secrets: dict[str, str]
) -> ConnectorStatus:
    form = form_for(kind)
    secrets = {k: v for k, v in secrets.items() if v}
    try:
        form.check_secrets(secrets)
        await add_connector(
            hub_of(request), kind, name, settings, secrets, actor=viewer_of(request).email
        )
    except ConnectorExists as e:
        raise ApiError(409, "exists", str(e)) from e
    except ConfigurationError as e:
        raise ApiError(422, "bad_settings", str(e)) from e
    return await status(request, name)


async def change(
    request: Request,
    name: str,
    changes: dict[str, str | None],
    *,
    enabled: bool | None = None,
    secrets: Mapping[str, str] | None = None,
) -> ConnectorStatus:
    """Settings set (None removes one), enabled or not; a secret given replaces the stored one,
    an empty one keeps it."""
    hub = hub_of(request)
    try:
        if secrets:
            form_for(await _kind_of(request, name)).check_secrets(secrets)
        await change_connector(
            hub, name, changes, enabled=enabled, secrets=secrets, actor=viewer_of(request).email
        )
    except UnknownConnector as e:
        raise _not_found(e) from e
    except ConfigurationError as e:
        raise ApiError(422, "bad_settings", str(e)) from e
    return await status(request, name)


async def _kind_of(request: Request, name: str) -> str:
    async with hub_of(request).reads() as session:
        row = await connector_row(session, name)
    if row is None:
        raise UnknownConnector(f"no connector named {name!r}")
    return row.kind


async def remove(request: Request, name: str) -> None:
    try:
        await remove_connector(hub_of(request), name, actor=viewer_of(request).email)
    except UnknownConnector as e:
        raise _not_found(e) from e


@dataclass(frozen=True, slots=True)
class CheckOutcome:
    ok: bool
    lines: tuple[str, ...] = ()
    error: str = ""

    @property
    def hint(self) -> str:
        return hint_for(self.error)

    def as_json(self) -> dict[str, Any]:
        return {"ok": self.ok, "lines": list(self.lines), "error": self.error, "hint": self.hint}


async def check(request: Request, name: str) -> CheckOutcome:
    """A source that cannot be used is an outcome to show, not a failed request."""
    try:
        lines = await check_connector(hub_of(request), name, actor=viewer_of(request).email)
    except UnknownConnector as e:
        raise _not_found(e) from e
    except (ConnectorError, ValueError) as e:
        return CheckOutcome(False, error=str(e))
    return CheckOutcome(True, tuple(lines))


def sync_runs(request: Request) -> SyncRuns:
    return request.app.state.sync_runs  # type: ignore[no-any-return]


async def start_sync(request: Request, name: str) -> SyncProgress:
    """One run at a time: a second start while one runs (in any process) starts nothing."""
    try:
        started = await sync_runs(request).start(name, viewer_of(request).email)
        progress = await latest_run(hub_of(request), name)
    except UnknownConnector as e:
        raise _not_found(e) from e
    if not started:
        raise ApiError(409, "sync_running", f"A sync of {name} is running already.")
    return progress


async def progress(request: Request, name: str) -> SyncProgress:
    try:
        return await latest_run(hub_of(request), name)
    except UnknownConnector as e:
        raise _not_found(e) from e


async def status(request: Request, name: str) -> ConnectorStatus:
    try:
        return await connector_status(hub_of(request), name)
    except UnknownConnector as e:
        raise _not_found(e) from e
