"""A guarded IMAP session on top of aioimaplib, shared by the imap connector and SMTP sending.

aioimaplib speaks the protocol; this module adds what a connector that must never hang needs:
every command under a timeout that also ends the moment the connection drops, STARTTLS (which
aioimaplib lacks), login errors that tell IT what to fix without echoing the secret, modified
UTF-7 folder names, and parsers for the few responses we read (STATUS, LIST, SEARCH, FETCH).
"""

from __future__ import annotations

import asyncio
import base64
import logging
import re
import ssl
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import aioimaplib

from connectors.base import TransientError

log = logging.getLogger(__name__)
T = TypeVar("T")


class ImapTransient(TransientError):
    """The connection broke or stalled; reconnecting may help (the base class does)."""


class ImapRefused(Exception):
    """The server refused us (login, TLS policy, a missing folder): retrying will not help."""


def encode_folder(name: str) -> str:
    """Folder name as IMAP wants it on the wire: modified UTF-7 (RFC 3501 5.1.3), quoted."""
    out: list[str] = []
    pending: list[str] = []

    def flush() -> None:
        if pending:
            raw = "".join(pending).encode("utf-16-be")
            out.append("&" + base64.b64encode(raw).decode().rstrip("=").replace("/", ",") + "-")
            pending.clear()

    for char in name:
        if 0x20 <= ord(char) <= 0x7E:
            flush()
            out.append("&-" if char == "&" else char)
        else:
            pending.append(char)
    flush()
    return aioimaplib.quoted("".join(out))


def decode_folder(wire: str) -> str:
    """Modified UTF-7 back to text; a malformed name is returned as it came."""

    def one(match: re.Match[str]) -> str:
        body = match.group(1)
        if not body:
            return "&"
        data = body.replace(",", "/")
        data += "=" * (-len(data) % 4)
        try:
            return base64.b64decode(data).decode("utf-16-be")
        except (ValueError, UnicodeDecodeError):
            return match.group(0)

    return re.sub(r"&([A-Za-z0-9+,]*)-", one, wire)


@dataclass(frozen=True, slots=True)
class FolderInfo:
    name: str
    wire: str
    flags: frozenset[str]
    delimiter: str = ""  # between the levels of `name`; "" for a flat namespace

    @property
    def levels(self) -> list[str]:
        """The folder and the folders it lies in, outermost first (`INBOX/Private/Arzt`)."""
        return self.name.split(self.delimiter) if self.delimiter else [self.name]


@dataclass(frozen=True, slots=True)
class FolderStatus:
    uidvalidity: int
    uidnext: int
    messages: int
    highestmodseq: int | None


@dataclass(frozen=True, slots=True)
class FetchedMessage:
    uid: int
    size: int
    data: bytes | None
    flags: frozenset[str] = frozenset()  # as the server spelt them, when FLAGS was asked for


_STATUS_ITEM = re.compile(rb"(MESSAGES|UIDNEXT|UIDVALIDITY|HIGHESTMODSEQ) (\d+)")
_FETCH_START = re.compile(rb"^\d+ FETCH \(")
_UID = re.compile(rb"\bUID (\d+)")
_SIZE = re.compile(rb"\bRFC822\.SIZE (\d+)")
_FLAGS = re.compile(rb"\bFLAGS \(([^)]*)\)")
_LITERAL = re.compile(rb"\{(\d+)\}$")
_LIST = re.compile(rb'^(?:LIST )?\(([^)]*)\) ("(?:[^"\\]|\\.)*"|NIL) (.*)$')


def parse_status(lines: list[Any]) -> FolderStatus:
    items: dict[bytes, int] = {}
    for line in lines:
        if isinstance(line, bytes | bytearray):
            items.update({k: int(v) for k, v in _STATUS_ITEM.findall(bytes(line))})
    if b"UIDVALIDITY" not in items or b"UIDNEXT" not in items:
        raise ImapTransient(f"STATUS answer without UIDVALIDITY/UIDNEXT: {lines!r:.200}")
    return FolderStatus(
        items[b"UIDVALIDITY"],
        items[b"UIDNEXT"],
        items.get(b"MESSAGES", 0),
        items.get(b"HIGHESTMODSEQ"),
    )


