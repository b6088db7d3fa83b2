"""The Asterisk Manager Interface wire protocol, over asyncio streams.

Documented at docs.asterisk.org ("AMI v2 Specification"): on connect the server sends one
banner line (`Asterisk Call Manager/<version>`); after that, client actions and server
responses and events are blocks of `Key: Value` lines, CRLF-terminated, each block ended by an
empty line. A response carries the ActionID of its action; events come in between, at any
time. A refused Login answers `Response: Error` (and the server may hang up).
"""

from __future__ import annotations

import asyncio
import itertools
import ssl
from dataclasses import dataclass, field

Message = dict[str, str]
BANNER = b"Asterisk Call Manager/"
MAX_LINE = 64 * 1024  # an AMI line longer than this is no AMI


class AmiClosed(ConnectionError):
    """The server closed the connection (or sent something that is not AMI)."""


class AmiRefused(Exception):
    """The server refused an action; the message is the server's own `Message:`."""


@dataclass
class AmiConnection:
    """One logged-in (or about to be) manager connection."""

    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    banner: str
    ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1))

    @classmethod
    async def open(
        cls, host: str, port: int, tls: ssl.SSLContext | None, timeout: float
    ) -> AmiConnection:
        """Connect and read the banner; raises AmiClosed when the peer is no AMI server."""
        async with asyncio.timeout(timeout):
            reader, writer = await asyncio.open_connection(
                host, port, ssl=tls, limit=MAX_LINE, server_hostname=host if tls else None
            )
            line = await reader.readline()
        if not line.startswith(BANNER):
            writer.close()
            shown = line[:60].decode("utf-8", "replace").strip() or "nothing"
            raise AmiClosed(f"not an Asterisk manager interface (it sent {shown})")
        return cls(reader, writer, line.decode("utf-8", "replace").strip())

    async def send(self, action: str, **fields: str) -> str:
        """Send an action; returns its ActionID, by which its response is known."""
        action_id = f"crmhub-{next(self.ids)}"
        lines = [f"Action: {action}", f"ActionID: {action_id}"]
        lines += [f"{key}: {value}" for key, value in fields.items()]
        self.writer.write(("\r\n".join(lines) + "\r\n\r\n").encode("utf-8"))
        await self.writer.drain()
        return action_id

    async def read(self) -> Message:
        """The next response or event; raises AmiClosed when the connection ends."""
        message: Message = {}
        while True:
            try:
                line = await self.reader.readline()
            except (asyncio.LimitOverrunError, ValueError) as e:
                raise AmiClosed(f"a line over {MAX_LINE} bytes: no AMI") from e
            if not line:
                raise AmiClosed("the server closed the connection")
            text = line.decode("utf-8", "replace").rstrip("\r\n")
            if not text:
                if message:
                    return message
                continue
            key, sep, value = text.partition(":")
            if sep:
                message.setdefault(key.strip(), value.strip())

    async def request(self, action: str, timeout: float, **fields: str) -> Message:
        """Send an action and wait for its response (events meanwhile are dropped: this is
        for the login and for `crmhub connectors test`, before any event is wanted)."""
        action_id = await self.send(action, **fields)
        async with asyncio.timeout(timeout):
            while True:
                message = await self.read()
                if message.get("ActionID") == action_id and "Response" in message:
                    if message["Response"].lower() == "error":
                        raise AmiRefused(message.get("Message") or "refused")
                    return message

    async def login(self, username: str, secret: str, events: str, timeout: float) -> None:
        """Log in; `events` is the event classes wanted ("off", or "call,cdr")."""
        await self.request("Login", timeout, Username=username, Secret=secret, Events=events)

    async def close(self) -> None:
        self.writer.close()
        try:
            await self.writer.wait_closed()
        except (OSError, ssl.SSLError):
            pass  # closing a connection the peer dropped already
