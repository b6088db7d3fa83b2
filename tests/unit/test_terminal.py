"""hub.terminal: text from sources is made safe before the CLI prints it.

The oracle is Unicode's own classification (`unicodedata`), not the module's regular expression:
whatever is a control (Cc), a lone surrogate (Cs), a line or paragraph separator (Zl, Zp) or a
bidirectional formatting character must not reach the terminal as itself.
"""

from __future__ import annotations

import logging
import unicodedata

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hub.terminal import PrintableFormatter, printable

# Unicode's Bidi_Control characters: the embeddings, overrides and isolates by their bidi class,
# the three marks (whose class is plain L, R or AL) by their names.
BIDI_FORMATTING = {"LRE", "RLE", "PDF", "LRO", "RLO", "LRI", "RLI", "FSI", "PDI"}
BIDI_MARKS = {"LEFT-TO-RIGHT MARK", "RIGHT-TO-LEFT MARK", "ARABIC LETTER MARK"}

any_text = st.text(st.characters(codec=None, exclude_categories=()))
controls = st.characters(categories=["Cc", "Cs", "Zl", "Zp"])


def unsafe(char: str) -> bool:
    return (
        unicodedata.category(char) in {"Cc", "Cs", "Zl", "Zp"}
        or unicodedata.bidirectional(char) in BIDI_FORMATTING
        or unicodedata.name(char, "") in BIDI_MARKS
    )


safe_text = st.text(
    st.characters(codec=None, exclude_categories=()).filter(lambda c: not unsafe(c))
)


@given(any_text)
def test_nothing_unsafe_survives(text: str) -> None:
    assert not any(unsafe(char) for char in printable(text))


@given(any_text)
def test_the_result_can_be_written_to_a_strict_utf8_terminal(text: str) -> None:
    printable(text).encode("utf-8")


@given(safe_text)
def test_safe_text_is_left_as_it_is(text: str) -> None:
    assert printable(text) == text


@given(any_text)
def test_every_unsafe_character_is_shown_where_it_was(text: str) -> None:
    """One escape per unsafe character, in order: the reader sees what was there."""
    named = {"\t": "\\t", "\n": "\\n", "\r": "\\r"}
    expected = "".join(
        named.get(c) or (f"\\x{ord(c):02x}" if ord(c) <= 0xFF else f"\\u{ord(c):04x}")
        if unsafe(c)
        else c
        for c in text
    )
    assert printable(text) == expected


@given(any_text)
def test_making_printable_twice_changes_nothing_more(text: str) -> None:
    once = printable(text)
    assert printable(once) == once


@given(st.lists(st.one_of(controls, st.sampled_from("\t\nab"))).map("".join))
def test_kept_characters_are_the_only_controls_left(text: str) -> None:
    kept = printable(text, keep="\n")
    assert [c for c in kept if unsafe(c)] == [c for c in text if c == "\n"]
    assert "\t" not in kept


@pytest.mark.parametrize(
    ("source", "shown"),
    [
        ("\x1b[2J\x1b]0;owned\x07Inbox", "\\x1b[2J\\x1b]0;owned\\x07Inbox"),
        ("invoice\u202efdp.exe", "invoice\\u202efdp.exe"),
        ("ok\r\nforged: 0 errors", "ok\\r\\nforged: 0 errors"),
        ("C1 \x9b31m", "C1 \\x9b31m"),
        ("name\tvalue", "name\\tvalue"),
        ("Ordner/\udcff.eml", "Ordner/\\udcff.eml"),
        ("Müller 👩\u200d💻 مرحبا\u200c", "Müller 👩\u200d💻 مرحبا\u200c"),
    ],
)
def test_examples(source: str, shown: str) -> None:
    assert printable(source) == shown


def test_log_records_keep_their_lines_but_not_escape_sequences() -> None:
    formatter = PrintableFormatter("%(levelname)s %(message)s")
    record = logging.LogRecord(
        "x", logging.WARNING, __file__, 1, "folder %s gone\nnext", ("\x1b[31mINBOX",), None
    )
    assert formatter.format(record) == "WARNING folder \\x1b[31mINBOX gone\nnext"


def test_every_code_point_is_judged_as_unicode_classifies_it() -> None:
    """Exhaustive where Hypothesis samples: rare characters (U+2066, U+061C) are covered too."""
    wrong = [
        f"U+{code:04X}"
        for code in range(0x110000)
        if (printable(chr(code)) != chr(code)) != unsafe(chr(code))
    ]
    assert wrong == []
