"""Every connector kind that fetches keeps the contract of connectors/base.py, through the
production sync path (`hub.pipeline.sync_connector`: raw_batches, translation, matching,
ingest). A new kind adds its driver (tests/connector_contract.py) to `DRIVERS`, one line.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from typing import Any

import pytest
from sqlalchemy import func, select, update

from connectors.registry import KINDS, connector_class
from hub.admin import add_connector
from hub.bootstrap import Hub
from hub.pipeline import SyncReport, sync_connector
from storage.tables import ConnectorRow, QuarantineRow, SourceRow
from tests.connector_contract import ContractSource, Driver
from tests.ews_fake import ews_source
from tests.file_sources import CdrSource, EmlSource, IcsSource, MaildirSource, MboxSource
from tests.graph_fake import graph_source
from tests.integration.contract_drivers import dovecot_source, file_driver
from tests.radicale import radicale_source
from tests.twilio_fake import twilio_source

DRIVERS: dict[str, Driver] = {
    "mbox": file_driver(MboxSource),
    "maildir": file_driver(MaildirSource),
    "eml": file_driver(EmlSource),
    "ics": file_driver(IcsSource),
    "asterisk-cdr": file_driver(CdrSource),
    "imap": dovecot_source,
    "exchange": ews_source,
    "m365": graph_source,
    "twilio": twilio_source,
    "caldav": radicale_source,
}
# A calendar file is exported whole: when it changed, every event in it is fetched again and
# recognised as a duplicate; every other kind fetches only what came after its cursor.
REREADS_WHOLE = {"ics"}
FETCH_NOTHING = {"smtp": "sends mail only: its fetch yields nothing"}
NAME = "contract"


@pytest.fixture(params=sorted(DRIVERS))
async def source(request: pytest.FixtureRequest, tmp_path: Any) -> AsyncIterator[ContractSource]:
    async with DRIVERS[request.param](tmp_path) as contract_source:
        assert contract_source.kind == request.param
        yield contract_source


def test_every_kind_has_a_driver() -> None:
    # Push kinds (`pushes`: webhooks, live listeners) have no cursor for these cases to drive;
    # their own tests cover them (test_pbx_webhook.py, test_asterisk_ami.py).
    pushed = {kind for kind in KINDS if getattr(connector_class(kind), "pushes", False)}
    assert set(KINDS) - DRIVERS.keys() - FETCH_NOTHING.keys() - pushed == set(), "add drivers"


async def _add(hub: Hub, source: ContractSource) -> None:
    await add_connector(hub, source.kind, NAME, dict(source.settings), dict(source.secrets))


async def _sync(hub: Hub) -> SyncReport:
    return await sync_connector(hub, NAME, await hub.identity_index())


async def _stored(hub: Hub) -> tuple[int, int]:
    """(interactions, sources) this connector stored."""
    async with hub.sessions() as session:
        row = (
            await session.execute(
                select(func.count(func.distinct(SourceRow.interaction_id)), func.count()).where(
                    SourceRow.connector == NAME
                )
            )
        ).one()
    return int(row[0]), int(row[1])


async def _cursor(hub: Hub) -> dict[str, Any]:
    async with hub.sessions() as session:
        row = await session.execute(select(ConnectorRow.cursor).where(ConnectorRow.name == NAME))
        return dict(row.scalar_one() or {})


async def _set_cursor(hub: Hub, cursor: dict[str, Any]) -> None:
    async with hub.sessions() as session, session.begin():
        await session.execute(
            update(ConnectorRow).where(ConnectorRow.name == NAME).values(cursor=cursor)
        )


async def test_a_second_sync_fetches_only_what_was_added(hub: Hub, source: ContractSource) -> None:
    await source.add_items(2)
    await _add(hub, source)
    first = await _sync(hub)
    assert (first.error, first.fetched, first.new, first.quarantined) == ("", 2, 2, 0)
    unchanged = await _sync(hub)
    assert (unchanged.error, unchanged.fetched, unchanged.new) == ("", 0, 0)
    await source.add_items(3)
    grown = await _sync(hub)
    assert (grown.error, grown.new, grown.quarantined) == ("", 3, 0)
    expected = (5, 2) if source.kind in REREADS_WHOLE else (3, 0)
    assert (grown.fetched, grown.duplicates) == expected
    assert await _stored(hub) == (5, 5)


async def test_a_sync_from_an_older_cursor_doubles_nothing_and_loses_nothing(
    hub: Hub, source: ContractSource
) -> None:
    await source.add_items(2)
    await _add(hub, source)
    assert (await _sync(hub)).new == 2
    older = await _cursor(hub)
    await source.add_items(2)
    assert (await _sync(hub)).new == 2
    await _set_cursor(hub, older)
    await source.add_items(1)
    again = await _sync(hub)
    assert (again.error, again.new) == ("", 1)
    assert again.fetched == (5 if source.kind in REREADS_WHOLE else 3)
    assert again.duplicates == again.fetched - 1
    assert await _stored(hub) == (5, 5)
    await _set_cursor(hub, {})
    scratch = await _sync(hub)
    assert (scratch.error, scratch.fetched, scratch.new, scratch.duplicates) == ("", 5, 0, 5)
    assert await _stored(hub) == (5, 5)


async def test_a_malformed_item_is_quarantined_with_its_reason_and_the_sync_goes_on(
    hub: Hub, source: ContractSource
) -> None:
    await source.add_items(1)
    await source.add_malformed()
    await source.add_items(1)
    await _add(hub, source)
    report = await _sync(hub)
    assert (report.error, report.errors, report.new, report.quarantined) == ("", 0, 2, 1)
    async with hub.sessions() as session:
        (held,) = (
            (await session.execute(select(QuarantineRow).where(QuarantineRow.connector == NAME)))
            .scalars()
            .all()
        )
    assert held.reason.strip(), "a quarantined item says why"
    assert held.raw_blob_id is not None, "its raw bytes are kept for a second look"
    await _set_cursor(hub, {})
    again = await _sync(hub)
    assert (again.error, again.new, again.quarantined) == ("", 0, 0)
    async with hub.sessions() as session:
        count = select(func.count()).select_from(QuarantineRow)
        assert (await session.execute(count)).scalar_one() == 1, "quarantined once"
    assert await _stored(hub) == (2, 2)


async def test_a_source_error_is_reported_readably_with_the_connector_name(
    hub: Hub, source: ContractSource, caplog: pytest.LogCaptureFixture
) -> None:
    await source.add_items(1)
    await _add(hub, source)
    assert (await _sync(hub)).error == ""
    await source.break_source()
    with caplog.at_level(logging.DEBUG):
        failed = await _sync(hub)
    assert failed.errors == 1
    assert NAME in failed.error, failed.error
    assert "Traceback" not in failed.error and 'File "' not in failed.error
    assert not [r for r in caplog.records if r.exc_info], "a source error is no traceback"
    async with hub.sessions() as session:
        row = (
            await session.execute(select(ConnectorRow).where(ConnectorRow.name == NAME))
        ).scalar_one()
    assert (row.status, row.last_error) == ("failed", failed.error)
    assert await _stored(hub) == (1, 1)
