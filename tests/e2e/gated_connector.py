"""A third-party connector kind for the connector administration tests, loaded by the server
from its dotted path (tests.e2e.gated_connector:GatedMboxConnector): an mbox read one mail per
batch that, after the first batch, waits until the file `<path>.go` exists. A test can so watch
a sync while it runs, for as long as it likes, and then let it finish."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

from connectors.mbox import MboxConnector
from hub.model import RawItem

KIND = "tests.e2e.gated_connector:GatedMboxConnector"
WAIT_AT_MOST = 60.0  # seconds: a test that never opens the gate must not hang the server


def gate(path: Path) -> Path:
    return path.with_name(path.name + ".go")


class GatedMboxConnector(MboxConnector):
    kind = KIND
    batch_size: ClassVar[int] = 1

    def _read(self, cursor: dict[str, Any]) -> Iterator[tuple[list[RawItem], dict[str, Any]]]:
        opened = gate(Path(self.settings["path"]))
        deadline = time.monotonic() + WAIT_AT_MOST
        for n, step in enumerate(super()._read(cursor)):
            if n == 1:
                while not opened.exists() and time.monotonic() < deadline:
                    time.sleep(0.05)
            yield step
