"""Translation in worker processes: the CPU-heavy step of a sync, on every core.

This module is what the workers load, so it imports only what translating needs (connectors,
the domain model, the packing of raw bytes): no database, no web framework. Measured: a worker
that imported the whole hub held about 45 MB of its own memory before it translated anything.
"""

from __future__ import annotations

import multiprocessing
import os
import tempfile
import threading
import time
from collections.abc import Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from contextlib import contextmanager, suppress
from dataclasses import dataclass, fields, replace
from typing import Any

from connectors.base import Connector, ConnectorContext
from hub.model import (
    AddressKind,
    Attachment,
    Channel,
    Direction,
    Interaction,
    Participant,
    Quarantined,
    RawItem,
    Role,
    Skipped,
    Translated,
)
from hub.runtime import tune_gc
from storage.packing import (
    PackedAttachment,
    PackedInteraction,
    PackedRaw,
    pack,
    pack_text,
)

POOL_THRESHOLD = 100  # items; below this a worker process costs more than it saves
MAX_WORKERS = 4
WORKER_NICENESS = 10  # added to the main process's
LIFELINE_SECONDS = 1.0
Started = tuple[ProcessPoolExecutor, "Future[int]"]  # the pool; done once a worker runs
_early: threading.Thread | None = None
_early_pool: list[Started] = []


def multicore() -> bool:
    """Worker processes pay only where there is another core to run them."""
    return (os.cpu_count() or 1) > 1


_INTERACTION_FIELDS = tuple(f.name for f in fields(Interaction))
_CHANNEL, _DIRECTION, _PARTICIPANTS, _ATTACHMENTS, _BODY_TEXT, _BODY_HTML = (
    _INTERACTION_FIELDS.index(name)
    for name in ("channel", "direction", "participants", "attachments", "body_text", "body_html")
)


def translate_and_pack(
    cls: type[Connector],
    name: str,
    settings: dict[str, str],
    context: ConnectorContext,
    raws: list[RawItem],
) -> list[Translated | Quarantined | Skipped]:
    """Translate, and hash and compress the raw bytes while on a core of their own.

    Runs in a worker process, so the connector is rebuilt there, without its secrets. What
    goes back holds neither the raw bytes (the caller has them: see `with_raws`) nor the HTML
    body (storage keeps none) nor the body text (packed instead): they would only be copied
    through a pipe again. The HTML is not even decoded (`ConnectorContext.keep_html`). A
    skipped (private) item comes back as its reason alone: nothing of it is to be stored.
    What was packed rides in the `Packed*` forms of storage.packing, which storage reads.
    """
    out: list[Translated | Quarantined | Skipped] = []
    connector = cls(name, settings, None, replace(context, keep_html=False))
    for item in connector.translate_all(raws):
        if isinstance(item, Skipped):
            out.append(Skipped(RawItem(item.raw.external_id, b""), item.reason))
            continue
        digest, packed = pack(item.raw.data)
        raw = PackedRaw(
            item.raw.external_id, b"", item.raw.content_type, digest=digest, packed=packed
        )
        if isinstance(item, Translated):
            out.append(Translated(raw, _packed_interaction(item.interaction)))
        else:
            out.append(Quarantined(raw, item.reason))
    return out


def _packed_interaction(interaction: Interaction) -> PackedInteraction:
    """The interaction with its body text compressed here, its HTML body (storage keeps none)
    dropped and its attachments packed: none of it is sent back twice."""
    values = [getattr(interaction, name) for name in _INTERACTION_FIELDS]
    values[_BODY_TEXT] = values[_BODY_HTML] = ""
    values[_ATTACHMENTS] = [_packed(a) for a in interaction.attachments]
    return PackedInteraction(*values, packed_body=pack_text(interaction.body_text))


def _packed(attachment: Attachment) -> Attachment:
    """The attachment with its body hashed and compressed here, and not sent back twice."""
    if not attachment.content:
        return attachment
    digest, packed = pack(attachment.content)
    return PackedAttachment(
        attachment.filename, attachment.content_type, attachment.size, digest=digest, packed=packed
    )


@dataclass(frozen=True)
class Spool:
    """A batch's raw bytes in one file, for a worker to read in one go.

    Through the pool's pipe they went in 64 KB pieces, each written by a thread of the main
    process that must take the interpreter lock for it, while the main process is busy
    deciding and storing: the worker waited about 10 ms for every batch. (Answering the same
    way measured no faster.) The file lives in /dev/shm (memory) where there is one, readable
    by this user only, and goes as soon as the worker has read it.
    """

    path: str
    items: list[tuple[str, int, str, str]]  # external id, length, content type, private

    def raws(self) -> list[RawItem]:
        with open(self.path, "rb") as handle:
            data = handle.read()
        _remove(self.path)  # read: a crash from here on leaves no mail behind in memory
        raws, at = [], 0
        for external_id, length, content_type, private in self.items:
            raws.append(RawItem(external_id, data[at : at + length], content_type, private=private))
            at += length
        return raws


_SPOOL_DIR = "/dev/shm" if os.path.isdir("/dev/shm") else tempfile.gettempdir()
_SPOOL_PREFIX = "crmhub-batch-"


