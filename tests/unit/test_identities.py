"""The matching keys of matching/identities.py.

Attribution compares only normalised strings, so a normaliser that differs between the
directory and a mail header, or that changes a key when applied again, silently loses
matches. These tests pin the normalisation rules of DESIGN.md and check, with Hypothesis,
that the functions are total and idempotent on any text.
"""

from __future__ import annotations

import re

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from matching.identities import (
    FreeMail,
    default_free_mail,
    email_domain,
    is_internal,
    is_internal_extension,
    normalize_domain,
    normalize_email,
    normalize_name,
    normalize_phone,
    parent_domains,
)

E164 = re.compile(r"\+[1-9]\d{1,14}")

email_like = st.from_regex(
    r"\A[ <]{0,2}(mailto:)?[A-Za-z0-9.+_\-äöüÄ]{1,12}@[A-Za-z0-9.\-äöüßÄ]{1,16}\.?[>  ]{0,2}\Z"
)
phone_like = st.from_regex(r"\A[+0 ()\-/0-9]{0,22}\Z")
regions = st.sampled_from(["DE", "de", "AT", "US", "GB", "IT", None])


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (" J.Ohlsen@Elbe-Logistik.DE ", "j.ohlsen@elbe-logistik.de"),
        ("<jana@elbe-logistik.de>", "jana@elbe-logistik.de"),
        ("mailto:Jana@Elbe-Logistik.de?subject=Angebot", "jana@elbe-logistik.de"),
        ("MAILTO:jana@elbe-logistik.de", "jana@elbe-logistik.de"),
        ("jana+crm@elbe-logistik.de", "jana@elbe-logistik.de"),
        ("Piet.Brandt@gmail.com", "pietbrandt@gmail.com"),
        ("Piet.Brandt+news@GoogleMail.com", "pietbrandt@gmail.com"),
        ("jana@bücher.de", "jana@xn--bcher-kva.de"),
        ("jana@BÜCHER.de", "jana@xn--bcher-kva.de"),
        ("jana@xn--bcher-kva.de.", "jana@xn--bcher-kva.de"),
        ("jürgen@bücher.de", "jürgen@xn--bcher-kva.de"),
        ("first.last@outlook.com", "first.last@outlook.com"),
    ],
)
def test_normalize_email_applies_the_policy(raw: str, expected: str) -> None:
    """Case, IDNA, +tags and Gmail dots: the rules DESIGN.md lists for contact-email."""
    assert normalize_email(raw) == expected


@pytest.mark.parametrize(
    "raw",
    [
        "",
        "   ",
        "no-at-sign",
        "jana@localhost",
        "@elbe-logistik.de",
        "+tag@elbe-logistik.de",
        '"quoted"@elbe-logistik.de',
        "Jana Ohlsen <jana@elbe-logistik.de>",
        "jana@1.2.3.4",
        "jana@-bad-.de",
        "jana@exa mple.de",
        "jana@" + "a" * 64 + ".de",
    ],
)
def test_normalize_email_rejects_what_is_not_a_matchable_address(raw: str) -> None:
    """Non-addresses must yield None, so they match nothing rather than a wrong contact."""
    assert normalize_email(raw) is None


def test_dots_matter_outside_gmail() -> None:
    """Only Gmail ignores dots; elsewhere `a.b` and `ab` are different mailboxes."""
    assert normalize_email("a.b@elbe-logistik.de") != normalize_email("ab@elbe-logistik.de")
    assert normalize_email("a.b@gmail.com") == normalize_email("ab@googlemail.com")


def test_email_domain_is_the_part_after_the_last_at() -> None:
    address = normalize_email("Jana@Bücher.DE")
    assert address is not None
    assert email_domain(address) == "xn--bcher-kva.de"
    assert email_domain(address) == normalize_domain("bücher.de")


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("acme.de", "acme.de"),
        ("@ACME.de", "acme.de"),
        (" acme.de. ", "acme.de"),
        ("Bücher.de", "xn--bcher-kva.de"),
        ("xn--bcher-kva.de", "xn--bcher-kva.de"),
        ("münchen.example", "xn--mnchen-3ya.example"),
        ("eu.sales.acme.de", "eu.sales.acme.de"),
    ],
)
def test_normalize_domain_lowercases_and_encodes_idna(raw: str, expected: str) -> None:
    """Account domains and mail domains must compare equal after the same normalisation."""
    assert normalize_domain(raw) == expected


@pytest.mark.parametrize(
    "raw", ["", "localhost", "https://www.acme.de/", "acme..de", "acme.123", "a_b.de", "acme de"]
)
def test_normalize_domain_rejects_urls_and_non_domains(raw: str) -> None:
    """A URL in the directory would attribute by the wrong host, so it is refused."""
    assert normalize_domain(raw) is None


def test_parent_domains_walk_whole_labels_without_the_tld() -> None:
    assert parent_domains("eu.sales.acme.de") == ["eu.sales.acme.de", "sales.acme.de", "acme.de"]
    assert parent_domains("acme.de") == ["acme.de"]
    assert parent_domains("de") == []
    assert "acme.de" not in parent_domains("notacme.de")
    assert "acme.de" not in parent_domains("acme.de.example.com")


@pytest.mark.parametrize(
    ("domain", "internal"),
    [
        ("ourco.example", True),
        ("OurCo.Example", True),
        ("mail.eu.ourco.example", True),
        ("notourco.example", False),
        ("ourco.example.com", False),
        ("elbe-logistik.de", False),
        ("not a domain", False),
    ],
)
def test_is_internal_covers_subdomains_by_whole_labels(domain: str, internal: bool) -> None:
    assert is_internal(domain, ["ourco.example", "@Other-Own.DE", "garbage entry"]) is internal


