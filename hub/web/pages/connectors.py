"""/admin/connectors: IT's pages for the sources (admins only). The list with each source's
state, lag, items per day and what to do about its last error; forms built from each kind's
declared settings; test, sync now (followed by /static/connectors.js, or by reloading without
JavaScript), enable, disable and remove. Secrets are write-only: never put into a page.

The guard (hub.web.endpoints) has checked the role and every form's CSRF token before these
run; they act through hub.web.connector_commands, exactly as the API does.
"""

from __future__ import annotations

from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from connectors.base import ConfigurationError
from connectors.registry import KINDS
from hub.connector_kinds import KindForm, kind_form, registered
from hub.connector_status import ConnectorStatus, connector_statuses
from hub.policy import Permission
from hub.web import connector_commands as commands
from hub.web.connector_commands import CheckOutcome
from hub.web.endpoints import Endpoint, Handler
from hub.web.html import render
from hub.web.http import ApiError, hub_of

DONE = "connectors_done"  # the session's note of what the last form did


def _back_to(name: str, anchor: str = "") -> Response:
    return RedirectResponse(f"/admin/connectors/{name}{anchor}", 303)


def _noted(request: Request, note: str) -> None:
    request.session[DONE] = note[:300]


def _entered(form: FormData, spec: KindForm) -> tuple[dict[str, str], dict[str, str]]:
    """The settings and secrets typed into a form of `spec`: `setting:NAME`, `secret:NAME`."""
    settings = {f.name: str(form.get(f"setting:{f.name}", "")).strip() for f in spec.settings}
    secrets = {f.name: str(form.get(f"secret:{f.name}", "")) for f in spec.secrets}
    return settings, secrets


async def list_page(request: Request) -> Response:
    return render(
        request,
        "connectors.html",
        connectors=await connector_statuses(hub_of(request)),
        kinds=sorted(KINDS),
        done=request.session.pop(DONE, ""),
    )


async def new_page(request: Request) -> Response:
    kind = request.query_params.get("kind", "")
    if not registered(kind):
        problem = f"There is no connector kind {kind[:100]!r}." if kind else ""
        return render(
            request,
            "connector_kinds.html",
            status=404 if kind else 200,
            kinds=sorted(KINDS),
            problem=problem,
        )
    return _new_form(request, kind_form(kind), "", {})


def _new_form(
    request: Request,
    spec: KindForm,
    name: str,
    values: dict[str, str],
    problem: str = "",
    status: int = 200,
) -> Response:
    return render(
        request,
        "connector_new.html",
        status=status,
        spec=spec,
        connector_name=name,
        values=values,
        problem=problem,
    )


async def add_form(request: Request) -> Response:
    form = await request.form()
    kind, name = str(form.get("kind", "")), str(form.get("name", "")).strip()
    if not registered(kind):
        raise ApiError(422, "bad_settings", f"There is no connector kind {kind[:100]!r}.")
    spec = kind_form(kind)
    settings, secrets = _entered(form, spec)
    settings = {k: v for k, v in settings.items() if v}
    try:
        await commands.create(request, kind, name, settings, secrets)
    except ApiError as e:  # the form comes back as typed, but for its secrets
        return _new_form(request, spec, name, settings, e.message, e.status)
    _noted(request, f"Connector {name} added. Test it, then sync it.")
    return RedirectResponse(f"/admin/connectors/{name}", 303)


async def _connector_page(
    request: Request,
    status: ConnectorStatus,
    *,
    values: dict[str, str] | None = None,
    problem: str = "",
    outcome: CheckOutcome | None = None,
    code: int = 200,
) -> Response:
    try:
        spec: KindForm | None = kind_form(status.kind)
    except ConfigurationError as e:  # its kind's module is gone: show it, say so
        spec, problem = None, problem or str(e)
    return render(
        request,
        "connector.html",
        status=code,
        c=status,
        spec=spec,
        values=status.settings if values is None else values,
        problem=problem,
        outcome=outcome,
        done=request.session.pop(DONE, ""),
    )


async def connector_page(request: Request) -> Response:
    return await _connector_page(request, await commands.status(request, _name(request)))


def _name(request: Request) -> str:
    return str(request.path_params["name"])


async def change_form(request: Request) -> Response:
    """Every declared setting as typed (an empty one is removed); an empty secret field keeps
    the stored secret."""
    name = _name(request)
    current = await commands.status(request, name)
    form = await request.form()
    spec = commands.form_for(current.kind)
    settings, secrets = _entered(form, spec)
    changes: dict[str, str | None] = {k: v or None for k, v in settings.items()}
    try:
        await commands.change(request, name, changes, secrets=secrets)
    except ApiError as e:
        return await _connector_page(
            request, current, values=settings, problem=e.message, code=e.status
        )
    changed = sorted(k for k, v in secrets.items() if v)
    _noted(request, "Saved" + (f"; new {', '.join(changed)} stored." if changed else "."))
    return _back_to(name)


async def check_form(request: Request) -> Response:
    name = _name(request)
    outcome = await commands.check(request, name)
    return await _connector_page(request, await commands.status(request, name), outcome=outcome)


async def state_form(request: Request) -> Response:
    name = _name(request)
    enabled = str((await request.form()).get("enabled", "")) == "on"
    await commands.change(request, name, {}, enabled=enabled)
    scheduled = "synced on schedule again" if enabled else "no longer synced on schedule"
    _noted(request, f"{'Enabled' if enabled else 'Disabled'}: {scheduled}.")
    return _back_to(name)


async def sync_form(request: Request) -> Response:
    name = _name(request)
    try:
        await commands.start_sync(request, name)
    except ApiError as e:
        if e.status != 409:
            raise
        _noted(request, e.message + " Its progress is below.")
    return _back_to(name, "#sync")


async def remove_page(request: Request) -> Response:
    return render(
        request, "connector_remove.html", c=await commands.status(request, _name(request))
    )


async def remove_form(request: Request) -> Response:
    name = _name(request)
    await commands.remove(request, name)
    _noted(request, f"Connector {name} removed; the items logged from it stay.")
    return RedirectResponse("/admin/connectors", 303)


def _endpoint(path: str, handler: Handler, methods: tuple[str, ...] = ("GET",)) -> Endpoint:
    return Endpoint(path, handler, Permission.ADMINISTER, methods)


ENDPOINTS = [
    _endpoint("/admin/connectors", list_page),
    _endpoint("/admin/connectors", add_form, ("POST",)),
    _endpoint("/admin/connectors/new", new_page),  # before {name}: "new" is this form
    _endpoint("/admin/connectors/{name}", connector_page),
    _endpoint("/admin/connectors/{name}", change_form, ("POST",)),
    _endpoint("/admin/connectors/{name}/test", check_form, ("POST",)),
    _endpoint("/admin/connectors/{name}/state", state_form, ("POST",)),
    _endpoint("/admin/connectors/{name}/sync", sync_form, ("POST",)),
    _endpoint("/admin/connectors/{name}/remove", remove_page),
    _endpoint("/admin/connectors/{name}/remove", remove_form, ("POST",)),
]
