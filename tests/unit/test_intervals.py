"""When a connector is synced: each kind's own interval (IMAP 5 minutes beside IDLE, Graph and
CalDAV 2 minutes, the rest 5), `sync_interval` for all when set, and due once the interval
has passed since the last run started, never while one runs (hub.jobs)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import ClassVar

import pytest

from config.settings import Settings
from connectors.base import ConfigurationError, Connector
from connectors.registry import connector_class
from hub.connector_runs import STALE
from hub.jobs import PASS_SECONDS, Scheduler, interval_of, is_due, kind_of
from hub.pipeline import SyncReport
from storage.tables import ConnectorRow

NOW = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


def _settings(**values: int) -> Settings:
    return Settings(database_url="sqlite:///unused.db", **values)


def _row(kind: str = "mbox", *, started: float | None = None, **more: object) -> ConnectorRow:
    """A connector whose last run started `started` seconds before NOW (None: never ran) and
    ended a second later, unless `more` says otherwise."""
    at = None if started is None else NOW - timedelta(seconds=started)
    values: dict[str, object] = {
        "run_started_at": at,
        "run_beat_at": at and at + timedelta(seconds=1),
        "run_ended_at": at and at + timedelta(seconds=1),
        **more,
    }
    values.setdefault("settings", {})
    return ConnectorRow(name=f"{kind}-1", kind=kind, enabled=True, **values)


@pytest.mark.parametrize(
    ("kind", "seconds", "watches"),
    [
        ("imap", 300, True),
        ("m365", 120, False),
        ("caldav", 120, False),
        ("exchange", 300, False),
        ("mbox", 300, False),
        ("asterisk-cdr", 300, False),
    ],
)
def test_each_kind_has_its_interval(kind: str, seconds: float, watches: bool) -> None:
    cls = connector_class(kind)
    assert (interval_of(cls, _settings()), cls.watches) == (seconds, watches)


def test_sync_interval_overrides_every_kind_and_an_unknown_kind_gets_the_default() -> None:
    for kind in ("imap", "m365", "mbox"):
        assert interval_of(connector_class(kind), _settings(sync_interval=45)) == 45
    assert kind_of(_row("no.such.Kind")) is None
    assert interval_of(None, _settings()) == Connector.interval == 300


def test_a_third_party_connector_declares_its_own_interval() -> None:
    class Hourly(Connector):
        kind = "hourly"
        interval: ClassVar[float] = 3600.0

    assert interval_of(Hourly, _settings()) == 3600
    assert interval_of(Hourly, _settings(sync_interval=60)) == 60


def test_a_connector_is_due_once_its_interval_passed_since_its_last_run_started() -> None:
    settings = _settings()
    assert is_due(_row(started=None), settings, NOW), "never synced"
    assert not is_due(_row("m365", started=119), settings, NOW)
    assert is_due(_row("m365", started=120), settings, NOW)
    assert not is_due(_row("mbox", started=299), settings, NOW)
    assert is_due(_row("mbox", started=300), settings, NOW)
    assert is_due(_row("mbox", started=60), _settings(sync_interval=30), NOW)


def test_a_running_connector_is_not_due_but_one_whose_run_died_is() -> None:
    settings = _settings()
    beating = _row(started=3600, run_ended_at=None, run_beat_at=NOW - timedelta(seconds=2))
    assert not is_due(beating, settings, NOW), "its run is going on"
    dead = _row(started=3600, run_ended_at=None, run_beat_at=NOW - STALE - timedelta(seconds=1))
    assert is_due(dead, settings, NOW), "its process died long ago"


class RecordingScheduler(Scheduler):
    """The in-process scheduler with its syncs recorded instead of run."""

    def __init__(self, settings: Settings) -> None:
        super().__init__(SimpleNamespace(settings=settings))  # type: ignore[arg-type]
        self.synced: list[str] = []

    async def sync(self, name: str) -> SyncReport | None:
        self.synced.append(name)
        return None


async def test_the_in_process_scheduler_syncs_only_the_connectors_that_are_due() -> None:
    now = datetime.now(UTC)
    rows = [_row("m365", started=None), _row("mbox", started=None)]
    rows[0].name, rows[1].name = "graph", "files"
    scheduler = RecordingScheduler(_settings())
    await scheduler._sync_due(rows)
    assert scheduler.synced == ["graph", "files"], "both never ran"
    rows[0].run_started_at = rows[1].run_started_at = now - timedelta(seconds=150)
    rows[0].run_ended_at = rows[1].run_ended_at = now - timedelta(seconds=149)
    await scheduler._sync_due(rows)
    assert scheduler.synced == ["graph", "files", "graph"], "only Graph's 2 minutes passed"


def test_a_pass_looks_for_due_connectors_every_30_s_or_every_sync_interval_if_shorter() -> None:
    assert RecordingScheduler(_settings()).pass_seconds() == PASS_SECONDS == 30
    assert RecordingScheduler(_settings(sync_interval=300)).pass_seconds() == 30
    assert RecordingScheduler(_settings(sync_interval=1)).pass_seconds() == 1


def test_a_connectors_own_interval_wins_over_sync_interval_and_its_kinds() -> None:
    """DESIGN.md: every kind takes `interval`; a mailbox IT wants every minute gets that."""
    mbox = connector_class("mbox")
    assert interval_of(mbox, _settings(), {"interval": "60"}) == 60
    assert interval_of(mbox, _settings(sync_interval=45), {"interval": "600"}) == 600
    row = _row("mbox", started=90, settings={"interval": "60"})
    assert is_due(row, _settings(), NOW), "60 s of its own, not the kind's 300"
    assert not is_due(_row("mbox", started=90), _settings(), NOW)


@pytest.mark.parametrize("bad", ["0", "5", "-60", "1.5", "soon", ""])
def test_an_interval_that_is_not_whole_seconds_of_at_least_ten_is_refused(bad: str) -> None:
    mbox = connector_class("mbox")
    with pytest.raises(ConfigurationError, match="interval"):
        mbox.validate_settings({"path": "/tmp/x.mbox", "interval": bad})
    mbox.validate_settings({"path": "/tmp/x.mbox", "interval": "30"})
