"""The real-world .ics files the installed `icalendar` package ships with its own tests (calendar
clients' exports, RFC examples, bug reports, fuzzing finds) through the `ics` source and the
shared calendar translator.

Each file is imported (every occurrence translated, quarantined with a reason, or skipped as
private) or refused whole with a one-line reason naming it; none raises anything else. The
files are found in the installed package, so a missing corpus fails instead of passing empty.
"""

from __future__ import annotations

import asyncio
import warnings
from pathlib import Path

import icalendar
import pytest

from connectors.base import ConnectorContext, ConnectorError
from connectors.ics import IcsConnector
from hub.model import Channel, Quarantined, RawItem, Skipped, Translated

CORPUS = Path(icalendar.__file__).parent / "tests"
FILES = sorted(CORPUS.rglob("*.ics"))
MINIMUM = 20  # icalendar 7 ships 163; fewer means the corpus moved and this test lost it
CONTEXT = ConnectorContext(timezone="Europe/Berlin", calendar_window_days=365)


def test_the_corpus_is_found_in_the_installed_package() -> None:
    assert len(FILES) >= MINIMUM, f"only {len(FILES)} .ics files under {CORPUS}"


async def _fetch(connector: IcsConnector) -> list[RawItem]:
    raws: list[RawItem] = []
    async for batch, _ in connector.raw_batches({}):
        raws.extend(batch)
    return raws


@pytest.mark.parametrize("path", FILES, ids=[str(p.relative_to(CORPUS)) for p in FILES])
def test_each_file_is_imported_or_quarantined_with_a_reason(path: Path) -> None:
    connector = IcsConnector("corpus", {"path": str(path)}, context=CONTEXT)
    try:
        # icalendar warns where it guesses (a vendor-prefixed TZID read as the zone it names):
        # a warning in production, not the error the suite's filterwarnings makes of it.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            raws = asyncio.run(_fetch(connector))
            results = connector.translate_all(raws)
    except ConnectorError as refused:
        message = str(refused)
        assert message.startswith("corpus: ") and path.name in message, message
        assert "\n" not in message.strip() and "Traceback" not in message
        return
    for result in results:
        if isinstance(result, Translated):
            meeting = result.interaction
            assert meeting.channel == Channel.MEETING
            assert meeting.occurred_at.tzinfo is not None, "times are aware"
            assert meeting.dedupe_key.startswith("ics:")
        elif isinstance(result, Quarantined):
            assert result.reason.strip(), f"{result.raw.external_id}: quarantined without reason"
        else:
            assert isinstance(result, Skipped) and result.reason.strip()
