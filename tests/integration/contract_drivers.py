"""Contract drivers (tests/connector_contract.py) for the file kinds and for imap."""

from __future__ import annotations

import asyncio
import itertools
import shutil
from collections.abc import AsyncIterator
from contextlib import ExitStack, asynccontextmanager
from pathlib import Path

from tests.connector_contract import ContractSource, Driver
from tests.file_sources import FileSource
from tests.integration.dovecot import start_dovecot

PASSWORD = "contract-imap-password"
MALFORMED_MAIL = b"garbage without headers\r\n"


def file_driver(source_type: type[FileSource]) -> Driver:
    """A driver over one of tests/file_sources.py's sources; breaking it removes the file or
    folder, as a user who moved the export away would."""

    @asynccontextmanager
    async def driver(root: Path) -> AsyncIterator[ContractSource]:
        source = source_type(root)
        numbers = itertools.count()

        async def add_items(n: int) -> None:
            for _ in range(n):
                source.add(next(numbers))

        async def add_malformed() -> None:
            source.add_malformed()

        async def break_source() -> None:
            if source.path.is_dir():
                shutil.rmtree(source.path)
            else:
                source.path.unlink()

        yield ContractSource(
            source.kind, {"path": str(source.path)}, {}, add_items, add_malformed, break_source
        )

    return driver


def _mail(n: int) -> bytes:
    return (
        f"From: Kunde {n} <kunde{n}@firma.example>\r\nTo: anna@ourco.example\r\n"
        f"Subject: Vertrag {n}\r\nMessage-ID: <contract{n}@firma.example>\r\n"
        f"Date: Mon, 8 Jan 2024 10:{n % 60:02d}:00 +0100\r\n\r\nText {n}\r\n"
    ).encode()


@asynccontextmanager
async def dovecot_source(root: Path) -> AsyncIterator[ContractSource]:
    """A mailbox on a Dovecot of its own (tests/integration/dovecot.py): a driver is given a
    directory only, so it cannot take the session's server from a fixture; starting one takes
    a fraction of a second. Breaking it changes the password: the login is refused."""
    with ExitStack() as stack:
        server = await asyncio.to_thread(stack.enter_context, start_dovecot())
        user = await asyncio.to_thread(server.add_user, "anna@ourco.example", PASSWORD)
        numbers = itertools.count()

        async def add_items(n: int) -> None:
            for _ in range(n):
                await asyncio.to_thread(server.append, user, "INBOX", _mail(next(numbers)))

        async def add_malformed() -> None:
            await asyncio.to_thread(server.append, user, "INBOX", MALFORMED_MAIL)

        async def break_source() -> None:
            await asyncio.to_thread(server.add_user, user.name, PASSWORD + "-changed")

        settings = {
            "host": server.host,
            "port": str(server.imaps_port),
            "username": user.name,
            "ca_file": str(server.cert_path),
            "folders": "INBOX",
        }
        yield ContractSource(
            "imap", settings, {"password": PASSWORD}, add_items, add_malformed, break_source
        )