def test_is_internal_normalises_configured_idna_domains() -> None:
    """A configured `bücher.de` must recognise the punycode a mail header carries."""
    assert is_internal("xn--bcher-kva.de", ["Bücher.de"])
    assert not is_internal("ourco.example", [])


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("0511 689-0756", "+495116890756"),
        ("(0511) 6890756", "+495116890756"),
        ("+49 (0)511 6890756", "+495116890756"),
        ("0049 511 6890756", "+495116890756"),
        ("+49 511 6890756", "+495116890756"),
        ("0171 2233445", "+491712233445"),
        ("+49 511 6890756 ext. 12", "+495116890756"),
        ("+1 650 253 0000", "+16502530000"),
        ("+495116890756", "+495116890756"),
    ],
)
def test_normalize_phone_reads_national_and_international_formats(raw: str, expected: str) -> None:
    assert normalize_phone(raw, "DE") == expected


@pytest.mark.parametrize(
    "raw", ["", "   ", "anonymous", "Unknown", "6890756", "201", "000000", "++49", "0", "abc123"]
)
def test_normalize_phone_refuses_numbers_that_cannot_reach_one_line(raw: str) -> None:
    """Local numbers without area code and garbage would otherwise match a stranger."""
    assert normalize_phone(raw, "DE") is None


def test_national_numbers_need_a_region() -> None:
    """Without a default region a national number is ambiguous; international ones are not."""
    assert normalize_phone("0511 6890756", None) is None
    assert normalize_phone("+49 511 6890756", None) == "+495116890756"
    assert normalize_phone("0511 6890756", "de") == "+495116890756"


def test_the_region_decides_how_a_national_number_is_read() -> None:
    assert normalize_phone("0171 2233445", "DE") == "+491712233445"
    assert normalize_phone("(650) 253-0000", "US") == "+16502530000"
    assert normalize_phone("(650) 253-0000", "DE") != "+16502530000"


@pytest.mark.parametrize(
    ("number", "internal"),
    [
        ("2", True),
        ("201", True),
        ("2001", True),
        (" 20 1 ", True),
        ("12345", False),
        ("", False),
        ("   ", False),
        ("20a", False),
        ("٢٠١", False),
        ("+201", False),
        ("0511 6890756", False),
    ],
)
def test_is_internal_extension_is_one_to_four_ascii_digits(number: str, internal: bool) -> None:
    assert is_internal_extension(number) is internal


def test_free_mail_contains_the_big_providers_exactly() -> None:
    """Exact membership: a provider's subdomain is usually a company's own hosted mail."""
    free = default_free_mail()
    assert "gmail.com" in free
    assert "GMAIL.com" in free
    assert "@gmail.com" in free
    assert "elbe-logistik.de" not in free
    assert "mail.gmail.com" not in free
    assert 42 not in free
    assert len(free) > 1000


def test_free_mail_extra_domains_are_normalised_and_validated() -> None:
    free = FreeMail(["Mail.Bücher.de"])
    assert "mail.xn--bcher-kva.de" in free
    assert "mail.bücher.de" in free
    assert len(free) == len(default_free_mail()) + 1
    with pytest.raises(ValueError, match="not a mail domain"):
        FreeMail(["https://mail.example/"])


@given(st.text())
def test_normalisers_never_raise_on_arbitrary_text(text: str) -> None:
    normalize_email(text)
    normalize_domain(text)
    normalize_phone(text, "DE")
    normalize_phone(text, None)
    is_internal_extension(text)
    is_internal(text, ["ourco.example"])


@given(st.one_of(st.text(), email_like))
def test_normalize_email_is_idempotent(text: str) -> None:
    """A stored key is normalised again on every re-import; it must not drift."""
    key = normalize_email(text)
    if key is not None:
        assert normalize_email(key) == key
        local, _, domain = key.rpartition("@")
        assert local and "+" not in local
        assert normalize_domain(domain) == domain


@given(email_like)
def test_normalize_email_ignores_ascii_case(text: str) -> None:
    """Only ASCII case is folded blindly: upper-casing `ß` gives `SS`, another mailbox."""
    shouted = "".join(char.upper() if char.isascii() else char for char in text)
    assert normalize_email(shouted) == normalize_email(text)


@given(st.one_of(st.text(), email_like.map(lambda s: s.rpartition("@")[2])))
def test_normalize_domain_is_idempotent(text: str) -> None:
    key = normalize_domain(text)
    if key is not None:
        assert normalize_domain(key) == key
        assert key.isascii() and key == key.lower()
        assert parent_domains(key)[0] == key
        assert all(key.endswith("." + parent) for parent in parent_domains(key)[1:])


@given(st.one_of(st.text(), phone_like), regions)
@example("10000000000000", "DE")  # possible for phonenumbers, 16 digits with +49: no E.164
def test_normalize_phone_is_e164_or_none_and_idempotent(text: str, region: str | None) -> None:
    """E.164 keys compare equal whatever the region, so they are read back without one too."""
    key = normalize_phone(text, region)
    if key is not None:
        assert E164.fullmatch(key), key
        assert normalize_phone(key, region) == key
        assert normalize_phone(key, None) == key


@given(st.text())
def test_normalize_name_is_total_and_idempotent(name: str) -> None:
    key = normalize_name(name)
    assert key is None or (normalize_name(key) == key and len(key.split()) >= 2)


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("Doe, Jane", "jane DOE"),
        ("Jürgen Müller", "Muller, Jurgen"),
        ("Jane Doe (ACME)", "Jane Doe"),
    ],
)
def test_normalize_name_ignores_order_case_accents_and_asides(a: str, b: str) -> None:
    assert normalize_name(a) == normalize_name(b) is not None
