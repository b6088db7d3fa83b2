"""What the directory is found by (storage.directory_search): the terms a record is indexed
under and how a typed query is read. Pure functions: no database."""

from __future__ import annotations

import pytest

from storage.directory_search import (
    account_terms,
    contact_terms,
    name_terms,
    parse,
    phone_terms,
)


def test_a_name_is_found_with_or_without_its_umlauts_written_out() -> None:
    terms = name_terms("Jürgen Müller-Weiß")
    assert {"jurgen", "juergen", "muller", "mueller", "weiss"} <= terms
    assert name_terms("Anna Schmidt") == {"anna", "schmidt"}


def test_an_account_is_found_by_its_domains_and_their_labels() -> None:
    terms = account_terms("Elbe Logistik GmbH", ["elbe-logistik.de"])
    assert {"elbe", "logistik", "gmbh", "elbe-logistik.de", "elbe-logistik", "de"} <= terms


def test_a_contact_is_found_by_address_local_part_and_number() -> None:
    terms = contact_terms("Jana Ohlsen", ["j.ohlsen@elbe-logistik.de"], ["+492217322098"])
    assert "j.ohlsen@elbe-logistik.de" in terms and "ohlsen" in terms
    assert {"492217322098", "2217322098"} <= terms


def test_a_number_is_indexed_with_and_without_its_country_code() -> None:
    assert phone_terms("+14155550123") == {"14155550123", "4155550123"}
    assert phone_terms("+492217322098") == {"492217322098", "2217322098"}
    assert phone_terms("+3902123456") == {"3902123456", "02123456"}  # Italy keeps its 0


@pytest.mark.parametrize(
    "typed",
    ["+49 221 7322098", "0221 7322098", "0221/73 22 098", "(0221) 732-2098", "00492217322098"],
)
def test_a_phone_number_in_any_format_is_its_national_digits(typed: str) -> None:
    query = parse(typed, "DE")
    assert query.prefixes == ("2217322098",) and query.phone == "+492217322098"
    assert query.exact == () and query.identity


def test_the_start_of_a_number_is_looked_up_as_digits() -> None:
    assert parse("0221 73", "DE").prefixes == ("22173",)
    assert parse("221 73", "DE").prefixes == ("22173",) and parse("221 73", "DE").identity
    assert parse("12", "DE").prefixes == ("12",) and not parse("12", "DE").identity


def test_an_address_is_one_exact_term_and_words_are_folded_prefixes() -> None:
    assert parse("J.Ohlsen@Elbe-Logistik.DE", "DE").exact == ("j.ohlsen@elbe-logistik.de",)
    assert parse("  Zimmer  Köln ", "DE").prefixes == ("zimmer", "koln")
    assert parse("", "DE").empty and parse("   ", "DE").empty
