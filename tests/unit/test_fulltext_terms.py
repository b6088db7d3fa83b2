"""storage.fulltext's analysis: what an item is indexed under and what a query looks for.

Both databases index and query exactly these terms, so what a search finds is decided here:
`found` below is the rule both indexes apply (every query word matches one of its stems among
the item's terms). The query syntax is checked against SQLite's own FTS5 parser (the standard
library's sqlite3), and against the tsquery grammar.
"""

from __future__ import annotations

import re
import sqlite3
from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from storage.fulltext import (
    MAX_QUERY_WORDS,
    MAX_WORD,
    Query,
    fold,
    terms,
    time_key,
    tsvector,
    words,
)


def found(text: str, query: str) -> bool:
    parsed = Query.parse(query)
    indexed = set(terms(text))
    return parsed is not None and all(indexed.intersection(alts) for alts in parsed.words)


@pytest.mark.parametrize(
    ("text", "query"),
    [
        ("Angebot für die Steuerungsmodule", "Steuerungsmodul"),
        ("Steuerungsmodul defekt", "Steuerungsmodule"),
        ("Two invoices attached", "invoice"),
        ("the invoice", "invoices"),
        ("Lieferung in die Straße am Hafen", "strasse"),
        ("Hafenstrasse, Ecke Strasse 5", "Straße"),
        ("Herr Müller ruft zurück", "muller"),
        ("Herr Muller", "Müller"),
        ("ÄRGER MIT DER GRÖSSE", "ärger größe"),
        ("Rechnungen für März", "Rechnung Marz"),
        ("Häuser am See", "Haus"),
        ("deliveries delayed", "delivery"),
        ("Café crème", "cafe creme"),
        ("ﬁnal ﬁle", "final file"),
        ("Bestellnr. 4711-B", "4711"),
    ],
)
def test_an_item_is_found_by_the_words_as_people_type_them(text: str, query: str) -> None:
    assert found(text, query), (terms(text), Query.parse(query))


@pytest.mark.parametrize(
    ("text", "query"),
    [
        ("Angebot Lager Süd", "Angebot Nord"),  # every word must be there
        ("Steuerung", "Steuerungsmodul"),  # no prefix or substring match
        ("Grüße aus Köln", "Größe"),
        ("Zauberwort", "%_"),
    ],
)
def test_an_item_is_not_found_by_words_it_does_not_hold(text: str, query: str) -> None:
    assert not found(text, query)


def test_folding_lower_cases_and_removes_umlauts_accents_and_sharp_s() -> None:
    assert fold("Müller Straße ÄÖÜ ẞ Crème") == "muller strasse aou ss creme"
    assert fold("ASCII Only") == "ascii only"


def test_words_are_letters_and_digits_and_encoded_data_is_not_a_word() -> None:
    assert words("Re: (Angebot) Lager-Nord, 2024! foo_bar") == [
        "re", "angebot", "lager", "nord", "2024", "foo", "bar",
    ]  # fmt: skip
    assert words("x" * (MAX_WORD + 1) + " kurz") == ["kurz"]


def test_an_item_is_indexed_under_both_stems_of_each_word_once_and_sorted() -> None:
    indexed = terms("Lieferungen Lieferungen orders")
    assert indexed == sorted(set(indexed))
    assert {"liefer", "lieferungen", "ord", "order"} <= set(indexed)


@pytest.mark.parametrize(
    "query",
    [
        'Angebot "Lager',
        "(Angebot",
        "Angebot)",
        "NEAR(a b)",
        "a AND b OR NOT c",
        "-x",
        "subject:geheim",
        "body : x",
        "x*",
        "^x",
        "a + b",
        "'a' & !b | c:*",
        "{subject}: x",
    ],
)
def test_operators_in_a_query_are_not_query_syntax(query: str) -> None:
    parsed = Query.parse(query)
    assert parsed is not None
    assert _fts5_rows(parsed, subject_only=False) is not None
    assert _fts5_rows(parsed, subject_only=True) is not None
    assert re.fullmatch(_TSQUERY, parsed.tsquery()), parsed.tsquery()
    assert re.fullmatch(_TSQUERY, parsed.tsquery(subject_only=True))


def test_a_query_without_words_finds_nothing_and_a_long_one_looks_for_its_first_words() -> None:
    assert Query.parse(' "*" () - : ') is None
    assert Query.parse("") is None
    parsed = Query.parse(" ".join(f"w{n}" for n in range(1000)))
    assert parsed is not None and len(parsed.words) == MAX_QUERY_WORDS


@given(st.text(max_size=60))
def test_any_text_makes_a_valid_query_or_none(text: str) -> None:
    parsed = Query.parse(text)
    if parsed is None:
        assert not words(text)
        return
    assert _fts5_rows(parsed, subject_only=False) is not None
    assert re.fullmatch(_TSQUERY, parsed.tsquery())


def test_fts5_finds_subject_words_in_the_subject_only_when_asked() -> None:
    parsed = Query.parse("Angebot Nord")
    assert parsed is not None
    both = _fts5_rows(parsed, subject_only=False, rows=[("angebot", "nord"), ("angebot", "")])
    assert both == [1]
    subject = _fts5_rows(
        parsed, subject_only=True, rows=[("angebot", "nord"), ("angebot nord", "")]
    )
    assert subject == [2]


def test_the_tsvector_keeps_subject_terms_at_weight_a_and_body_terms_at_b() -> None:
    assert tsvector(["angebot", "nord"], ["angebot", "lager"]) == (
        "'angebot':1A,2B 'lager':2B 'nord':1A"
    )


def test_the_sqlite_key_orders_by_time_to_the_second_and_is_unique_by_id() -> None:
    at = datetime(2024, 5, 1, 9, 30, 15, 999_999, tzinfo=UTC)
    assert time_key(7, at) < time_key(3, at + timedelta(seconds=1))
    assert time_key(3, at) < time_key(7, at) == time_key(7, at.replace(microsecond=0))
    assert time_key(7, at.astimezone(timezone(timedelta(hours=2)))) == time_key(7, at)
    assert time_key(7, at.replace(tzinfo=None)) == time_key(7, at)  # stored naive, as UTC
    assert time_key(1, datetime(1960, 1, 1, tzinfo=UTC)) == 1
    assert time_key(1, datetime(2200, 1, 1, tzinfo=UTC)) < 2**63
    with pytest.raises(ValueError, match="does not fit"):
        time_key(2**31, at)


_TERM = r"'[^\W_]+'(?::A)?"
_TSQUERY = rf"\({_TERM}(?: \| {_TERM})*\)(?: & \({_TERM}(?: \| {_TERM})*\))*"


def _fts5_rows(
    query: Query, subject_only: bool, rows: list[tuple[str, str]] | None = None
) -> list[int]:
    """The rowids an in-memory FTS5 table (as migration 0008 makes it) returns for `query`;
    sqlite3 raises on a syntax error."""
    connection = sqlite3.connect(":memory:")
    connection.execute(
        "CREATE VIRTUAL TABLE interaction_fts USING fts5("
        "subject, body, tokenize = 'ascii', detail = column)"
    )
    connection.executemany(
        "INSERT INTO interaction_fts (subject, body) VALUES (?, ?)", rows or [("a", "b")]
    )
    found = connection.execute(
        "SELECT rowid FROM interaction_fts WHERE interaction_fts MATCH ? ORDER BY rowid",
        (query.fts5(subject_only),),
    )
    return [rowid for (rowid,) in found]
