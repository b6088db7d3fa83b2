"""Asterisk call detail records (`Master.csv`, the standard 18 columns, no header).

Asterisk appends one line per call. A line without its newline yet is still being written: it
is left for the next sync. A record that never got its newline (Asterisk stopped mid-write) is
followed on the same line by the next call Asterisk writes; that line is split again, the cut
record quarantined and the whole one read, so that nothing is merged and nothing lost.
"""

from __future__ import annotations

import csv
import hashlib
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any, ClassVar
from zoneinfo import ZoneInfo

from connectors.base import (
    ConnectorError,
    FileConnector,
    MalformedItem,
    file_mark,
    resume_offset,
)
from connectors.calls import DISPOSITIONS, Call, call_interaction
from hub.model import Interaction, RawItem

COLUMNS = (
    "accountcode",
    "src",
    "dst",
    "dcontext",
    "clid",
    "channel",
    "dstchannel",
    "lastapp",
    "lastdata",
    "start",
    "answer",
    "end",
    "duration",
    "billsec",
    "disposition",
    "amaflags",
    "uniqueid",
    "userfield",
)


class AsteriskCdrConnector(FileConnector):
    kind = "asterisk-cdr"
    options: ClassVar[dict[str, str]] = {"path": "the Asterisk Master.csv file to read"}

    def _read(self, cursor: dict[str, Any]) -> Iterator[tuple[list[RawItem], dict[str, Any]]]:
        path = Path(self.settings["path"]).expanduser()
        if not path.is_file():
            raise ConnectorError(f"{self.name}: {path} is not a readable CDR file")
        with path.open("rb") as handle:
            handle.seek(0, 2)
            size = handle.tell()
            offset = resume_offset(handle, size, cursor)
            if offset >= size:
                return
            mark = file_mark(handle, size)
            handle.seek(offset)
            batch: list[RawItem] = []
            for line in handle:
                if not line.endswith(b"\n"):
                    break  # a record still being written; read it next time
                offset += len(line)
                at = _whole_record_after_cut(line)
                if at:
                    batch.append(RawItem(f"{_CUT}{_digest(line[:at])}", line[:at], "text/csv"))
                    line = line[at:]
                if line.strip():
                    batch.append(RawItem(f"line:{_digest(line)}", line, "text/csv"))
                if len(batch) >= self.batch_size:
                    yield batch, {"offset": offset, **mark}
                    batch = []
            yield batch, {"offset": offset, **mark}

    def translate(self, raw: RawItem) -> Interaction:
        if raw.external_id.startswith(_CUT):
            raise MalformedItem(
                "a CDR record cut off mid-write (did Asterisk stop?); the record after it on "
                "the same line was read on its own"
            )
        text = raw.data.decode("utf-8", "replace")
        rows = list(csv.reader([text.strip()]))
        if not rows or len(rows[0]) != len(COLUMNS):
            found = len(rows[0]) if rows else 0
            raise MalformedItem(f"CDR row has {found} columns, expected {len(COLUMNS)}")
        record = dict(zip(COLUMNS, rows[0], strict=True))
        try:
            start = datetime.strptime(record["start"], "%Y-%m-%d %H:%M:%S")
            billsec = int(record["billsec"] or 0)
        except ValueError as e:
            raise MalformedItem(f"CDR row has a bad start time or billsec: {e}") from e
        start = start.replace(tzinfo=ZoneInfo(self.context.timezone))
        uniqueid = record["uniqueid"]
        return call_interaction(
            Call(
                key=f"asterisk:{uniqueid or raw.external_id}:{record['dst']}",
                start=start,
                caller=record["src"],
                callee=record["dst"],
                status=DISPOSITIONS.get(record["disposition"].strip().upper(), "failed"),
                talk_seconds=billsec,
                caller_name=record["clid"].split("<")[0].strip().strip('"'),
                native_ids=(uniqueid,) if uniqueid else (),
                extra={"uniqueid": uniqueid} if uniqueid else {},
            )
        )


_CUT = "cut:"  # external id prefix of a record cut off mid-write


def _digest(line: bytes) -> str:
    return hashlib.sha256(line.strip()).hexdigest()[:16]


def _fields(text: str) -> list[str]:
    rows = list(csv.reader([text.strip()]))
    return rows[0] if len(rows) == 1 else []


def _record(text: str) -> bool:
    """Whether `text` is one whole CDR record: 18 columns and a start time."""
    fields = _fields(text)
    if len(fields) != len(COLUMNS):
        return False
    try:
        datetime.strptime(fields[COLUMNS.index("start")], "%Y-%m-%d %H:%M:%S")
    except ValueError:
        return False
    return True


def _whole_record_after_cut(line: bytes) -> int:
    """Where a whole record begins inside `line`, when `line` is a record cut off mid-write
    followed by the next one Asterisk wrote; 0 when it is one record, good or bad.

    Asterisk quotes every text column, so a record begins with a quote: the last quote after
    which the rest of the line is a whole record is where the next record began (an earlier
    one may give 18 columns too, when the cut record's last quoted field runs into the next
    record's first). A line of 18 columns is taken as it is (the common case; `translate`
    checks it once more).
    """
    text = line.decode("utf-8", "surrogateescape")
    if len(_fields(text)) == len(COLUMNS):
        return 0
    for at in range(len(text) - 1, 0, -1):
        if text[at] == '"' and _record(text[at:]):
            return len(text[:at].encode("utf-8", "surrogateescape"))
    return 0