def parse_list(lines: list[Any]) -> list[FolderInfo]:
    """LIST answers; a name sent as a literal arrives as the next line."""
    folders: list[FolderInfo] = []
    items = list(lines)
    for i, line in enumerate(items):
        if not isinstance(line, bytes):
            continue
        match = _LIST.match(line)
        if match is None:
            continue
        flags = frozenset(f.lower() for f in match.group(1).decode("ascii", "replace").split())
        delimiter = match.group(2).decode("ascii", "replace")
        delimiter = "" if delimiter == "NIL" else delimiter[1:-1].replace("\\\\", "\\")
        raw_name = match.group(3)
        if re.fullmatch(rb"\{\d+\}", raw_name) and i + 1 < len(items):
            raw_name = bytes(items[i + 1])
        name = raw_name.decode("utf-8", "replace")
        if len(name) >= 2 and name[0] == name[-1] == '"':
            name = name[1:-1].replace('\\"', '"').replace("\\\\", "\\")
        folders.append(FolderInfo(decode_folder(name), name, flags, delimiter))
    return folders


def parse_search(lines: list[Any]) -> list[int]:
    """aioimaplib hands over `* SEARCH 1 2 3` as `1 2 3`; other servers' text may keep it."""
    uids: list[int] = []
    for line in lines:
        if not isinstance(line, bytes):
            continue
        words = line.split()
        if words[:1] == [b"SEARCH"]:
            words = words[1:]
        if words and all(w.isdigit() for w in words):
            uids.extend(int(w) for w in words)
    return uids


def parse_fetch(lines: list[Any]) -> list[FetchedMessage]:
    """UID, size, flags and body literal of each FETCH answer, in whatever order they come.

    Only the literal holds message bytes; parentheses in it (an unbalanced subject) are never
    read as syntax because literals arrive as separate bytearray lines.
    """
    found: list[FetchedMessage] = []
    text: list[bytes] = []
    literal: bytes | None = None

    def close() -> None:
        joined = b" ".join(text)
        uid, size, flags = _UID.search(joined), _SIZE.search(joined), _FLAGS.search(joined)
        if uid is None:
            return
        words = flags.group(1).decode("ascii", "replace").split() if flags else []
        found.append(
            FetchedMessage(
                int(uid.group(1)), int(size.group(1)) if size else -1, literal, frozenset(words)
            )
        )

    for line in lines:
        if isinstance(line, bytearray):
            literal = bytes(line)
            continue
        if _FETCH_START.match(line):
            if text:
                close()
            text, literal = [line], None
        elif text:
            text.append(line)
    if text:
        close()
    return found


class _FetchCommand(aioimaplib.Command):
    """UID FETCH whose completeness check is O(1) per line.

    aioimaplib's FetchCommand re-joins every line since the last `* n FETCH` on each new line,
    which is quadratic in the answer and cost more than the rest of a sync. Here the parenthesis
    depth of the text lines is kept as they arrive; literals (message bytes, where parentheses
    are data) arrive as bytearrays and are not counted.
    """

    def __init__(self, tag: str, *args: str, loop: asyncio.AbstractEventLoop) -> None:
        super().__init__("FETCH", tag, *args, prefix="UID", loop=loop)
        self._depth = 0

    def append_to_resp(self, line: bytes, result: str = "Pending") -> None:
        super().append_to_resp(line, result)
        if type(line) is bytes and result == "Pending":
            if _FETCH_START.match(line):
                self._depth = 0
            self._depth += line.count(b"(") - line.count(b")")

    def wait_data(self) -> bool:
        return self._depth > 0


class _Protocol(aioimaplib.IMAP4ClientProtocol):
    """aioimaplib's protocol with a linear response reader.

    The original handles each line by recursing on a copy of the rest of the buffer, so a
    64 KB chunk full of short lines and message literals is copied once per line; here an
    offset walks the buffer and only literal bytes are copied (once, into the message).
    """

    incomplete_line: bytes
    current_command: aioimaplib.Command | None

    def data_received(self, d: bytes) -> None:
        # The original formats every received chunk for a debug log line even when debug
        # logging is off, which cost a third of a bulk fetch.
        try:
            self._handle_responses(
                self.incomplete_line + d, self._handle_line, self.current_command
            )
            self.incomplete_line = b""
            self.current_command = None
        except aioimaplib.IncompleteRead as incomplete:
            self.current_command = incomplete.cmd
            self.incomplete_line = incomplete.data

    def _handle_responses(
        self,
        data: bytes,
        line_handler: Callable[[bytes, aioimaplib.Command], aioimaplib.Command | None],
        current_cmd: aioimaplib.Command | None = None,
    ) -> None:
        pos, size = 0, len(data)
        while True:
            if current_cmd is not None and current_cmd.wait_literal_data():
                need = current_cmd._expected_size - len(current_cmd._resp_literal_data)
                current_cmd.append_literal_data(data[pos : pos + need])
                pos += min(need, size - pos)
                if current_cmd.wait_literal_data():
                    raise aioimaplib.IncompleteRead(current_cmd)
            if pos >= size:
                if self.pending_sync_command is not None:
                    self.pending_sync_command.flush()
                if current_cmd is not None and current_cmd.wait_data():
                    raise aioimaplib.IncompleteRead(current_cmd)
                return
            end = data.find(b"\r\n", pos)
            if end == -1:
                raise aioimaplib.IncompleteRead(current_cmd, data[pos:])
            line = data[pos:end]
            pos = end + 2
            cmd = line_handler(line, current_cmd)
            literal = _LITERAL.search(line)
            if literal:
                if cmd is None:
                    cmd = aioimaplib.Command("NIL", "unused")
                cmd.begin_literal_data(int(literal.group(1)))
                current_cmd = cmd
            elif cmd is not None and cmd.wait_data():
                current_cmd = cmd
            else:
                current_cmd = None


