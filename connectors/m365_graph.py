"""Talking to Microsoft Graph for the `m365` connector: app-only tokens, requests, errors.

Tokens come from MSAL's client-credentials flow (`acquire_token_for_client`), which is blocking
(requests), so it runs in a thread and the token is kept until five minutes before it expires.
Graph answers are turned into exceptions a person can act on here, in one place: a throttled or
busy Graph (429, 503, 504) becomes `TransientError` with its `Retry-After`, so that the base
class waits and resumes from the last cursor; a missing permission is named by what it was
needed for; a mailbox that does not exist says which.

`ca_file` must win over the machine's environment: requests merges `REQUESTS_CA_BUNDLE` into
every request's `verify`, overriding a session's own, so MSAL's session pins it per request.
"""

from __future__ import annotations

import asyncio
import base64
import json
import ssl
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import httpx
import requests

from connectors.base import ConnectorError, TransientError

TOKEN_MARGIN = 300.0  # seconds before expiry at which a new token is fetched
THROTTLED = (429, 503, 504)
DEFAULT_RETRY_AFTER = 5.0  # when a throttling answer names no delay


class GraphError(ConnectorError):
    """Graph refused a request for good (not throttling); `code` is Graph's error code."""

    def __init__(self, message: str, status: int = 0, code: str = "") -> None:
        super().__init__(message)
        self.status, self.code = status, code


class SyncStateGone(Exception):
    """A delta link Graph no longer knows (410 SyncStateNotFound): start that delta again."""


class PinnedSession(requests.Session):
    """A requests session whose `verify` is the connector's CA file whatever the environment
    says: `Session.merge_environment_settings` lets `REQUESTS_CA_BUNDLE` override the
    session's own `verify`, so a corporate CA given as `ca_file` would be silently ignored."""

    def __init__(self, ca_file: str) -> None:
        super().__init__()
        self.ca_file = ca_file
        self.verify = ca_file

    def merge_environment_settings(
        self, url: Any, proxies: Any, stream: Any, verify: Any, cert: Any
    ) -> dict[str, Any]:
        merged = super().merge_environment_settings(url, proxies, stream, verify, cert)
        merged["verify"] = self.ca_file
        return merged


@dataclass(frozen=True)
class GraphSettings:
    tenant_id: str
    client_id: str
    client_secret: str
    graph_url: str
    authority_url: str
    ca_file: str
    timeout: float

    @property
    def api(self) -> str:
        return self.graph_url.rstrip("/") + "/v1.0"

    @property
    def consent_url(self) -> str:
        return (
            f"{self.authority_url.rstrip('/')}/{self.tenant_id}/adminconsent"
            f"?client_id={self.client_id}"
        )


class Tokens:
    """App-only access tokens for Graph, one MSAL application per connector instance."""

    def __init__(self, name: str, settings: GraphSettings) -> None:
        self.name, self.settings = name, settings
        self._app: Any = None
        self._session: requests.Session | None = None
        self._token = ""
        self._expires = 0.0
        self._lock = threading.Lock()

    async def get(self, *, fresh: bool = False) -> str:
        if not fresh and self._token and time.monotonic() < self._expires - TOKEN_MARGIN:
            return self._token
        return await asyncio.to_thread(self._acquire, fresh)

    def _acquire(self, fresh: bool = False) -> str:
        import msal  # type: ignore[import-untyped]

        s = self.settings
        with self._lock:
            session = self._session or (
                PinnedSession(s.ca_file) if s.ca_file else requests.Session()
            )
            self._session = session
            try:
                if fresh and self._app is not None:
                    self._app.remove_tokens_for_client()  # else MSAL hands out its cached one
                return self._acquire_with(msal, session)
            finally:
                session.close()  # its pooled sockets; the session opens new ones when needed

    def _acquire_with(self, msal: Any, session: requests.Session) -> str:
        s = self.settings
        if self._app is None:
            try:
                self._app = msal.ConfidentialClientApplication(
                    s.client_id,
                    client_credential=s.client_secret,
                    authority=f"{s.authority_url}/{s.tenant_id}",
                    http_client=session,
                    instance_discovery=False,  # national clouds and proxies MSAL does not know
                    timeout=s.timeout,
                )
            except ValueError as e:  # the tenant's OpenID configuration is not there
                raise ConnectorError(self._tenant_missing(e)) from e
            except requests.RequestException as e:
                raise TransientError(f"cannot reach {s.authority_url}: {e}") from e
        try:
            answer = self._app.acquire_token_for_client(scopes=[s.graph_url + "/.default"])
        except requests.RequestException as e:
            raise TransientError(f"cannot reach {s.authority_url}: {e}") from e
        if "access_token" not in answer:
            raise ConnectorError(self._refused(answer))
        self._token = str(answer["access_token"])
        self._expires = time.monotonic() + float(answer.get("expires_in") or 3600)
        return self._token

    def _tenant_missing(self, error: ValueError) -> str:
        context = str(error.__context__ or error)
        if "AADSTS90002" in context or "Unable to get authority" in str(error):
            return (
                f"{self.name}: tenant {self.settings.tenant_id!r} not found at "
                f"{self.settings.authority_url} (AADSTS90002): check tenant_id (the directory "
                "id or a verified domain) and, for a national cloud, authority_url"
            )
        return f"{self.name}: {error}"

    def _refused(self, answer: Mapping[str, Any]) -> str:
        description = str(answer.get("error_description") or answer.get("error") or answer)
        first = description.splitlines()[0] if description else ""
        s = self.settings
        if "AADSTS90002" in description:
            return f"{self.name}: tenant {s.tenant_id!r} not found (AADSTS90002): check tenant_id"
        if any(code in description for code in ("AADSTS65001", "AADSTS7000229", "AADSTS650051")):
            return (
                f"{self.name}: the app {s.client_id} has no admin consent in tenant "
                f"{s.tenant_id} ({first}). A global administrator grants it at {s.consent_url}"
            )
        if "AADSTS700016" in description:
            return (
                f"{self.name}: no app {s.client_id!r} in tenant {s.tenant_id} (AADSTS700016): "
                "check client_id (the app registration's Application (client) ID)"
            )
        if any(code in description for code in ("AADSTS7000215", "AADSTS7000222")):
            return (
                f"{self.name}: the client secret was refused ({first}): create a new secret in "
                "the app registration and store it with --secret client_secret=ENV_VAR"
            )
        return f"{self.name}: sign-in refused: {first}"


