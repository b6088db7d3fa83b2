"""A big mailbox syncs in memory that does not grow with it (issue 17, "Big mailboxes").

RSS is no test: it moves with the allocator and the machine. What grew with the mailbox were
two structures of the syncing process, and these tests count them on a mailbox and on one twice
its size, against a real Dovecot (bench/imap_vs_mbsync.py --memory-only has the MiB figures):

- SQL statements' cyclic garbage, each piece holding a batch's keys (hub.pipeline
  COLLECT_EVERY): bounded by the batches between two collections, not by the mailbox;
- the folder's UIDs, held for the whole folder: packed, never the server's answer as a list of
  ints (connectors.imap).
"""

from __future__ import annotations

import gc
import weakref
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from sqlalchemy.sql.elements import BindParameter

import connectors.imap
from connectors.base import ConnectorContext
from connectors.imap import ImapConnector
from connectors.imap_client import ImapSession
from hub.admin import add_connector
from hub.bootstrap import Hub
from hub.pipeline import COLLECT_EVERY, sync_all
from tests.integration.conftest import MailUserFactory
from tests.integration.dovecot import Dovecot, MailUser

PASSWORD = "memory-test-password"
BATCH = 20  # UIDs per batch here (250 in production): many batches from a small mailbox
SMALL = 10 * BATCH  # 11 batches with the short first one: more than twice COLLECT_EVERY
TWICE = 2 * SMALL


def mail(owner: str, n: int) -> bytes:
    parent = f"In-Reply-To: <{owner}-{n - 1}@firma.example>\r\n" if n % 3 else ""
    return (
        f"From: kunde{n % 40}@firma{n % 7}.example\r\nTo: {owner}@ourco.example\r\n"
        f"Subject: Anfrage {n}\r\nMessage-ID: <{owner}-{n}@firma.example>\r\n{parent}"
        f"Date: Mon, 8 Jan 2024 09:{n % 60:02d}:00 +0100\r\n\r\nText {n}\r\n"
    ).encode()


def settings_for(server: Dovecot, user: MailUser) -> dict[str, str]:
    return server.connector_settings(user, folders="INBOX")


@contextmanager
def collector_off() -> Iterator[None]:
    """No automatic collection during the sync, as good as none in crmhub's processes: at
    hub.runtime's thresholds the collector ran once in some 35,000 to 70,000 mails of a sync.
    Explicit collections (the pipeline's) still run."""
    gc.collect()
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


def bound_parameters() -> int:
    return sum(isinstance(o, BindParameter) for o in gc.get_objects())


@pytest.fixture
def small_batches(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(connectors.imap, "FIRST_BATCH_UIDS", BATCH // 2)
    monkeypatch.setattr(connectors.imap, "MAX_BATCH_UIDS", BATCH)


@pytest.mark.usefixtures("small_batches")
async def test_statement_garbage_stays_bounded_on_a_mailbox_twice_the_size(
    hub: Hub, dovecot: Dovecot, mail_user: MailUserFactory
) -> None:
    peaks: dict[str, int] = {}
    # The first sync also compiles the statements the engine then keeps: not garbage.
    for name, count in (("warm", 3 * BATCH), ("small", SMALL), ("twice", TWICE)):
        user = mail_user(f"{name}@ourco.example", PASSWORD)
        dovecot.fill_maildir(user, "INBOX", (mail(name, n) for n in range(count)))
        await add_connector(hub, "imap", name, settings_for(dovecot, user), {"password": PASSWORD})
        seen: list[int] = []
        with collector_off():
            before = bound_parameters()  # the statements the engine keeps compiled

            def progress(_: str, __: int, seen: list[int] = seen, before: int = before) -> None:
                seen.append(bound_parameters() - before)

            [report] = await sync_all(hub, [name], progress)
        assert (report.error, report.new) == ("", count)
        peaks[name] = max(seen)
        assert name == "warm" or len(seen) > 2 * COLLECT_EVERY, "too few batches for a bound"
    # Left to the thresholds, every batch's statements stayed: twice the mailbox, twice the
    # garbage (measured here: 2.0x). Collected every COLLECT_EVERY batches, the same peak.
    assert peaks["twice"] <= peaks["small"] * 1.25, peaks


@pytest.mark.usefixtures("small_batches")
async def test_the_folder_uids_are_not_kept_as_the_servers_list(
    dovecot: Dovecot, mail_user: MailUserFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    user = mail_user("uids@ourco.example", PASSWORD)
    dovecot.fill_maildir(user, "INBOX", (mail("uids", n) for n in range(SMALL)))
    answers: list[weakref.ref[list[int]]] = []
    original = ImapSession.uids_after

    class Uids(list[int]):
        """A list that can be watched (a plain list takes no weak reference)."""

    async def watched(session: ImapSession, uid: int) -> list[int]:
        answer = Uids(await original(session, uid))
        answers.append(weakref.ref(answer))
        return answer

    monkeypatch.setattr(ImapSession, "uids_after", watched)
    connector = ImapConnector(
        "uids", settings_for(dovecot, user), {"password": PASSWORD}, ConnectorContext()
    )
    uids: list[int] = []
    async for raws, _ in connector.raw_batches({}):
        assert answers, "the folder's UIDs were not asked for"
        gc.collect()
        assert answers[0]() is None, "the server's answer is held while the folder syncs"
        assert len(raws) <= BATCH
        uids += [int(raw.external_id.rsplit("/", 1)[1]) for raw in raws]
    assert uids == list(range(1, SMALL + 1))