def _remove(path: str) -> None:
    with suppress(FileNotFoundError):
        os.unlink(path)


def remove_stale_spools() -> int:
    """Remove the batch files of crmhub processes that were killed before they could; returns
    how many. A file's name carries the pid of the process that made it."""
    removed = 0
    with suppress(OSError):
        for name in os.listdir(_SPOOL_DIR):
            pid = name.removeprefix(_SPOOL_PREFIX).split("-", 1)[0]
            if not name.startswith(_SPOOL_PREFIX) or not pid.isdigit() or _ours_alive(int(pid)):
                continue
            path = os.path.join(_SPOOL_DIR, name)
            if os.stat(path).st_uid == os.getuid():
                _remove(path)
                removed += 1
    return removed


def _ours_alive(pid: int) -> bool:
    """Whether a process of this user runs under `pid` (another user's: ours is gone)."""
    try:
        os.kill(pid, 0)
    except (ProcessLookupError, PermissionError):
        return False
    return True


Piped = list[tuple[str, bytes, str, str]]  # external id, data, content type, private


@contextmanager
def spooled(raws: list[RawItem]) -> Iterator[Spool | Piped]:
    """The batch as a Spool, or as tuples for the pipe where no file can be written."""
    piped = [(raw.external_id, raw.data, raw.content_type, raw.private) for raw in raws]
    try:
        fd, path = tempfile.mkstemp(prefix=f"{_SPOOL_PREFIX}{os.getpid()}-", dir=_SPOOL_DIR)
    except OSError:
        yield piped
        return
    batch: Spool | Piped
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(b"".join(raw.data for raw in raws))
        batch = Spool(path, [(eid, len(data), ctype, pri) for eid, data, ctype, pri in piped])
    except OSError:  # the memory file system is full
        batch = piped
    try:
        yield batch
    finally:  # the worker removes it once read; this is for when it never could
        _remove(path)


def translate_sent(
    cls: type[Connector],
    name: str,
    settings: dict[str, str],
    context: ConnectorContext,
    sent: Spool | Piped,
) -> list[tuple[Any, ...]]:
    """`translate_and_pack` as the worker process runs it: raws in, items out, as tuples.

    Slotted dataclasses pickle through Python code (`dataclasses` gives them a __getstate__
    and __setstate__ that call fields() for every object); tuples of str, bytes and datetime
    pickle in C. Measured on 4,000 bench mails: 0.11 s to send the items and 0.12 s to receive
    them as dataclasses, 0.07 s and 0.08 s as tuples, and the receiving side is the busy main
    process.
    """
    if isinstance(sent, Spool):
        raws = sent.raws()
    else:
        raws = [
            RawItem(external_id, data, content_type, private=private)
            for external_id, data, content_type, private in sent
        ]
    return [_as_tuple(item) for item in translate_and_pack(cls, name, settings, context, raws)]


def _as_tuple(item: Translated | Quarantined | Skipped) -> tuple[Any, ...]:
    """Skipped as (reason,), Quarantined as (digest, packed, reason), Translated as four.

    The digest and packed bytes are those of the `PackedRaw` that `translate_and_pack` made
    (empty for a raw that came unpacked: storage then packs it). An attachment goes as four
    values, or six when packed (content None, digest, packed).
    """
    raw = item.raw
    if isinstance(item, Skipped):
        return (item.reason,)
    digest, packed = (raw.digest, raw.packed) if isinstance(raw, PackedRaw) else ("", None)
    if isinstance(item, Quarantined):
        return (digest, packed, item.reason)
    it = item.interaction
    values = [getattr(it, name) for name in _INTERACTION_FIELDS]
    values[_CHANNEL] = it.channel.value
    values[_DIRECTION] = it.direction.value
    values[_PARTICIPANTS] = [
        (p.role.value, p.address, p.kind.value, p.name, p.ours) for p in it.participants
    ]
    values[_ATTACHMENTS] = [
        (a.filename, a.content_type, a.size, None, a.digest, a.packed)
        if isinstance(a, PackedAttachment)
        else (a.filename, a.content_type, a.size, a.content)
        for a in it.attachments
    ]
    packed_body = it.packed_body if isinstance(it, PackedInteraction) else None
    return (digest, packed, packed_body, values)


def _received_raw(digest: str, packed: bytes | None) -> RawItem:
    if packed is None:
        return RawItem("", b"", "")
    return PackedRaw("", b"", "", digest=digest, packed=packed)


def _received_attachment(sent: tuple[Any, ...]) -> Attachment:
    if len(sent) == 6:
        filename, content_type, size, _, digest, packed = sent
        return PackedAttachment(filename, content_type, size, digest=digest, packed=packed)
    return Attachment(*sent)


