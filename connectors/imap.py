"""IMAP mailboxes: every message of the chosen folders, once, resumable, gentle on the server.

Per folder the cursor keeps UIDVALIDITY and the highest UID stored. A pass asks STATUS first and
opens the folder only when UIDNEXT moved, so an idle mailbox costs one round trip per folder.
New mail is fetched in UID order, at most 250 UIDs (and about 20 MB) per batch, and each batch's
cursor commits with its items, so a crash resumes after the last stored batch. When UIDVALIDITY
changes the folder is read again from the start: storage recognises every message it already
has by Message-ID (or a hash of the raw bytes) and adds only a source, so nothing is duplicated
and nothing already logged is deleted. A server that keeps resetting stops the connector.

With `private_marker` set, the size FETCH asks for FLAGS as well, and a message carrying a
named keyword is never downloaded; nor is any message of a folder the setting names. Both are
handed on as private RawItems (skipped, counted) so that the cursor still moves past them.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from array import array
from collections.abc import AsyncGenerator, AsyncIterator, Iterator, Sequence
from typing import Any, ClassVar

from connectors.base import ConfigurationError, ConnectorError, SentFolder
from connectors.imap_client import (
    FetchedMessage,
    FolderInfo,
    ImapRefused,
    ImapSession,
    ImapTransient,
)
from connectors.mail import strip_attachment_bodies, translate_in
from hub.model import Interaction, RawItem

log = logging.getLogger(__name__)

MAX_BATCH_UIDS = 250  # measured: 500 costs 80 MB more peak memory and is no faster
FIRST_BATCH_UIDS = 100  # a smaller first batch puts the first mail on the timeline sooner
MAX_BATCH_BYTES = 20_000_000
MAX_RESETS_PER_DAY = 3
SENT = "\\sent"

_SLOTS: dict[tuple[int, str, int], asyncio.Semaphore] = {}


def server_slot(host: str, port: int, limit: int) -> asyncio.Semaphore:
    """At most `limit` connections per server from this process, whichever connectors ask."""
    key = (id(asyncio.get_running_loop()), host.lower(), port)
    if key not in _SLOTS:
        _SLOTS[key] = asyncio.Semaphore(limit)
    return _SLOTS[key]


def _chunks(uids: Sequence[int]) -> Iterator[list[int]]:
    """UIDs in batches: a short first one, so that storing starts while the next is fetched.

    Each batch's list is made when it is due: `uids` may hold a whole folder's.
    """
    start, size = 0, FIRST_BATCH_UIDS
    while start < len(uids):
        yield list(uids[start : start + size])
        start, size = start + size, MAX_BATCH_UIDS


class ImapConnector(SentFolder):
    kind = "imap"
    options: ClassVar[dict[str, str]] = {
        "host": "the IMAP server's name",
        "port": "port (default 993 with tls=ssl, 143 with tls=starttls or none)",
        "username": "login name, usually the mail address",
        "folders": r"comma-separated folders (default INBOX,\Sent: the folder flagged \Sent)",
        "tls": "ssl (default, implicit TLS), starttls, or none (plaintext: only on a trusted net)",
        "auth": "password (default, secret `password`) or xoauth2 (secret `oauth_token`)",
        "ca_file": "PEM file of the CA that signed the server certificate (default: system CAs)",
        "max_connections": "connections to this server at once, over all connectors (default 2)",
        "timeout": "seconds to wait for any server answer (default 60)",
        "retries": "reconnect attempts after a dropped connection (default 5)",
        "idle_seconds": "IDLE is re-issued after this many seconds (default 1500, below 29 min)",
        "poll_seconds": "seconds between checks when the server cannot IDLE (default 60)",
    }
    required: ClassVar[tuple[str, ...]] = ("host", "username")
    secret_options: ClassVar[dict[str, str]] = {
        "password": "the login password (auth=password)",
        "oauth_token": "an OAuth 2 access token for the username (auth=xoauth2)",
    }
    batch_size: ClassVar[int] = MAX_BATCH_UIDS
    watches: ClassVar[bool] = True

    @classmethod
    def validate_settings(cls, settings: Any) -> None:
        super().validate_settings(settings)
        tls = settings.get("tls", "ssl")
        if tls not in ("ssl", "starttls", "none"):
            raise ConfigurationError(f"imap: tls={tls!r}; use ssl, starttls or none")
        auth = settings.get("auth", "password")
        if auth not in ("password", "xoauth2"):
            raise ConfigurationError(f"imap: auth={auth!r}; use password or xoauth2")
        cls.require_numbers(
            settings, "port", "max_connections", "timeout", "idle_seconds", "poll_seconds"
        )
        cls.require_numbers(settings, "retries", zero=True)

    @property
    def _port(self) -> int:
        default = 993 if self.settings.get("tls", "ssl") == "ssl" else 143
        return int(self.settings.get("port") or default)

    async def _session(self) -> ImapSession:
        auth = self.settings.get("auth", "password")
        secret = "oauth_token" if auth == "xoauth2" else "password"
        if not self.secrets.get(secret):
            raise ConfigurationError(
                f"{self.name}: no {secret} stored; add the connector again with "
                f"--secret {secret}=ENV_VAR"
            )
        try:
            session = await ImapSession.open(
                self.settings["host"],
                self._port,
                tls=self.settings.get("tls", "ssl"),
                username=self.settings["username"],
                password=self.secrets.get("password", "") if auth == "password" else "",
                oauth_token=self.secrets.get("oauth_token", "") if auth == "xoauth2" else "",
                ca_file=self.settings.get("ca_file") or None,
                timeout=float(self.settings.get("timeout") or 60),
            )
        except ImapRefused as e:
            raise ConnectorError(f"{self.name}: {e}") from e
        if {"CONDSTORE", "ENABLE"} <= session.capabilities:
            await session.command("ENABLE", "CONDSTORE")  # before SELECT, so it reports MODSEQ
        return session

    async def _folders(self, session: ImapSession) -> list[FolderInfo]:
        wanted = [f.strip() for f in self.settings.get("folders", "INBOX,\\Sent").split(",")]
        available = await session.list_folders()
        by_name = {f.name: f for f in available}
        by_name.update({f.name.upper(): f for f in available if f.name.upper() == "INBOX"})
        chosen: list[FolderInfo] = []
        for name in filter(None, wanted):
            if name.startswith("\\"):
                flagged = [f for f in available if name.lower() in f.flags]
                if not flagged:
                    log.warning("%s: no folder is flagged %s; skipped", self.name, name)
                chosen.extend(flagged)
            elif name in by_name or name.upper() == "INBOX":
                chosen.append(
                    by_name.get(name)
                    or by_name.get("INBOX")
                    or FolderInfo("INBOX", "INBOX", frozenset())
                )
            else:
                known = ", ".join(sorted(by_name)) or "none"
                raise ConnectorError(f"{self.name}: no folder {name!r} (folders: {known})")
        return list({f.wire: f for f in chosen}.values())

    async def _fetch(
        self, cursor: dict[str, Any]
    ) -> AsyncIterator[tuple[list[RawItem], dict[str, Any]]]:
        state: dict[str, Any] = {
            "folders": dict(cursor.get("folders", {})),
            "resets": dict(cursor.get("resets", {})),
        }
        limit = int(self.settings.get("max_connections") or 2)
        async with server_slot(self.settings["host"], self._port, limit):
            session = await self._session()
            try:
                for folder in await self._folders(session):
                    async for raws in self._sync_folder(session, folder, state):
                        yield raws, _copy(state)
            finally:
                await session.close()

    async def _sync_folder(
        self, session: ImapSession, folder: FolderInfo, state: dict[str, Any]
    ) -> AsyncIterator[list[RawItem]]:
        mark = state["folders"].get(folder.wire, {})
        status = await session.status(folder)
        if mark.get("uidvalidity") == status.uidvalidity and status.uidnext <= mark["uid"] + 1:
            return
        if mark and mark.get("uidvalidity") != status.uidvalidity:
            self._note_reset(folder, state)
            mark = {}
        selected = await session.select(folder)
        uidvalidity = selected.uidvalidity or status.uidvalidity
        last = int(mark.get("uid", 0))
        # Held while the whole folder syncs: 200,000 UIDs as a list of ints took 8 MB, packed
        # 1.6 MB (a 200,000-mail sync's peak: 7 MiB less; bench/imap_vs_mbsync.py).
        uids = array("Q", await session.uids_after(last))
        max_bytes = self.context.max_message_bytes
        committed = dict(mark)
        private_folder = self.private_folder(folder.levels)
        for chunk in _chunks(uids):
            if private_folder:  # not even a FETCH: every message of it is skipped
                size_of = dict.fromkeys(chunk, 0)
                private = dict.fromkeys(chunk, private_folder)
            else:
                sizes = await session.fetch(chunk, _SIZE_ITEMS[bool(self.private_markers)])
                private = {m.uid: why for m in sizes if (why := self._private_keyword(m.flags))}
                size_of = {m.uid: 0 if m.uid in private else m.size for m in sizes}
            for group in _by_bytes([u for u in chunk if u in size_of], size_of, MAX_BATCH_BYTES):
                wanted = [u for u in group if u not in private]
                small = [u for u in wanted if size_of[u] <= max_bytes]
                fetched = await session.fetch(small, "(UID RFC822.SIZE BODY.PEEK[])")
                for uid in (u for u in wanted if size_of[u] > max_bytes):  # one at a time
                    fetched += await session.fetch([uid], "(UID RFC822.SIZE BODY.PEEK[])")
                found = {
                    m.uid: self._raw(folder, uidvalidity, m, max_bytes)
                    for m in fetched
                    if m.data is not None  # expunged between the two FETCHes
                }
                for uid in group:
                    if uid in private:
                        external_id = f"{folder.wire}/{uidvalidity}/{uid}"
                        found[uid] = RawItem(external_id, b"", private=private[uid])
                raws = [found[uid] for uid in sorted(found)]
                committed = {
                    "uidvalidity": uidvalidity,
                    "uid": max(group),
                    "modseq": selected.highestmodseq,
                }
                state["folders"][folder.wire] = committed
                yield raws
        final = {
            "uidvalidity": uidvalidity,
            "uid": max([last, *uids[-1:]]),  # uids_after() answers in order
            "modseq": selected.highestmodseq,
        }
        if final != committed:  # a reset, or mail that vanished before it could be fetched
            state["folders"][folder.wire] = final
            yield []

    async def watch(self) -> AsyncGenerator[str, None]:
        """IDLE on INBOX; polls STATUS instead while IDLE fails, and tries IDLE again later.

        The IDLE connection is one per mailbox and does not count against max_connections,
        which limits the connections that fetch.
        """
        idle_seconds = float(self.settings.get("idle_seconds") or 1500)
        poll_seconds = float(self.settings.get("poll_seconds") or 60)
        inbox = FolderInfo("INBOX", "INBOX", frozenset())
        failures = 0
        while True:
            session: ImapSession | None = None
            try:
                session = await self._session()
                before = await session.select(inbox)
                if failures < 3 and "IDLE" in session.capabilities:
                    while True:
                        if await session.idle_once(idle_seconds):
                            failures = 0
                            yield "idle"
                deadline = time.monotonic() + 10 * 60  # then try IDLE again
                while time.monotonic() < deadline:
                    await asyncio.sleep(poll_seconds)
                    now = await session.status(inbox)
                    if (now.uidvalidity, now.uidnext) != (before.uidvalidity, before.uidnext):
                        before = now
                        yield "poll"
                failures = 0
            except (ImapTransient, ImapRefused, ConnectorError) as e:
                failures += 1
                delay = min(300.0, 2.0**failures) * random.uniform(0.5, 1.0)
                log.warning("%s: watching INBOX: %s; again in %.0f s", self.name, e, delay)
                await asyncio.sleep(delay)
            finally:
                if session is not None:
                    await session.close()

    def _note_reset(self, folder: FolderInfo, state: dict[str, Any]) -> None:
        now = time.time()
        recent = [t for t in state["resets"].get(folder.wire, []) if now - t < 86_400]
        recent.append(now)
        state["resets"][folder.wire] = recent
        if len(recent) > MAX_RESETS_PER_DAY:
            raise ConnectorError(
                f"{self.name}: folder {folder.name!r} changed its UIDVALIDITY {len(recent)} "
                "times within a day; the server is rebuilding the mailbox over and over. "
                "Fix the server, then remove and add this connector again"
            )
        log.warning(
            "%s: UIDVALIDITY of %s changed; re-reading it, recognising known mail",
            self.name,
            folder.name,
        )

    def _private_keyword(self, flags: frozenset[str]) -> str:
        """Why a message with these FLAGS is never stored, or "": a keyword `private_marker`
        names (any case; IMAP keywords are case-insensitive)."""
        for flag in sorted(flags):
            if flag.casefold() in self.private_markers:
                return f"IMAP keyword {flag} (private_marker)"
        return ""

    def _raw(
        self, folder: FolderInfo, uidvalidity: int, message: FetchedMessage, max_bytes: int
    ) -> RawItem:
        data = message.data or b""
        if len(data) > max_bytes:
            data = strip_attachment_bodies(data)
        return RawItem(f"{folder.wire}/{uidvalidity}/{message.uid}", data)

    def translate(self, raw: RawItem) -> Interaction:
        return translate_in(self.context, raw.data)

    def readable(self, error: Exception) -> ConnectorError:
        if isinstance(error, ImapRefused):
            return ConnectorError(f"{self.name}: {error}")
        return super().readable(error)

    async def _append_sent(self, data: bytes) -> str:
        session = await self._session()
        try:
            folders = await session.list_folders()
            sent = [f for f in folders if SENT in f.flags] or [
                f for f in folders if f.name.lower() in ("sent", "sent items", "gesendet")
            ]
            if not sent:
                raise ConnectorError(f"{self.name}: no folder is flagged \\Sent")
            await session.append(sent[0], data, "(\\Seen)")
            return sent[0].name
        finally:
            await session.close()

    async def _check(self) -> list[str]:
        session = await self._session()
        try:
            lines = [
                f"{self.name}: logged in to {self.settings['host']}:{self._port} as "
                f"{self.settings['username']}"
            ]
            chosen = {f.wire for f in await self._folders(session)}
            for folder in await session.list_folders():
                if "\\noselect" in folder.flags or "\\nonexistent" in folder.flags:
                    continue
                status = await session.status(folder)
                special = " ".join(sorted(f for f in folder.flags if f in _SPECIAL))
                private = (
                    " (private_marker: never stored)" if self.private_folder(folder.levels) else ""
                )
                lines.append(
                    f"  {'*' if folder.wire in chosen else ' '} {folder.name}: "
                    f"{status.messages} messages{' ' + special if special else ''}{private}"
                )
            lines.append("  (* = synced)")
            return lines
        finally:
            await session.close()


_SPECIAL = {"\\sent", "\\drafts", "\\trash", "\\junk", "\\archive", "\\all", "\\flagged"}
# The size FETCH, by whether `private_marker` is set: FLAGS only costs when it is needed.
_SIZE_ITEMS = {False: "(UID RFC822.SIZE)", True: "(UID RFC822.SIZE FLAGS)"}


def _by_bytes(uids: list[int], size_of: dict[int, int], limit: int) -> list[list[int]]:
    groups: list[list[int]] = []
    current: list[int] = []
    total = 0
    for uid in uids:
        if current and total + size_of[uid] > limit:
            groups.append(current)
            current, total = [], 0
        current.append(uid)
        total += size_of[uid]
    if current:
        groups.append(current)
    return groups


def _copy(state: dict[str, Any]) -> dict[str, Any]:
    return {
        "folders": {k: dict(v) for k, v in state["folders"].items()},
        "resets": {k: list(v) for k, v in state["resets"].items()},
    }
