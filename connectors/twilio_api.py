"""Talking to Twilio's REST API (2010-04-01) for the `twilio` connector: pages, errors, media.

JSON goes through the `twilio` library's own client (`twilio.rest.Client.request_async` over its
`AsyncTwilioHttpClient`), pointed at `api_url` by setting the API domain's `base_url`, so that
tests talk to a local fake (tests/twilio_fake.py) exactly as production talks to Twilio. The
library's resource classes are not used for listing: they turn each record into an object and
lose the JSON we store as the raw item, and their exceptions drop the `Retry-After` header. So
pages are read as JSON and followed by their `next_page_uri`, as Twilio documents paging
(https://www.twilio.com/docs/usage/twilios-response#response-formats-list-paging-information).

Recording audio is streamed with httpx instead: the library's responses hold text only. Twilio
may redirect the media to a storage host; httpx drops the Authorization header on a redirect to
another host, so the auth token never leaves for anyone but Twilio.

A throttled or busy Twilio (429, 5xx) becomes `TransientError` with its Retry-After, which the
base class waits for before resuming from the last cursor; a refused login is named as such.
"""

from __future__ import annotations

import json
import ssl
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import aiohttp
import httpx
from twilio.http.async_http_client import AsyncTwilioHttpClient  # type: ignore[import-untyped]
from twilio.http.response import Response  # type: ignore[import-untyped]
from twilio.rest import Client  # type: ignore[import-untyped]

from connectors.base import ConnectorError, TransientError

API_VERSION = "2010-04-01"
DEFAULT_API_URL = "https://api.twilio.com"
DEFAULT_RETRY_AFTER = 5.0  # seconds, when a 429 or 503 names no delay
PAGE_SIZE = 1000  # Twilio's maximum; fewer round trips for a day's calls


class TwilioRefused(ConnectorError):
    """Twilio refused a request for good (a wrong SID or token, a missing resource)."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class TwilioAccount:
    name: str  # the connector's, for messages
    account_sid: str
    auth_token: str
    api_url: str = DEFAULT_API_URL
    ca_file: str = ""
    timeout: float = 30.0

    @property
    def base(self) -> str:
        return f"{self.api_url.rstrip('/')}/{API_VERSION}/Accounts/{self.account_sid}"

    def ssl_context(self) -> ssl.SSLContext | None:
        return ssl.create_default_context(cafile=self.ca_file) if self.ca_file else None


class _CheckedHttpClient(AsyncTwilioHttpClient):
    """The library's async client with our TLS trust, turning throttling into TransientError
    while the response headers (Retry-After) are still at hand."""

    def __init__(self, account: TwilioAccount) -> None:
        super().__init__(pool_connections=False, timeout=account.timeout)
        self.account = account
        context = account.ssl_context()
        self.session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(ssl=context) if context else None,
            timeout=aiohttp.ClientTimeout(total=account.timeout),
        )

    async def request(self, method: str, url: str, **kwargs: Any) -> Response:
        auth = kwargs.pop("auth", None)
        if auth is not None:
            # The library hands aiohttp a BasicAuth, which aiohttp 3.13 deprecates: the
            # same header, made here.
            kwargs["headers"] = {
                **(kwargs.get("headers") or {}),
                "Authorization": aiohttp.encode_basic_auth(auth[0], auth[1]),
            }
        try:
            response = await super().request(method, url, **kwargs)
        except (aiohttp.ClientError, TimeoutError) as e:
            raise TransientError(f"Twilio did not answer: {type(e).__name__}: {e}") from e
        status = response.status_code
        if status == 429 or status >= 500:
            raise TransientError(
                f"Twilio answered {status} (throttled or busy)",
                retry_after=_retry_after(response.headers),
            )
        return response


def _retry_after(headers: Mapping[str, str] | None) -> float | None:
    value = (headers or {}).get("Retry-After") or (headers or {}).get("retry-after")
    try:
        return float(value) if value is not None else DEFAULT_RETRY_AFTER
    except ValueError:
        return DEFAULT_RETRY_AFTER  # an HTTP date: rare, and the cap applies anyway


class TwilioApi:
    """One account's REST API for one sync (open it with `async with connect(...)`)."""

    def __init__(self, account: TwilioAccount, client: Client) -> None:
        self.account, self.client = account, client

    async def get(self, path_or_url: str, params: Mapping[str, str] | None = None) -> Any:
        """The JSON answer of a GET; `path_or_url` is below the account, or a `next_page_uri`
        (absolute path) as Twilio gave it."""
        if path_or_url.startswith("/"):
            url = self.account.api_url.rstrip("/") + path_or_url
        else:
            url = f"{self.account.base}/{path_or_url}"
        response = await self.client.request_async("GET", url, params=dict(params or {}))
        if response.status_code in (401, 403):
            raise TwilioRefused(
                f"{self.account.name}: Twilio refused account_sid {self.account.account_sid} "
                f"with this auth_token ({response.status_code}); check both in the Twilio "
                "console",
                response.status_code,
            )
        if response.status_code >= 400:
            raise TwilioRefused(
                f"{self.account.name}: Twilio answered {response.status_code} for "
                f"{url.split('?')[0]}: {_message(response.text)}",
                response.status_code,
            )
        try:
            return json.loads(response.text)
        except ValueError as e:
            raise ConnectorError(f"{self.account.name}: Twilio sent no JSON for {url}") from e

    async def pages(
        self, resource: str, key: str, params: Mapping[str, str]
    ) -> AsyncIterator[list[dict[str, Any]]]:
        """Every page of a list resource (`Calls.json`, key `calls`), newest first as Twilio
        lists them, following `next_page_uri` until it is null."""
        page = await self.get(resource, {"PageSize": str(PAGE_SIZE), **params})
        while True:
            records = page.get(key)
            if not isinstance(records, list):
                raise ConnectorError(f"{self.account.name}: Twilio's {resource} has no {key!r}")
            yield [r for r in records if isinstance(r, dict)]
            next_uri = page.get("next_page_uri")
            if not next_uri:
                return
            page = await self.get(str(next_uri))