def received(items: list[tuple[Any, ...]]) -> list[Translated | Quarantined | Skipped]:
    """What `translate_sent` returned, as items again (without raw bytes: see `with_raws`)."""
    out: list[Translated | Quarantined | Skipped] = []
    for sent in items:
        if len(sent) == 1:
            out.append(Skipped(RawItem("", b""), sent[0]))
            continue
        if len(sent) == 3:
            digest, packed, reason = sent
            out.append(Quarantined(_received_raw(digest, packed), reason))
            continue
        digest, packed, packed_body, values = sent
        values[_CHANNEL] = Channel(values[_CHANNEL])
        values[_DIRECTION] = Direction(values[_DIRECTION])
        values[_PARTICIPANTS] = [
            Participant(Role(role), address, AddressKind(kind), name, ours)
            for role, address, kind, name, ours in values[_PARTICIPANTS]
        ]
        values[_ATTACHMENTS] = [_received_attachment(a) for a in values[_ATTACHMENTS]]
        interaction = PackedInteraction(*values, packed_body=packed_body)
        out.append(Translated(_received_raw(digest, packed), interaction))
    return out


def with_raws(
    items: list[Translated | Quarantined | Skipped], raws: list[RawItem]
) -> list[Translated | Quarantined | Skipped]:
    """Put the raw bytes back into what `translate_and_pack` returned (one item per raw):
    only the digest and the packed form of each raw come from there."""
    # Built directly: dataclasses.replace() costs ten times as much, twice per item.
    out: list[Translated | Quarantined | Skipped] = []
    for item, raw in zip(items, raws, strict=True):
        if isinstance(item, Skipped):
            out.append(Skipped(raw, item.reason))
            continue
        done = item.raw
        full = raw
        if isinstance(done, PackedRaw):
            full = PackedRaw(
                raw.external_id,
                raw.data,
                raw.content_type,
                owner=raw.owner,
                digest=done.digest,
                packed=done.packed,
            )
        if isinstance(item, Translated):
            out.append(Translated(full, item.interaction))
        else:
            out.append(Quarantined(full, item.reason))
    return out


def translation_pool() -> ProcessPoolExecutor:
    """Worker processes forked from a clean, single-threaded server process.

    Not fork: forking a process that runs an event loop and database threads can copy a held
    lock into the child. Not spawn: every spawned worker imports the whole program again
    (measured: about a second of CPU per worker, at the moment the first batch waits). The fork
    server imports the program's main module (kept tiny: hub/__main__.py) and this module once,
    and its children start with them loaded.
    """
    remove_stale_spools()
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(["__main__", __name__, "connectors.mail"])
    # A worker per core, the main process's core included: it waits for translations most of
    # the time. Measured on two cores, 10,000 mails: two workers beat one in six rounds out of
    # six, by 0.2-0.7 s, for 27 MiB more memory. Beyond four, the main process cannot keep up.
    workers = min(MAX_WORKERS, os.cpu_count() or 1)
    return ProcessPoolExecutor(
        workers, mp_context=context, initializer=_start_worker, initargs=(os.getpid(),)
    )


def _start_worker(main_pid: int) -> None:
    """Workers yield the CPU to the main process, which feeds them (fetching) and takes their
    work (matching, storing), and to everything else that is interactive (the web view).
    Measured on two cores: the sync was 2-3 % faster at niceness 5, 10 and 15 than at 0."""
    tune_gc()
    os.nice(WORKER_NICENESS)
    threading.Thread(
        target=_exit_with, args=(main_pid,), name="crmhub-lifeline", daemon=True
    ).start()


def _exit_with(main_pid: int) -> None:
    """End this worker once the process it works for is gone.

    A crmhub killed with SIGKILL (or by the OOM killer) left its workers and their fork server
    running for good: every forkserver child holds the write end of the fork server's own
    lifeline pipe and the pool's pipes, so none of them ever reads an end of file. Found by
    counting processes after the crash-safety test, which now fails without this.
    """
    while _ours_alive(main_pid):
        time.sleep(LIFELINE_SECONDS)
    os._exit(0)


def start_workers_early() -> None:
    """Start the workers now, in a thread, while the program is still loading.

    `crmhub sync` spends its first 0.7 s importing (SQLAlchemy, pydantic), on one core; the
    fork server's own imports then run on the other, and the first batch finds a worker
    waiting instead of blocking the event loop for the fork server's start (measured: 0.16 s).
    What the thread imports is imported here first: two threads importing the same modules
    can deadlock on the import locks.
    """
    global _early
    if not multicore():
        return  # batches are translated in a thread then (Hub.translate)
    import multiprocessing.forkserver  # see the docstring
    import multiprocessing.popen_forkserver  # noqa: F401

    def start() -> None:
        pool = translation_pool()
        _early_pool.append((pool, pool.submit(os.getpid)))

    _early = threading.Thread(target=start, name="crmhub-start-workers", daemon=True)
    _early.start()


def _take_early_pool() -> Started | None:
    global _early
    if _early is not None:
        _early.join()
        _early = None
    return _early_pool.pop() if _early_pool else None


def started_pool() -> Started:
    """The pool `start_workers_early` started, or a new one."""
    if (early := _take_early_pool()) is not None:
        return early
    pool = translation_pool()
    return pool, pool.submit(os.getpid)


def stop_early_workers() -> None:
    """Shut down an early pool that no batch needed (a no-change sync)."""
    if (early := _take_early_pool()) is not None:
        early[0].shutdown(wait=False, cancel_futures=True)
