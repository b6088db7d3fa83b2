"""iCalendar files: each event occurrence is one meeting; recurring events expanded in a window."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, ClassVar

import icalendar

from connectors.base import ConnectorError, FileConnector
from connectors.calendar import occurrence_key, occurrences, translate_event
from hub.model import Interaction, RawItem


class IcsConnector(FileConnector):
    kind = "ics"
    options: ClassVar[dict[str, str]] = {"path": "the .ics file to read"}

    def _read(self, cursor: dict[str, Any]) -> Iterator[tuple[list[RawItem], dict[str, Any]]]:
        path = Path(self.settings["path"]).expanduser()
        if not path.is_file():
            raise ConnectorError(f"{self.name}: {path} is not a readable .ics file")
        data = path.read_bytes()
        digest = hashlib.sha256(data).hexdigest()
        today = datetime.now(UTC).date().isoformat()
        mark = {"sha256": digest, "window": today}
        if cursor == mark:
            return
        try:
            calendar = icalendar.Calendar.from_ical(data)
        except ValueError as e:
            raise ConnectorError(f"{self.name}: {path} is not an iCalendar file: {e}") from e
        batch: list[RawItem] = []
        for event in self._occurrences(calendar):
            payload = event.to_ical()
            batch.append(
                RawItem(occurrence_key(event, self.context.timezone), payload, "text/calendar")
            )
            if len(batch) >= self.batch_size:
                yield batch, cursor
                batch = []
        yield batch, mark

    def _occurrences(self, calendar: icalendar.Calendar) -> Iterator[icalendar.Component]:
        return occurrences(calendar, self.context.calendar_window_days)

    def translate(self, raw: RawItem) -> Interaction:
        return translate_event(self.context, raw.data, raw.external_id)