def _message(text: str) -> str:
    try:
        return str(json.loads(text).get("message") or text[:200])
    except (ValueError, AttributeError):
        return text[:200]


@asynccontextmanager
async def connect(account: TwilioAccount) -> AsyncIterator[TwilioApi]:
    """The library's client for `account`, pointed at its `api_url`; closed afterwards."""
    http = _CheckedHttpClient(account)
    client = Client(account.account_sid, account.auth_token, http_client=http, environment={})
    client.api.base_url = account.api_url.rstrip("/")
    try:
        yield TwilioApi(account, client)
    finally:
        await http.close()


@dataclass(frozen=True)
class Media:
    content_type: str
    chunks: AsyncIterator[bytes]


@asynccontextmanager
async def recording_media(account: TwilioAccount, recording_sid: str) -> AsyncIterator[Media]:
    """A recording's audio (MP3), streamed from Twilio with the account's credentials.

    Raises TwilioRefused for an unknown recording or refused credentials, TransientError when
    Twilio is busy: the caller answers those, never with Twilio's URL or our credentials."""
    if not recording_sid.startswith("RE") or not recording_sid.isalnum():
        raise TwilioRefused(f"{recording_sid!r} is not a recording SID", 404)
    url = f"{account.base}/Recordings/{recording_sid}.mp3"
    verify: ssl.SSLContext | bool = account.ssl_context() or True
    async with httpx.AsyncClient(
        auth=(account.account_sid, account.auth_token),
        verify=verify,
        timeout=account.timeout,
        follow_redirects=True,
    ) as client:
        try:
            async with client.stream("GET", url) as response:
                if response.status_code == 429 or response.status_code >= 500:
                    raise TransientError(f"Twilio answered {response.status_code}")
                if response.status_code >= 400:
                    raise TwilioRefused(
                        f"{account.name}: Twilio answered {response.status_code} for "
                        f"recording {recording_sid}",
                        response.status_code,
                    )
                kind = response.headers.get("content-type", "audio/mpeg")
                yield Media(kind, response.aiter_bytes())
        except httpx.TransportError as e:
            raise TransientError(f"Twilio did not answer: {type(e).__name__}") from e
