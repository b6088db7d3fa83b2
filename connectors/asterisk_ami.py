"""`asterisk-ami`: calls live from the Asterisk Manager Interface, so that no Master.csv file
has to be copied off the PBX.

The manager interface pushes events as they happen and replays nothing that was missed while
disconnected, so this is a `Listener`: it keeps one logged-in connection, turns the call
events into items (connectors/ami_calls.py: a `Cdr` event, or the Hangup of a call that
got none), and connects again with back-off when the connection drops or goes silent. The
manager account needs `read = call,cdr` in manager.conf; Cdr events need cdr_manager loaded.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import ssl
import time
from collections.abc import AsyncGenerator, Mapping
from typing import ClassVar

from connectors.ami import AmiClosed, AmiConnection, AmiRefused, Message
from connectors.ami_calls import CallTracker, call_of
from connectors.base import SWITCH, ConfigurationError, ConnectorError, Listener, backoff
from connectors.calls import call_interaction
from hub.model import Interaction, RawItem

log = logging.getLogger(__name__)
EVENTS = "call,cdr"  # the event classes of Newchannel, DialBegin, DialEnd, Hangup and Cdr
TROUBLE = (OSError, AmiClosed, AmiRefused, ConnectorError, TimeoutError)


class AsteriskAmiConnector(Listener):
    kind = "asterisk-ami"
    options: ClassVar[dict[str, str]] = {
        "host": "the Asterisk server's name or address",
        "port": "the manager port (default 5038)",
        "username": "the manager account of manager.conf (it needs read = call,cdr)",
        "tls": "on: connect with TLS (manager.conf tlsenable, usually port 5039); default off",
        "ca_file": "PEM file of the CA that signed the server certificate (default: system CAs)",
        "timeout": "seconds to wait for the connection and the login (default 10)",
        "cdr_wait": "seconds to wait for a call's Cdr event after it hung up before the call "
        "is stored from its other events (default 5)",
        "ping_seconds": "seconds of silence after which the server is pinged, to notice a "
        "connection that died without a word (default 60)",
    }
    required: ClassVar[tuple[str, ...]] = ("host", "username")
    secret_options: ClassVar[dict[str, str]] = {"secret": "the manager account's secret"}
    example: ClassVar[dict[str, str]] = {"host": "pbx.ourco.example", "username": "crmhub"}

    @classmethod
    def validate_settings(cls, settings: Mapping[str, str]) -> None:
        super().validate_settings(settings)
        cls.require_numbers(settings, "port", "timeout", "ping_seconds")
        cls.require_numbers(settings, "cdr_wait", zero=True)
        if str(settings.get("tls", "off")).lower() not in SWITCH:
            raise ConfigurationError(f"{cls.kind}: tls={settings['tls']!r}; use on or off")

    @classmethod
    def mailbox_owner(cls, settings: Mapping[str, str]) -> str:
        """The `owner` setting only: the login is the PBX's manager account, nobody's mailbox."""
        return (settings.get("owner") or "").strip()

    @property
    def _where(self) -> str:
        return f"{self.settings['host']}:{self.settings.get('port') or 5038}"

    def _seconds(self, key: str, default: float) -> float:
        return float(self.settings.get(key) or default)

    def _tls(self) -> ssl.SSLContext | None:
        if not SWITCH[str(self.settings.get("tls", "off")).lower()]:
            return None
        return ssl.create_default_context(cafile=self.settings.get("ca_file") or None)

    async def _logged_in(self, events: str) -> AmiConnection:
        """A connection logged in as the manager account; ConnectorError when refused."""
        timeout = self._seconds("timeout", 10)
        host, port = self.settings["host"], int(self.settings.get("port") or 5038)
        try:
            connection = await AmiConnection.open(host, port, self._tls(), timeout)
        except TimeoutError as e:
            raise ConnectorError(
                f"{self.name}: timed out: no answer from {self._where} within {timeout:g} s"
            ) from e
        try:
            secret = self.secrets.get("secret", "")
            await connection.login(self.settings["username"], secret, events, timeout)
        except AmiRefused as e:
            await connection.close()
            raise ConnectorError(
                f"{self.name}: {self._where} refused the login of "
                f"{self.settings['username']!r}: {e}"
            ) from e
        except BaseException:
            await connection.close()
            raise
        return connection

    async def _check(self) -> list[str]:
        connection = await self._logged_in("off")
        try:
            answer = await connection.request("CoreSettings", self._seconds("timeout", 10))
        finally:
            await connection.close()
        version = answer.get("AsteriskVersion") or connection.banner
        return [f"{self.name}: logged in to Asterisk {version} at {self._where}"]

    async def listen(self) -> AsyncGenerator[list[RawItem], None]:
        """Calls as they end, until cancelled; reconnects after a drop, with back-off."""
        self._warn_if_insecure()
        tracker = CallTracker(grace=self._seconds("cdr_wait", 5))
        failures = 0
        while True:
            connection: AmiConnection | None = None
            try:
                connection = await self._logged_in(EVENTS)
                failures = 0
                log.info("%s: listening to %s", self.name, self._where)
                async for batch in self._calls(connection, tracker):
                    yield batch
            except TROUBLE as e:
                failures += 1
                log.warning("%s: %s; connecting again", self.name, self.readable(e))
            finally:
                if connection is not None:
                    await connection.close()
            if ended := tracker.due(time.time(), everything=True):
                yield ended
            tracker.reset()
            await asyncio.sleep(backoff(max(1, failures)))

    async def _calls(
        self, connection: AmiConnection, tracker: CallTracker
    ) -> AsyncGenerator[list[RawItem], None]:
        """Items from one connection's events; raises AmiClosed when it ends or goes silent
        (no answer to a Ping within `ping_seconds`)."""
        ping = self._seconds("ping_seconds", 60)
        queue: asyncio.Queue[Message | Exception] = asyncio.Queue()
        pump = asyncio.create_task(_pump(connection, queue))
        heard, pinged = time.monotonic(), False
        try:
            while True:
                if due := tracker.due(time.time()):
                    yield due
                wait = heard + ping - time.monotonic()
                if (deadline := tracker.next_deadline()) is not None:
                    wait = min(wait, deadline - time.time())
                try:
                    item = await asyncio.wait_for(queue.get(), max(0.01, wait))
                except TimeoutError:
                    if time.monotonic() - heard < ping:
                        continue  # a Cdr deadline passed, not the silence
                    if pinged:
                        raise AmiClosed(f"no answer to a Ping within {ping:g} s") from None
                    await connection.send("Ping")
                    heard, pinged = time.monotonic(), True
                    continue
                if isinstance(item, Exception):
                    raise item
                heard, pinged = time.monotonic(), False
                if items := tracker.feed(item, time.time()):
                    yield items
        finally:
            pump.cancel()
            await asyncio.gather(pump, return_exceptions=True)

    def _warn_if_insecure(self) -> None:
        host = self.settings["host"]
        if self._tls() is None and not _loopback(host):
            log.warning(
                "%s: the manager secret and the calls travel unencrypted to %s; "
                "set tls=on (manager.conf tlsenable) unless that network is trusted",
                self.name,
                host,
            )

    def readable(self, error: Exception) -> ConnectorError:
        if isinstance(error, AmiClosed | AmiRefused):
            return ConnectorError(f"{self.name}: {self._where}: {error}")
        return super().readable(error)

    def translate(self, raw: RawItem) -> Interaction:
        return call_interaction(call_of(raw, self.context.timezone))


async def _pump(connection: AmiConnection, queue: asyncio.Queue[Message | Exception]) -> None:
    """Read messages into `queue` (the reader waits on the queue with a timeout, which must
    not cut a message in half); the error that ends the connection goes in last."""
    try:
        while True:
            queue.put_nowait(await connection.read())
    except (OSError, AmiClosed) as e:
        queue.put_nowait(e)


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
