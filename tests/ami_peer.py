"""FakeAmi: a small Asterisk Manager Interface peer on a loopback port, for the asterisk-ami
tests.

It speaks the documented protocol (docs.asterisk.org: "AMI v2 Specification", the Login,
CoreSettings and Ping actions, and AMI Events): a banner line `Asterisk Call Manager/9.0.0`
on connect; actions and answers as `Key: Value` lines ended by an empty line, each answer
carrying its action's ActionID; `Response: Error` with `Message: Authentication failed` for a
wrong login, after which it hangs up as Asterisk does; events only to clients that logged in
with `Events` other than `off`. A test sends events with `event()` and cuts every connection
with `drop()`, as a restarting Asterisk or a broken network would.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field

AMI_VERSION = "9.0.0"
ASTERISK_VERSION = "20.5.0"


@dataclass
class FakeAmi:
    username: str
    secret: str
    answer_pings: bool = True
    host: str = "127.0.0.1"
    port: int = 0
    logins: int = 0  # accepted
    refusals: int = 0
    pings: int = 0
    listeners: list[asyncio.StreamWriter] = field(default_factory=list)
    _all: set[asyncio.StreamWriter] = field(default_factory=set)
    _server: asyncio.Server | None = None

    async def start(self) -> FakeAmi:
        self._server = await asyncio.start_server(self._serve, self.host, 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def close(self) -> None:
        await self.drop()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    async def event(self, name: str, **fields: str) -> None:
        """Send one event to every client listening for events."""
        block = _block({"Event": name, "Privilege": "call,all", **fields})
        for writer in list(self.listeners):
            writer.write(block)
            await writer.drain()

    async def drop(self) -> None:
        """Cut every connection without a word."""
        for writer in list(self._all):
            writer.close()
        self.listeners.clear()
        self._all.clear()

    async def wait_for(self, logins: int, timeout: float = 10) -> None:
        """Until `logins` clients have logged in with events on (in all)."""
        async with asyncio.timeout(timeout):
            while len(self.listeners) < 1 or self.logins < logins:
                await asyncio.sleep(0.02)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._all.add(writer)
        writer.write(f"Asterisk Call Manager/{AMI_VERSION}\r\n".encode())
        logged_in = False
        try:
            while action := await _read_block(reader):
                name = action.get("Action", "").lower()
                reply = {"ActionID": action.get("ActionID", "")}
                if name == "login":
                    if (action.get("Username"), action.get("Secret")) != (
                        self.username,
                        self.secret,
                    ):
                        self.refusals += 1
                        writer.write(
                            _block(
                                {"Response": "Error", **reply, "Message": "Authentication failed"}
                            )
                        )
                        await writer.drain()
                        break
                    logged_in = True
                    self.logins += 1
                    writer.write(
                        _block(
                            {"Response": "Success", **reply, "Message": "Authentication accepted"}
                        )
                    )
                    writer.write(_block({"Event": "FullyBooted", "Status": "Fully Booted"}))
                    if action.get("Events", "on").lower() != "off":
                        self.listeners.append(writer)
                elif not logged_in:
                    writer.write(
                        _block({"Response": "Error", **reply, "Message": "Permission denied"})
                    )
                elif name == "coresettings":
                    writer.write(
                        _block(
                            {
                                "Response": "Success",
                                **reply,
                                "AMIversion": AMI_VERSION,
                                "AsteriskVersion": ASTERISK_VERSION,
                                "SystemName": "",
                            }
                        )
                    )
                elif name == "ping":
                    self.pings += 1
                    if self.answer_pings:
                        pong = {"Ping": "Pong", "Timestamp": f"{time.time():.6f}"}
                        writer.write(_block({"Response": "Success", **reply, **pong}))
                else:
                    message = "Invalid/unknown command"
                    writer.write(_block({"Response": "Error", **reply, "Message": message}))
                await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError):
            pass  # the client went away
        finally:
            if writer in self.listeners:
                self.listeners.remove(writer)
            self._all.discard(writer)
            writer.close()


def _block(fields: dict[str, str]) -> bytes:
    return "".join(f"{k}: {v}\r\n" for k, v in fields.items()).encode() + b"\r\n"


async def _read_block(reader: asyncio.StreamReader) -> dict[str, str]:
    """One action, or {} when the client hung up."""
    fields: dict[str, str] = {}
    while line := await reader.readline():
        text = line.decode().rstrip("\r\n")
        if not text:
            if fields:
                return fields
            continue
        key, _, value = text.partition(":")
        fields[key.strip()] = value.strip()
    return {}
