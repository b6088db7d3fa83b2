"""What the Connector base class does for every kind, so that no connector writes it again:
retry from the last cursor with back-off, a stall counted as a transient failure, and every
source error turned into a ConnectorError that names the connector."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from email.message import EmailMessage
from typing import Any, ClassVar

import pytest

from connectors import base
from connectors.base import (
    Connector,
    ConnectorError,
    MailSender,
    SendResult,
    TransientError,
    backoff,
)
from hub.model import Interaction, RawItem


class Flaky(Connector):
    """Three batches of one item each; before batch n it raises what `failures[n]` holds."""

    kind = "flaky"
    options: ClassVar[dict[str, str]] = {"retries": "", "timeout": ""}

    def __init__(self, failures: dict[int, list[BaseException]], **settings: str) -> None:
        super().__init__("flaky", settings)
        self.failures = failures
        self.starts: list[dict[str, Any]] = []

    async def _fetch(
        self, cursor: dict[str, Any]
    ) -> AsyncIterator[tuple[list[RawItem], dict[str, Any]]]:
        self.starts.append(cursor)
        for n in range(int(cursor.get("n", 0)), 3):
            if self.failures.get(n):
                raise self.failures[n].pop(0)
            yield [RawItem(str(n), b"")], {"n": n + 1}

    def translate(self, raw: RawItem) -> Interaction:
        raise NotImplementedError


async def _drain(connector: Connector) -> list[str]:
    return [raw.external_id async for raws, _ in connector.raw_batches({}) for raw in raws]


@pytest.fixture
def slept(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """The delays the base class waited, without waiting them."""
    delays: list[float] = []

    async def sleep(seconds: float) -> None:
        delays.append(seconds)

    monkeypatch.setattr(base.asyncio, "sleep", sleep)
    return delays


async def test_a_transient_failure_resumes_from_the_last_cursor(slept: list[float]) -> None:
    connector = Flaky({1: [TransientError("connection reset")]})
    assert await _drain(connector) == ["0", "1", "2"]
    assert connector.starts == [{}, {"n": 1}]
    assert len(slept) == 1 and 0 < slept[0] <= 0.4


async def test_the_delay_a_source_asks_for_is_waited(slept: list[float]) -> None:
    connector = Flaky({1: [TransientError("ErrorServerBusy", retry_after=7.5)]})
    await _drain(connector)
    assert slept == [7.5]


async def test_retries_give_up_with_a_readable_error(slept: list[float]) -> None:
    failures: list[BaseException] = [TransientError("server busy") for _ in range(10)]
    connector = Flaky({1: failures}, retries="2")
    with pytest.raises(ConnectorError) as failed:
        await _drain(connector)
    assert str(failed.value) == "flaky: server busy; gave up after 2 retries"
    assert len(slept) == 2


async def test_progress_resets_the_retry_count(slept: list[float]) -> None:
    """Two failures at different places are two first attempts, not a second one."""
    connector = Flaky({1: [TransientError("a")], 2: [TransientError("b")]}, retries="1")
    assert await _drain(connector) == ["0", "1", "2"]
    assert connector.starts == [{}, {"n": 1}, {"n": 2}]


async def test_a_stalled_batch_counts_as_transient(slept: list[float]) -> None:
    class Stalls(Flaky):
        async def _fetch(
            self, cursor: dict[str, Any]
        ) -> AsyncIterator[tuple[list[RawItem], dict[str, Any]]]:
            self.starts.append(cursor)
            if len(self.starts) == 1:
                await asyncio.Event().wait()  # hangs: only the stall timeout ends it
            yield [RawItem("0", b"")], {"n": 1}

    connector = Stalls({}, timeout="0.005")  # ten times that is the stall limit
    assert await _drain(connector) == ["0"]
    assert len(connector.starts) == 2 and len(slept) == 1


@pytest.mark.parametrize(
    ("error", "message"),
    [
        (
            FileNotFoundError(2, "No such file or directory", "/x.mbox"),
            "flaky: No such file or directory (/x.mbox)",
        ),
        (KeyError("uid"), "flaky: KeyError: 'uid'"),
        (ConnectorError("flaky: as the connector put it"), "flaky: as the connector put it"),
    ],
)
async def test_any_source_error_becomes_a_connector_error(
    error: Exception, message: str, slept: list[float]
) -> None:
    with pytest.raises(ConnectorError) as failed:
        await _drain(Flaky({1: [error]}))
    assert str(failed.value) == message
    assert slept == []  # only TransientError is retried


async def test_check_and_send_wrap_what_the_source_raises() -> None:
    class Broken(MailSender):
        kind = "broken"

        async def _check(self) -> list[str]:
            raise OSError("connection refused")

        async def _send(self, message: EmailMessage) -> SendResult:
            raise ValueError("bad header")

    broken = Broken("out", {})
    with pytest.raises(ConnectorError, match=r"^out: connection refused$"):
        await broken.check()
    with pytest.raises(ConnectorError, match=r"^out: ValueError: bad header$"):
        await broken.send(EmailMessage())


def test_backoff_doubles_with_jitter_and_caps() -> None:
    for attempt in range(1, 12):
        delay = backoff(attempt)
        ceiling = min(base.MAX_BACKOFF, 0.2 * 2**attempt)
        assert ceiling / 2 <= delay <= ceiling
    assert backoff(3, retry_after=10_000) == base.MAX_RETRY_AFTER
