"""Twilio's status callbacks: `POST /hooks/twilio/{connector}/voice` and `.../sms`.

Public routes (Twilio has no login) that trust a request only when its `X-Twilio-Signature`
is the one Twilio's `RequestValidator` computes with the connector's auth token over the
connector's `public_url` plus the path and query: the URL Twilio called, as seen from outside.
The Host header and `X-Forwarded-*` are never read, so a reverse proxy in front changes nothing
and a forged Host cannot make a signature fit. A request that fails (no signature, a wrong
one, a parameter changed, an unknown connector) gets 403 and an audit entry, and nothing of it
is stored.

A signed callback is stored through `hub.pipeline.ingest_pushed`, before it is answered, so
the call is on the timeline when Twilio has its answer. Twilio repeats and reorders callbacks;
each is the call's raw item under its CallSid, and storage revises the one item without ever
taking a finished call back to ringing (connectors/twilio_callbacks.py).
"""

from __future__ import annotations

import logging

from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import Response
from twilio.request_validator import RequestValidator  # type: ignore[import-untyped]

from connectors.base import ConnectorError, TransientError
from connectors.twilio import TwilioConnector
from connectors.twilio_api import connect
from connectors.twilio_callbacks import (
    ChildLeg,
    NotACallback,
    has_text,
    message_raw,
    message_resource_raw,
    message_sid,
    voice_raw,
)
from hub.bootstrap import Hub
from hub.model import RawItem
from hub.pipeline import ingest_pushed
from hub.policy import Permission
from hub.web.endpoints import Endpoint, Handler
from hub.web.http import hub_of
from hub.web.refusals import audit_refusal
from storage.connectors_state import connector_row

log = logging.getLogger(__name__)
SIGNATURE = "X-Twilio-Signature"
EMPTY_TWIML = '<?xml version="1.0" encoding="UTF-8"?><Response/>'  # "no reply" to a message


class Refused(Exception):
    """Why a callback is not believed (for the audit log; the caller is told only 403)."""


async def voice(request: Request) -> Response:
    """A voice status callback: the call's new state. Answered 204 (Twilio reads no TwiML)."""
    connector, form = await _verified(request)
    try:
        raw = voice_raw(_params(form))
    except ChildLeg as e:
        log.info("%s: %s; the next sync folds it into its parent", connector.name, e)
        return Response(status_code=204)
    except NotACallback as e:
        return Response(str(e), 400, media_type="text/plain")
    await _store(hub_of(request), connector, raw)
    return Response(status_code=204)


async def sms(request: Request) -> Response:
    """An incoming message, or a status callback about one sent; answered with empty TwiML,
    which sends no reply when this URL is a number's incoming-message webhook."""
    connector, form = await _verified(request)
    params = _params(form)
    try:
        if has_text(params):
            raw = message_raw(params)
        else:
            raw = await _message_from_api(connector, message_sid(params))
    except NotACallback as e:
        return Response(str(e), 400, media_type="text/plain")
    except (TransientError, ConnectorError) as e:
        log.warning("%s: message status callback not stored: %s", connector.name, e)
        return Response("Twilio's API did not answer; the next sync stores it", 503)
    await _store(hub_of(request), connector, raw)
    return Response(EMPTY_TWIML, media_type="text/xml")


async def _message_from_api(connector: TwilioConnector, sid: str) -> RawItem:
    """The message as the API has it: a status callback carries no text, and a raw item
    without it would empty the stored snippet."""
    async with connect(connector.account()) as api:
        return message_resource_raw(await api.get(f"Messages/{sid}.json"))


async def _store(hub: Hub, connector: TwilioConnector, raw: RawItem) -> None:
    report = await ingest_pushed(hub, connector.name, [raw])
    log.debug(
        "%s: callback %s: new %d, updated %d, duplicates %d, quarantined %d",
        connector.name,
        raw.external_id,
        report.new,
        report.counts.updated,
        report.duplicates,
        report.quarantined,
    )


def _params(form: FormData) -> dict[str, str]:
    return {key: str(value) for key, value in form.multi_items()}


async def _verified(request: Request) -> tuple[TwilioConnector, FormData]:
    """The connector the path names and the request's form, when Twilio signed it; else an
    audit entry, and `Forbidden` answers 403."""
    name = request.path_params["connector"]
    hub = hub_of(request)
    form = await request.form()
    try:
        connector = await _twilio(hub, name)
        signature = request.headers.get(SIGNATURE, "")
        if not signature:
            raise Refused(f"no {SIGNATURE} header")
        url = connector.public_url() + request.url.path
        if request.url.query:
            url += "?" + request.url.query
        token = connector.account().auth_token
        if not RequestValidator(token).validate(url, form, signature):
            raise Refused(f"the signature does not fit {url} and the parameters sent")
    except (Refused, ConnectorError) as e:
        await _audit_refusal(request, name, form, str(e))
        raise Forbidden from e
    return connector, form


async def _twilio(hub: Hub, name: str) -> TwilioConnector:
    async with hub.sessions() as session:
        row = await connector_row(session, name)
    if row is None or row.kind != TwilioConnector.kind or not row.enabled:
        raise Refused(f"no enabled twilio connector named {name!r}")
    connector = hub.connector(row)
    assert isinstance(connector, TwilioConnector)
    return connector


async def _audit_refusal(request: Request, name: str, form: FormData, reason: str) -> None:
    """Who tried what: the sid named (not the parameters: they carry phone numbers), where
    from (the peer, and what a proxy claims), and why it was refused (hub.web.refusals)."""
    await audit_refusal(
        request,
        "twilio-webhook",
        name[:100],
        {
            "connector": name[:100],
            "path": request.url.path[:300],
            "reason": reason[:500],
            "sid": str(form.get("CallSid") or form.get("MessageSid") or "")[:64],
            "peer": request.client.host if request.client else "",
            "forwarded_for": request.headers.get("x-forwarded-for", "")[:200],
        },
        reason,
    )


class Forbidden(Exception):
    """Raised out of `_verified`; `refusing` answers it 403, telling the caller nothing more."""


def refusing(handler: Handler) -> Handler:
    async def run(request: Request) -> Response:
        try:
            return await handler(request)
        except Forbidden:
            return Response("Forbidden", 403, media_type="text/plain")

    run.__name__, run.__doc__ = handler.__name__, handler.__doc__
    return run


ENDPOINTS = [
    Endpoint(
        "/hooks/twilio/{connector}/voice",
        refusing(voice),
        Permission.PUBLIC,
        ("POST",),
        summary="Twilio voice status callback, verified by X-Twilio-Signature",
    ),
    Endpoint(
        "/hooks/twilio/{connector}/sms",
        refusing(sms),
        Permission.PUBLIC,
        ("POST",),
        summary="Twilio incoming message or message status callback, verified by signature",
    ),
]