_SHARED: dict[tuple[str, GraphSettings], Tokens] = {}


def tokens_for(name: str, settings: GraphSettings) -> Tokens:
    """One token source per app registration and tenant in this process: a connector is built
    anew for every sync, and a token lasts about an hour, so a no-change re-sync asks the
    sign-in service nothing (and MSAL's tenant discovery runs once)."""
    key = (name, settings)
    if key not in _SHARED:
        _SHARED[key] = Tokens(name, settings)
    return _SHARED[key]


def client_for(settings: GraphSettings) -> httpx.AsyncClient:
    """HTTP/1.1 with keep-alive, trusting `ca_file` alone when it is set."""
    verify: ssl.SSLContext | bool = True
    if settings.ca_file:
        verify = ssl.create_default_context(cafile=settings.ca_file)
    return httpx.AsyncClient(
        verify=verify,
        timeout=settings.timeout,
        limits=httpx.Limits(max_connections=16, max_keepalive_connections=16),
    )


PERMISSION_FOR = {
    "messages": "Mail.Read",
    "mailbox": "Mail.Read",
    "send": "Mail.Send",
    "calendar": "Calendars.Read",
    "book": "Calendars.ReadWrite",
    "group": "GroupMember.Read.All",
}


def retry_after(response: httpx.Response) -> float:
    value = response.headers.get("Retry-After", "")
    try:
        return max(0.0, float(value))
    except ValueError:
        return DEFAULT_RETRY_AFTER


def error_of(response: httpx.Response) -> tuple[str, str]:
    """Graph's error code and message from an error answer (`{"error": {...}}`)."""
    try:
        doc = response.json()
    except ValueError:
        return "", response.text[:200]
    error = doc.get("error") if isinstance(doc, dict) else None
    if isinstance(error, dict):
        return str(error.get("code", "")), str(error.get("message", ""))
    return "", str(doc)[:200]


def check_answer(
    name: str, response: httpx.Response, what: str, mailbox: str, settings: GraphSettings
) -> None:
    """Raise what a non-2xx Graph answer means; `what` says what the request was for (a key
    of PERMISSION_FOR), `mailbox` whose it was."""
    status = response.status_code
    if status < 300:
        return
    code, message = error_of(response)
    if status in THROTTLED:
        raise TransientError(
            f"Graph answered {status} {code or 'busy'}", retry_after=retry_after(response)
        )
    if status == 410 or code.lower() in ("syncstatenotfound", "resyncrequired"):
        raise SyncStateGone(code)
    if status == 401:
        raise TransientError(f"Graph refused the token ({code}: {message})")
    if status == 403:
        permission = PERMISSION_FOR.get(what, "")
        raise GraphError(
            f"{name}: Graph denied access to {mailbox or what} ({code}: {message}): the app "
            f"needs the application permission {permission}, granted with admin consent "
            f"({settings.consent_url}); an application access policy may also exclude "
            "this mailbox",
            status,
            code,
        )
    if status == 404 and what in ("mailbox", "messages", "calendar", "send", "book"):
        if code in ("ErrorInvalidUser", "ResourceNotFound", "MailboxNotEnabledForRESTAPI"):
            raise GraphError(
                f"{name}: mailbox {mailbox!r} not found in tenant {settings.tenant_id} "
                f"({code}: {message}): check the address, or whether it has an Exchange "
                "Online licence",
                status,
                code,
            )
    if status == 404 and what == "group":
        raise GraphError(f"{name}: group {mailbox!r} not found ({code}: {message})", status, code)
    raise GraphError(f"{name}: Graph answered {status} {code}: {message}", status, code)


def batch_body(value: Any) -> bytes:
    """A `$batch` response body: JSON stays JSON, other content arrives base64-encoded."""
    if isinstance(value, str):
        return base64.b64decode(value)
    return json.dumps(value).encode()
