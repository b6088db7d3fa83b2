"""hub.csv_records: records with their lines, and a quote left open costing only its own line."""

from __future__ import annotations

import csv
import io

from hypothesis import given
from hypothesis import strategies as st

from hub.csv_records import MAX_RECORD_LINES, CsvRecord, csv_records

WIDTH = 6
# Short cells cannot hold a whole row's worth of delimiters, so every multi-line cell here is
# an honest one; blank rows are left out, since they are skipped.
cell = st.text(alphabet='ab ,;"\n', max_size=4)
row = st.lists(cell, min_size=WIDTH, max_size=WIDTH).filter(lambda r: any(c.strip() for c in r))
plain_row = st.lists(
    st.text(alphabet="ab @.", min_size=1, max_size=5), min_size=WIDTH, max_size=WIDTH
)


def written(rows: list[list[str]], delimiter: str = ",") -> str:
    out = io.StringIO()
    csv.writer(out, delimiter=delimiter, lineterminator="\n").writerows(rows)
    return out.getvalue()


def lines_of(rows: list[list[str]]) -> list[int]:
    """The line each row begins on, counting the line breaks inside its cells."""
    starts, line = [], 1
    for cells in rows:
        starts.append(line)
        line += 1 + sum(c.count("\n") for c in cells)
    return starts


@given(st.lists(row, min_size=1, max_size=8), st.sampled_from(",;"))
def test_what_csv_writes_comes_back_with_its_lines(rows: list[list[str]], delimiter: str) -> None:
    records = list(csv_records(written(rows, delimiter), delimiter))
    assert records == [CsvRecord(n, r) for n, r in zip(lines_of(rows), rows, strict=True)]


@given(st.lists(plain_row, min_size=2, max_size=8), st.data())
def test_a_quote_left_open_costs_only_its_own_line(
    rows: list[list[str]], data: st.DataObject
) -> None:
    broken = data.draw(st.integers(1, len(rows) - 1))
    text = "".join(
        ('"' if n == broken else "") + ",".join(cells) + "\n" for n, cells in enumerate(rows)
    )
    records = list(csv_records(text, ","))
    good = [r for r in records if not r.problem]
    assert [r.cells for r in good] == rows[:broken] + rows[broken + 1 :]
    assert [r.line for r in good] == [n + 1 for n in range(len(rows)) if n != broken]
    (problem,) = [r for r in records if r.problem]
    assert problem.line == broken + 1
    assert "a quote is never closed" in problem.problem
    assert "to the end of the file" in problem.problem


def test_a_quote_closed_by_a_later_one_is_caught_by_the_width() -> None:
    text = 'h1,h2,h3,h4,h5,h6\nA,"open,x\nB,b,b,b,"quoted",b\nC,c,c,c,c,c\n'
    records = list(csv_records(text, ","))
    assert records[1] == CsvRecord(
        2,
        [],
        "3 fields, the header has 6, over 2 lines: is a quote left open? close it, and write a "
        'quote inside a field as ""; the lines after this one are read as rows of their own',
    )
    assert records[2:] == [
        CsvRecord(3, ["B", "b", "b", "b", "quoted", "b"]),
        CsvRecord(4, ["C", "c", "c", "c", "c", "c"]),
    ]


def test_a_field_taking_in_whole_rows_is_a_quote_left_open_even_at_the_right_width() -> None:
    text = 'h1,h2,h3\n"A,a,a\nB,b",b\nC,c,c\n'
    records = list(csv_records(text, ","))
    assert records[1].line == 2 and "over 2 lines" in records[1].problem
    assert [r.cells for r in records[2:]] == [["B", 'b"', "b"], ["C", "c", "c"]]


def test_a_runaway_field_stops_after_the_line_limit() -> None:
    filler = "x\n" * (MAX_RECORD_LINES + 10)
    records = list(csv_records(f'h1,h2\n"open\n{filler}A,a\n', ","))
    assert f"over more than {MAX_RECORD_LINES} lines" in records[1].problem
    assert records[-1] == CsvRecord(MAX_RECORD_LINES + 13, ["A", "a"])


def test_widths_blank_lines_and_an_honest_multi_line_cell() -> None:
    text = 'h1,h2,h3\n\n  ,,\nA,a\n"Hafenstr. 1\nHamburg",b,c\nB,b,c,d\n'
    records = list(csv_records(text, ","))
    assert records[1] == CsvRecord(
        4,
        [],
        "2 fields, the header has 3; write every field, an empty one as nothing between two ','",
    )
    assert records[2] == CsvRecord(5, ["Hafenstr. 1\nHamburg", "b", "c"])
    assert records[3].line == 7 and records[3].problem.startswith("4 fields, the header has 3")
    assert len(records) == 4


def test_an_empty_text_has_no_records() -> None:
    assert list(csv_records("", ",")) == []
