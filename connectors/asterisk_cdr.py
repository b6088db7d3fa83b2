"""Asterisk call detail records (`Master.csv`, the standard 18 columns, no header)."""

from __future__ import annotations

import csv
import hashlib
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any, ClassVar
from zoneinfo import ZoneInfo

from connectors.base import ConnectorError, FileConnector, MalformedItem
from connectors.mbox import HEAD_BYTES, file_head, resume_offset
from hub.model import AddressKind, Channel, Interaction, Participant, RawItem, Role

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
            mark = {"head": file_head(handle, size), "head_len": min(size, HEAD_BYTES)}
            handle.seek(offset)
            batch: list[RawItem] = []
            for line in handle:
                if not line.endswith(b"\n"):
                    break  # a record still being written; read it next time
                offset += len(line)
                if line.strip():
                    digest = hashlib.sha256(line.strip()).hexdigest()[:16]
                    batch.append(RawItem(f"line:{digest}", line, "text/csv"))
                if len(batch) >= self.batch_size:
                    yield batch, {"offset": offset, **mark}
                    batch = []
            yield batch, {"offset": offset, **mark}

    def translate(self, raw: RawItem) -> Interaction:
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
        caller_name = record["clid"].split("<")[0].strip().strip('"')
        participants = [
            Participant(Role.CALLER, record["src"], AddressKind.PHONE, caller_name),
            Participant(Role.CALLEE, record["dst"], AddressKind.PHONE, ""),
        ]
        minutes, seconds = divmod(billsec, 60)
        return Interaction(
            channel=Channel.CALL,
            occurred_at=start,
            dedupe_key=f"asterisk:{record['uniqueid'] or raw.external_id}:{record['dst']}",
            subject=f"Call {record['src'] or 'unknown'} → {record['dst']} "
            f"({record['disposition'].lower()}, {minutes}:{seconds:02d})",
            snippet=f"{record['disposition']} after {billsec} s",
            participants=participants,
            duration_seconds=billsec,
            extra={"disposition": record["disposition"], "uniqueid": record["uniqueid"]},
        )
