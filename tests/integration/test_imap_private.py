"""`private_marker` and `Sensitivity` on a real Dovecot: private mail is counted as skipped,
the cursor moves past it, and not one byte of it reaches the database.

A message with a named keyword, or in a named folder, must not even be downloaded: every FETCH
the connector sends goes through our own ImapSession, which these tests watch.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from sqlalchemy import select

from connectors.imap_client import FetchedMessage, ImapSession
from hub.admin import add_connector
from hub.bootstrap import Hub
from hub.pipeline import sync_all
from storage.tables import ConnectorRow
from tests.integration.dovecot import Dovecot, MailUser
from tests.stored import stored_bytes

PASSWORD = "imap-private-password"
Fetches = list[tuple[str, list[int]]]


def mail(n: int, body: str, extra: str = "") -> bytes:
    return (
        f"From: Kunde <kunde@firma.example>\r\nTo: anna@ourco.example\r\nSubject: Anfrage\r\n"
        f"Message-ID: <priv-{n}@firma.example>\r\nDate: Mon, 8 Jan 2024 09:{n:02d}:00 +0100\r\n"
        f"{extra}\r\n{body}\r\n"
    ).encode()


@pytest.fixture
def mailbox(dovecot_factory: Callable[..., Dovecot]) -> tuple[Dovecot, MailUser]:
    server = dovecot_factory()
    return server, server.add_user("anna@ourco.example", PASSWORD)


@pytest.fixture
def fetches(monkeypatch: pytest.MonkeyPatch) -> Fetches:
    """(items asked for, UIDs) of every UID FETCH the connector sends."""
    sent: Fetches = []
    original = ImapSession.fetch

    async def watched(self: ImapSession, uids: list[int], parts: str) -> list[FetchedMessage]:
        sent.append((parts, list(uids)))
        return await original(self, uids, parts)

    monkeypatch.setattr(ImapSession, "fetch", watched)
    return sent


async def _add(hub: Hub, server: Dovecot, user: MailUser, **more: str) -> None:
    settings = {
        "host": server.host,
        "port": str(server.imaps_port),
        "username": user.name,
        "ca_file": str(server.cert_path),
        **more,
    }
    await add_connector(hub, "imap", "anna", settings, {"password": PASSWORD})


def downloaded(fetches: Fetches) -> list[int]:
    return sorted(uid for parts, uids in fetches if "BODY" in parts for uid in uids)


async def test_keyword_folder_and_sensitivity_are_skipped_and_never_stored(
    hub: Hub, mailbox: tuple[Dovecot, MailUser], fetches: Fetches
) -> None:
    server, user = mailbox
    server.append(user, "INBOX", mail(1, "zz-public-one"))
    keyword_uid = server.append(user, "INBOX", mail(2, "zz-keyword-secret"), flags=("$Private",))
    server.append(user, "INBOX", mail(3, "zz-header-secret", "Sensitivity: Personal\r\n"))
    server.append(user, "INBOX", mail(4, "zz-public-four"), flags=("$Kunde", "\\Seen"))
    server.message_count(user, "Privat/Arzt", create=True)
    server.append(user, "Privat/Arzt", mail(5, "zz-folder-secret"))
    await _add(hub, server, user, folders="INBOX,Privat/Arzt", private_marker="$private, privat")

    report = (await sync_all(hub))[0]
    assert (report.error, report.fetched, report.new, report.quarantined, report.skipped) == (
        "",
        5,
        2,
        0,
        3,
    )
    assert keyword_uid == 2 and downloaded(fetches) == [1, 3, 4], (
        "neither the keyword's message nor the folder's was downloaded"
    )
    assert all("FLAGS" in parts for parts, _ in fetches if "BODY" not in parts)
    stored = stored_bytes(hub.settings.database_url)
    assert b"zz-public-one" in stored and b"<priv-4@firma.example>" in stored
    for n, secret in (
        (2, b"zz-keyword-secret"),
        (3, b"zz-header-secret"),
        (5, b"zz-folder-secret"),
    ):
        assert secret not in stored and f"<priv-{n}@firma.example>".encode() not in stored

    async with hub.sessions() as session:
        cursor = (await session.execute(select(ConnectorRow.cursor))).scalar_one()
    assert {wire: mark["uid"] for wire, mark in cursor["folders"].items()} == {
        "INBOX": 4,
        "Privat/Arzt": 1,
    }
    fetches.clear()
    again = (await sync_all(hub))[0]
    assert (again.error, again.fetched, again.skipped, fetches) == ("", 0, 0, [])

    later = server.append(user, "INBOX", mail(6, "zz-later-secret"), flags=("$PRIVATE",))
    server.append(user, "Privat/Arzt", mail(7, "zz-later-folder-secret"))
    third = (await sync_all(hub))[0]
    assert (third.error, third.fetched, third.new, third.skipped) == ("", 2, 0, 2)
    assert later not in downloaded(fetches)
    stored = stored_bytes(hub.settings.database_url)
    assert b"zz-later-secret" not in stored and b"zz-later-folder-secret" not in stored


async def test_without_private_marker_keywords_mean_nothing_and_flags_are_not_asked(
    hub: Hub, mailbox: tuple[Dovecot, MailUser], fetches: Fetches
) -> None:
    server, user = mailbox
    server.append(user, "INBOX", mail(1, "zz-flagged"), flags=("$Private",))
    await _add(hub, server, user, folders="INBOX")
    report = (await sync_all(hub))[0]
    assert (report.error, report.new, report.skipped) == ("", 1, 0)
    assert [parts for parts, _ in fetches] == ["(UID RFC822.SIZE)", "(UID RFC822.SIZE BODY.PEEK[])"]


async def test_check_marks_the_folders_that_are_never_stored(
    hub: Hub, mailbox: tuple[Dovecot, MailUser]
) -> None:
    from connectors.imap import ImapConnector

    server, user = mailbox
    server.message_count(user, "Privat", create=True)
    settings: dict[str, Any] = {
        "host": server.host,
        "port": str(server.imaps_port),
        "username": user.name,
        "ca_file": str(server.cert_path),
        "private_marker": "Privat",
    }
    lines = await ImapConnector("anna", settings, {"password": PASSWORD}).check()
    private = [line for line in lines if "never stored" in line]
    assert [line.split(":")[0].strip() for line in private] == ["Privat"]
