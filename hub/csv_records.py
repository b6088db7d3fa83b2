"""CSV records with the lines they came from, and the quote left open caught in one of them.

`csv.reader` takes every line after a quote that is never closed into one field: the row that
opened it and every row after it would become one account named after the rest of the file. The
reader here is fed the file's physical lines one at a time, so it knows where each record began
and how many lines it took; a record that ran away is reported on the line that opened it, and
reading starts again on the line after, so that the rows it took in are still read. Pure: no
I/O, no logging.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from dataclasses import dataclass

# A quoted cell over more lines than this is a quote never closed, not an address typed with
# Alt+Enter; the cap also bounds the work a runaway quote costs before the line after it.
MAX_RECORD_LINES = 50
_QUOTE_HINT = (
    'close it, and write a quote inside a field as ""; the lines after this one are read as '
    "rows of their own"
)


@dataclass(frozen=True, slots=True)
class CsvRecord:
    """One record: its cells, or (cells empty) why it is not a row of the header's width."""

    line: int  # where it began, from 1
    cells: list[str]
    problem: str = ""


def csv_records(text: str, delimiter: str) -> Iterator[CsvRecord]:
    """The header first, then every record that is not blank, each measured by the header.

    A record of another width than the header's is a problem; one over several lines that
    looks like a quote left open (it runs to the end of the file or past `MAX_RECORD_LINES`,
    takes in a line with a whole row's worth of delimiters, or is of the wrong width) costs
    only the line that opened it.
    """
    lines = _Lines(io.StringIO(text, newline="").readlines())
    reader = csv.reader(lines, delimiter=delimiter)
    width: int | None = None  # the header's, once read
    while True:
        start = lines.begin_record()
        try:
            cells = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            if lines.taken == 1:
                yield CsvRecord(start, [], f"unreadable CSV: {exc}")
                continue
            cells, runaway = [], True  # a field over several lines grew past csv's limit
        else:
            runaway = lines.cut_off or (
                width is not None and _takes_in_rows(cells, width, delimiter)
            )
        if runaway:
            yield CsvRecord(start, [], _unclosed_quote(lines))
            lines.restart_after(start)
        elif width is None:
            width = len(cells)
            yield CsvRecord(start, cells)
        elif not any(cell.strip() for cell in cells):
            continue
        elif len(cells) != width and lines.taken > 1:
            yield CsvRecord(
                start,
                [],
                f"{len(cells)} fields, the header has {width}, over {lines.taken} lines: "
                f"is a quote left open? {_QUOTE_HINT}",
            )
            lines.restart_after(start)
        elif len(cells) != width:
            yield CsvRecord(
                start,
                [],
                f"{len(cells)} fields, the header has {width}; write every field, an empty "
                f"one as nothing between two {delimiter!r}",
            )
        else:
            yield CsvRecord(start, cells)


class _Lines:
    """The physical lines of a file, handed to `csv.reader` one at a time and counted."""

    def __init__(self, lines: list[str]) -> None:
        self.lines = lines
        self.next = 0  # index of the line the reader gets next
        self.start = 0  # index of the current record's first line
        self.cut_off = False  # the reader wanted more of the current record than there was

    def __iter__(self) -> _Lines:
        return self

    def __next__(self) -> str:
        if self.next >= len(self.lines) or self.taken >= MAX_RECORD_LINES:
            self.cut_off = self.taken > 0
            raise StopIteration
        self.next += 1
        return self.lines[self.next - 1]

    @property
    def taken(self) -> int:
        """How many lines the current record has taken so far."""
        return self.next - self.start

    def begin_record(self) -> int:
        """The line number (from 1) of the record about to be read."""
        self.start, self.cut_off = self.next, False
        return self.start + 1

    def restart_after(self, line: int) -> None:
        self.next = line

    def first(self) -> str:
        return self.lines[self.start].rstrip("\r\n")


def _takes_in_rows(cells: list[str], width: int, delimiter: str) -> bool:
    """A field over several lines that holds a line with a whole row's worth of delimiters.

    An honest multi-line cell (an address typed with Alt+Enter in Excel) has few; a field
    opened by a quote that is never closed takes in the rest of its line and the rows after.
    """
    return any(
        part.count(delimiter) >= width - 1
        for cell in cells
        if "\n" in cell or "\r" in cell
        for part in cell.splitlines()
    )


def _unclosed_quote(lines: _Lines) -> str:
    if lines.cut_off and lines.next >= len(lines.lines):
        reach = "to the end of the file"
    elif lines.cut_off:
        reach = f"over more than {MAX_RECORD_LINES} lines"
    else:
        reach = f"over {lines.taken} lines"
    return (
        f"a quote is never closed: the field it opens runs {reach} "
        f"({excerpt(lines.first())}); {_QUOTE_HINT}"
    )


def excerpt(text: str, limit: int = 60) -> str:
    """A quoted, escaped and shortened piece of a file for a message about it."""
    return repr(text if len(text) <= limit else text[:limit] + "…")
