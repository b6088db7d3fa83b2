"""mbox files (mboxo/mboxrd): reads only what was appended since the last sync.

An mbox is a file of messages, each after a `From ` separator line. A file that does not begin
with one (after blank lines) is something else renamed: reading it as an empty mbox would report
success and move the cursor past it, so the connector fails with the reason instead.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, BinaryIO, ClassVar

from connectors.base import (
    HEAD_BYTES,
    ConnectorError,
    FileConnector,
    MalformedItem,
    file_mark,
    resume_offset,
)
from connectors.mail import translate_in
from hub.model import Interaction, RawItem

_ESCAPED_FROM = re.compile(rb"^>(>*From )", re.MULTILINE)
_FRAGMENT = "fragment:"  # external id prefix of bytes found before the first separator


def envelope_date(line: bytes) -> str:
    """The date of a `From sender date` separator line, kept for mails without a Date."""
    parts = line.decode("latin-1").split(None, 2)
    return parts[2].strip() if len(parts) == 3 else ""


class MboxConnector(FileConnector):
    kind = "mbox"
    options: ClassVar[dict[str, str]] = {"path": "the mbox file to read"}

    def _read(self, cursor: dict[str, Any]) -> Iterator[tuple[list[RawItem], dict[str, Any]]]:
        path = Path(self.settings["path"]).expanduser()
        if not path.is_file():
            raise ConnectorError(f"{self.name}: {path} is not a readable mbox file")
        with path.open("rb") as handle:
            size = os.fstat(handle.fileno()).st_size
            offset = resume_offset(handle, size, cursor)
            if offset >= size:
                return
            mark = file_mark(handle, size)
            handle.seek(offset)
            if offset == 0 and not _starts_with_separator(handle):
                raise ConnectorError(
                    f"{self.name}: {path} is not an mbox file: it does not start with a "
                    "'From ' line"
                )
            handle.seek(offset)
            batch: list[RawItem] = []
            for start, end, separator, data in _messages(handle, offset):
                if separator:
                    batch.append(RawItem(_external_id(data), _with_envelope(separator, data)))
                else:
                    batch.append(RawItem(f"{_FRAGMENT}{start}:{_external_id(data)}", data))
                if len(batch) >= self.batch_size:
                    yield batch, {"offset": end, **mark}
                    batch = []
            yield batch, {"offset": size, **mark}

    def translate(self, raw: RawItem) -> Interaction:
        if raw.external_id.startswith(_FRAGMENT):
            offset = raw.external_id.removeprefix(_FRAGMENT).split(":", 1)[0]
            raise MalformedItem(
                f"{len(raw.data)} bytes at offset {offset} come before any 'From ' line: the "
                "end of a message still being written when the mbox was last read, or the "
                "file was changed in place"
            )
        envelope, _, data = raw.data.partition(b"\n")
        fallback = None
        try:
            fallback = datetime.strptime(envelope.decode("latin-1"), "%a %b %d %H:%M:%S %Y")
            fallback = fallback.replace(tzinfo=UTC)
        except ValueError:
            pass
        return translate_in(self.context, data, fallback)


def _external_id(data: bytes) -> str:
    """Content address: stable when the mbox is rewritten, equal for identical copies."""
    return "sha256:" + hashlib.sha256(data).hexdigest()


def _with_envelope(separator: bytes, data: bytes) -> bytes:
    """Keep the envelope date before the message so translation can fall back on it."""
    return " ".join(envelope_date(separator).split()).encode("latin-1") + b"\n" + data


def _starts_with_separator(handle: BinaryIO) -> bool:
    """Whether the first line that is not blank is a `From ` line (or there is none)."""
    while line := handle.readline(HEAD_BYTES):
        if line.strip():
            return line.startswith(b"From ")
    return True


def _messages(handle: BinaryIO, offset: int) -> Iterator[tuple[int, int, bytes, bytes]]:
    """(start, end, separator line, message bytes) for each message from `offset` on.

    Lines that are not blank before the first separator come first, with an empty separator:
    they are not a message, but they must not vanish unseen either.
    """
    position = offset
    start = offset
    separator = b""
    lines: list[bytes] = []
    previous_blank = True
    for line in handle:
        if line.startswith(b"From ") and previous_blank:
            if separator or any(part.strip() for part in lines):
                yield start, position, separator, _unescape(lines)
            start, separator, lines = position, line.rstrip(b"\r\n"), []
        else:
            lines.append(line)
        # Before the first separator, as in `_starts_with_separator`, spaces count as blank.
        previous_blank = line in (b"\n", b"\r\n") or (not separator and not line.strip())
        position += len(line)
    if separator or any(part.strip() for part in lines):
        yield start, position, separator, _unescape(lines)


def _unescape(lines: list[bytes]) -> bytes:
    if lines and lines[-1] in (b"\n", b"\r\n"):
        lines = lines[:-1]
    return _ESCAPED_FROM.sub(rb"\1", b"".join(lines))