class _Client(aioimaplib.IMAP4):
    """IMAP4 (or, given an SSL context, IMAP4 over implicit TLS) with the linear reader."""

    def create_client(
        self,
        host: str,
        port: int,
        loop: asyncio.AbstractEventLoop | None,
        conn_lost_cb: Callable[[Exception | None], None] | None = None,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        running = loop or asyncio.get_running_loop()
        self.protocol = _Protocol(running, conn_lost_cb)
        self._client_task = running.create_task(
            running.create_connection(lambda: self.protocol, host, port, ssl=ssl_context)
        )


class _XOAuth2Command(aioimaplib.Command):
    """AUTHENTICATE XOAUTH2 that answers the server's error challenge.

    A server refusing the token sends its reason as a challenge (`+ <base64 JSON>`) and waits
    for an empty client response before the tagged NO (Google's XOAUTH2 protocol; RFC 7628 3.2.3
    for OAUTHBEARER). aioimaplib never answers it, so the login hung until the timeout and was
    retried as a dropped connection instead of being reported as refused.
    """

    def __init__(self, tag: str, sasl: str, *, protocol: aioimaplib.IMAP4ClientProtocol) -> None:
        super().__init__("AUTHENTICATE", tag, "XOAUTH2", sasl, loop=protocol.loop)
        self._protocol = protocol

    def append_to_resp(self, line: bytes, result: str = "Pending") -> None:
        if result == "Pending" and line.startswith(b"+"):
            self._protocol.transport.write(b"\r\n")
            return
        super().append_to_resp(line, result)


class ImapSession:
    """One logged-in connection. Use `ImapSession.open(...)`; always `await session.close()`."""

    def __init__(self, client: aioimaplib.IMAP4, host: str, timeout: float) -> None:
        self.client = client
        self.host = host
        self.timeout = timeout
        self.lost: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    @classmethod
    async def open(
        cls,
        host: str,
        port: int,
        *,
        tls: str,
        username: str,
        password: str = "",
        oauth_token: str = "",
        ca_file: str | None = None,
        timeout: float = 30.0,
    ) -> ImapSession:
        context = ssl.create_default_context(cafile=ca_file) if tls != "none" else None
        lost_holder: list[asyncio.Future[None]] = []

        def on_lost(exc: Exception | None) -> None:
            if lost_holder and not lost_holder[0].done():
                lost_holder[0].set_result(None)

        client: aioimaplib.IMAP4 | None = None
        try:
            client = _Client(
                host,
                port,
                timeout=timeout,
                conn_lost_cb=on_lost,
                ssl_context=context if tls == "ssl" else None,
            )
            session = cls(client, host, timeout)
            lost_holder.append(session.lost)
            await session.guard(client.wait_hello_from_server())
        except ssl.SSLError as e:
            _drop(client)
            raise ImapRefused(f"TLS with {host}:{port} failed: {e.reason or e}") from e
        except (OSError, TimeoutError, ImapTransient) as e:
            _drop(client)
            raise ImapTransient(f"cannot connect to {host}:{port}: {e}") from e
        try:
            if tls == "starttls":
                await session._starttls(context)
            elif tls == "none":
                log.warning(
                    "IMAP to %s:%s without TLS: the password crosses the network in clear text",
                    host,
                    port,
                )
            await session._login(username, password, oauth_token)
        except BaseException:
            await session.close()
            raise
        return session

    async def guard(self, awaitable: Awaitable[T], timeout: float | None = None) -> T:
        """The command's result, or ImapTransient on timeout or a dropped connection."""
        task = asyncio.ensure_future(awaitable)
        limit = timeout or self.timeout
        waiting: set[asyncio.Future[Any]] = {task, self.lost}
        done, _ = await asyncio.wait(waiting, timeout=limit, return_when=asyncio.FIRST_COMPLETED)
        if task in done:
            try:
                return task.result()
            except (aioimaplib.Abort, aioimaplib.CommandTimeout, TimeoutError, OSError) as e:
                raise ImapTransient(f"{self.host}: {type(e).__name__} {e}") from e
        task.cancel()
        if self.lost in done:
            raise ImapTransient(f"{self.host}: the server closed the connection")
        raise ImapTransient(f"{self.host}: no answer within {limit:g} s")

    async def command(self, name: str, *args: str) -> aioimaplib.Response:
        response = await self.guard(self.client.protocol.simple_command(name, *args))
        if response.result != "OK":
            raise ImapRefused(f"{name} {' '.join(args)}: {_text(response)}")
        return response

    @property
    def capabilities(self) -> set[str]:
        return {c.upper() for c in self.client.protocol.capabilities}

    async def _starttls(self, context: ssl.SSLContext | None) -> None:
        protocol = self.client.protocol
        if "STARTTLS" not in self.capabilities:
            raise ImapRefused(f"{self.host} does not offer STARTTLS; use tls=ssl (port 993)")
        response = await self.guard(
            protocol.execute(aioimaplib.Command("STARTTLS", protocol.new_tag(), loop=protocol.loop))
        )
        if response.result != "OK":
            raise ImapRefused(f"{self.host} refused STARTTLS: {_text(response)}")
        try:
            transport = await self.guard(
                protocol.loop.start_tls(
                    protocol.transport, protocol, context, server_hostname=self.host
                )
            )
        except ssl.SSLError as e:
            raise ImapRefused(f"TLS with {self.host} failed: {e.reason or e}") from e
        protocol.transport = transport
        await self.guard(protocol.capability())  # capabilities before TLS must not be trusted

    async def _login(self, username: str, password: str, oauth_token: str) -> None:
        protocol = self.client.protocol
        if oauth_token:
            response = await self.guard(self._xoauth2(username, oauth_token))
        else:
            if "LOGINDISABLED" in self.capabilities:
                raise ImapRefused(
                    f"{self.host} does not allow password login on this "
                    "connection (LOGINDISABLED): use tls=ssl or tls=starttls"
                )
            response = await self.guard(protocol.login(username, password))
        if response.result != "OK":
            method = "XOAUTH2 token" if oauth_token else "password"
            raise ImapRefused(
                f"{self.host} refused the login of {username!r} ({_text(response)}): check the "
                f"username and the {method} secret"
            )
        if not any(isinstance(line, bytes) and b"CAPABILITY" in line for line in response.lines):
            await self.guard(protocol.capability())

    async def _xoauth2(self, username: str, token: str) -> aioimaplib.Response:
        """AUTHENTICATE XOAUTH2 with the initial response; aioimaplib's own `xoauth2` hangs on a
        refused token (see `_XOAuth2Command`) and logs the base64 string that carries it."""
        protocol = self.client.protocol
        sasl = base64.b64encode(f"user={username}\x01auth=Bearer {token}\x01\x01".encode())
        command = _XOAuth2Command(protocol.new_tag(), sasl.decode("ascii"), protocol=protocol)
        response = await protocol.execute(command, scrub=sasl.decode("ascii"))
        if response.result == "OK":
            async with protocol.state_condition:
                protocol.state = aioimaplib.AUTH
                protocol.state_condition.notify_all()
        return response

    async def list_folders(self) -> list[FolderInfo]:
        pattern = "RETURN (SPECIAL-USE)" if "SPECIAL-USE" in self.capabilities else ""
        args = ['""', '"*"'] + ([pattern] if pattern else [])
        response = await self.command("LIST", *args)
        return parse_list(response.lines)

    async def status(self, folder: FolderInfo) -> FolderStatus:
        items = "(MESSAGES UIDNEXT UIDVALIDITY"
        items += " HIGHESTMODSEQ)" if "CONDSTORE" in self.capabilities else ")"
        response = await self.command("STATUS", aioimaplib.quoted(folder.wire), items)
        return parse_status(response.lines)

    async def select(self, folder: FolderInfo) -> FolderStatus:
        response = await self.guard(self.client.protocol.select(aioimaplib.quoted(folder.wire)))
        if response.result != "OK":
            raise ImapRefused(f"cannot open folder {folder.name!r}: {_text(response)}")
        uidvalidity = uidnext = exists = 0
        modseq = None
        for line in response.lines:
            if not isinstance(line, bytes):
                continue
            if m := re.search(rb"UIDVALIDITY (\d+)", line):
                uidvalidity = int(m.group(1))
            if m := re.search(rb"UIDNEXT (\d+)", line):
                uidnext = int(m.group(1))
            if m := re.search(rb"HIGHESTMODSEQ (\d+)", line):
                modseq = int(m.group(1))
            if m := re.match(rb"(\d+) EXISTS", line):
                exists = int(m.group(1))
        return FolderStatus(uidvalidity, uidnext, exists, modseq)

    async def uids_after(self, uid: int) -> list[int]:
        response = await self.guard(
            self.client.protocol.search(f"UID {uid + 1}:*", charset=None, by_uid=True)
        )
        if response.result != "OK":
            raise ImapTransient(f"UID SEARCH failed: {_text(response)}")
        # `N:*` always names the highest UID, even when that is below N.
        return sorted(u for u in parse_search(response.lines) if u > uid)

    async def fetch(self, uids: list[int], parts: str) -> list[FetchedMessage]:
        if not uids:
            return []
        protocol = self.client.protocol
        command = _FetchCommand(protocol.new_tag(), _uid_set(uids), parts, loop=protocol.loop)
        response = await self.guard(protocol.execute(command))
        if response.result != "OK":
            raise ImapTransient(f"UID FETCH failed: {_text(response)}")
        return parse_fetch(response.lines)

    async def idle_once(self, seconds: float) -> bool:
        """IDLE on the selected folder until the server reports something or `seconds` pass.

        True when new mail arrived (EXISTS). A server that answers IDLE with BYE, or never
        confirms it, raises ImapTransient instead of hanging the caller.
        """
        if "IDLE" not in self.capabilities:
            raise ImapRefused(f"{self.host} does not support IDLE")
        client = self.client
        idle = await self.guard(client.idle_start(timeout=seconds))
        try:
            push = await self.guard(client.wait_server_push(seconds + 5), seconds + 10)
        finally:
            if not self.lost.done():
                client.idle_done()
        response = await self.guard(idle)
        if response.result != "OK":
            raise ImapTransient(f"IDLE ended with {_text(response)}")
        lines = push if isinstance(push, list) else []
        return any(isinstance(line, bytes) and line.endswith(b"EXISTS") for line in lines)

    async def append(self, folder: FolderInfo, data: bytes, flags: str = "\\Seen") -> None:
        response = await self.guard(
            self.client.protocol.append(data, aioimaplib.quoted(folder.wire), flags)
        )
        if response.result != "OK":
            raise ImapRefused(f"cannot append to {folder.name!r}: {_text(response)}")

    async def close(self) -> None:
        """Say goodbye if the connection allows it; the socket is closed in any case, also
        when the caller is being cancelled (a watcher stopping) halfway through LOGOUT."""
        try:
            if not self.lost.done() and not self.client.protocol.has_pending_idle_command():
                await asyncio.wait_for(self.client.logout(), min(self.timeout, 5))
        except Exception:  # noqa: BLE001 - a failing goodbye changes nothing
            pass
        finally:
            _drop(self.client)
        # A TLS socket closes only once the loop has run the TLS shutdown; a caller that ends its
        # loop right after a refused login would otherwise leak it (ResourceWarning).
        await asyncio.wait({self.lost}, timeout=min(self.timeout, 2))


def _drop(client: aioimaplib.IMAP4 | None) -> None:
    """Close a connection that never got as far as a session, so no socket is left open."""
    if client is None:
        return
    transport = client.protocol.transport
    if transport is not None:
        transport.close()
    else:
        client._client_task.cancel()


def _uid_set(uids: list[int]) -> str:
    """Compact ranges: 1:500 instead of 500 numbers on the wire."""
    ranges: list[str] = []
    start = prev = uids[0]
    for uid in uids[1:]:
        if uid == prev + 1:
            prev = uid
            continue
        ranges.append(f"{start}:{prev}" if start != prev else str(start))
        start = prev = uid
    ranges.append(f"{start}:{prev}" if start != prev else str(start))
    return ",".join(ranges)


def _text(response: aioimaplib.Response) -> str:
    for line in reversed(response.lines):
        if isinstance(line, bytes) and line.strip():
            return line.decode("utf-8", "replace")[:200]
    return response.result
