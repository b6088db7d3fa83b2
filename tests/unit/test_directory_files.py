"""Directory files as people export them: Excel CSV (BOM, `;`, cp1252) and vCard 3.0/4.0."""

from __future__ import annotations

from pathlib import Path

import pytest

from hub.directory_files import DirectoryFileError, read_directory

HEADER = "account,domains,contact,emails,phones,owner\n"


def _write(tmp_path: Path, name: str, data: bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


def test_csv_rows_are_normalised(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        "d.csv",
        (
            HEADER + "Elbe Logistik GmbH,Elbe-Logistik.DE,Jana Ohlsen,J.Ohlsen@Elbe-Logistik.de,"
            "040 3344556,Anna@ourco.example\n"
            + "Isar Maschinenbau AG,isar-mb.de;isar-maschinenbau.de,,,,\n"
        ).encode(),
    )
    rows, errors = read_directory(path, "DE")
    assert errors == []
    assert [r.account for r in rows] == ["Elbe Logistik GmbH", "Isar Maschinenbau AG"]
    first, second = rows
    assert first.domains == ("elbe-logistik.de",)
    assert first.emails == ("j.ohlsen@elbe-logistik.de",)
    assert first.phones == ("+49403344556",)
    assert first.owner == "anna@ourco.example"
    assert first.line == 2
    assert second.contact == "" and second.domains == ("isar-mb.de", "isar-maschinenbau.de")


def test_excel_bom_semicolon_and_cp1252(tmp_path: Path) -> None:
    text = (
        "account;domains;contact;emails;phones;owner\r\n"
        'Müller & Söhne KG;mueller-soehne.de;Jürgen Weiß;"jw@mueller-soehne.de;'
        'j.weiss@mueller-soehne.de";089 123456;\r\n'
    )
    for name, data in (
        ("bom.csv", b"\xef\xbb\xbf" + text.encode()),
        ("ansi.csv", text.encode("cp1252")),
    ):
        rows, errors = read_directory(_write(tmp_path, name, data), "DE")
        assert errors == [], name
        assert rows[0].account == "Müller & Söhne KG", name
        assert rows[0].contact == "Jürgen Weiß", name
        assert rows[0].emails == ("jw@mueller-soehne.de", "j.weiss@mueller-soehne.de"), name


def test_bad_rows_name_line_and_field_and_good_rows_survive(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        "d.csv",
        (
            HEADER
            + "Good GmbH,good.de,Eva Gut,eva@good.de,,\n"
            + ",bad.de,Nobody,,,\n"
            + "Bad Mail GmbH,badmail.de,Max,not-an-address,,\n"
            + "Bad Phone GmbH,badphone.de,Max,,12,\n"
            + "Bad Domain GmbH,exa mple..de,,,,\n"
            + '"Multi\nLine GmbH",multi.de,Ina,ina@multi.de,,\n'
            + "Bad Owner GmbH,owner.de,,,,boss\n"
        ).encode(),
    )
    rows, errors = read_directory(path, "DE")
    assert [r.account for r in rows] == ["Good GmbH", "Multi\nLine GmbH"]
    assert rows[1].line == 7
    assert [(e.line, e.field) for e in errors] == [
        (3, "account"),
        (4, "emails"),
        (5, "phones"),
        (6, "domains"),
        (9, "owner"),
    ]
    assert all(e.path == str(path) for e in errors)
    assert str(errors[1]).startswith(f"{path}:4: emails: 'not-an-address'")


def test_whole_file_problems_are_one_clear_error(tmp_path: Path) -> None:
    with pytest.raises(DirectoryFileError, match="no such file"):
        read_directory(tmp_path / "missing.csv", "DE")
    with pytest.raises(DirectoryFileError, match=r"expected a \.csv or \.vcf"):
        read_directory(_write(tmp_path, "d.xlsx", b"PK"), "DE")
    with pytest.raises(DirectoryFileError, match="header lacks domains"):
        read_directory(_write(tmp_path, "h.csv", b"account,contact\nA,B\n"), "DE")
    with pytest.raises(DirectoryFileError, match="empty"):
        read_directory(_write(tmp_path, "e.csv", b""), "DE")


VCARDS = """BEGIN:VCARD\r
VERSION:3.0\r
FN:Jana Ohlsen\r
N:Ohlsen;Jana;;;\r
ORG:Elbe Logistik GmbH;Einkauf\r
EMAIL;TYPE=WORK:J.Ohlsen@elbe-logistik.de\r
EMAIL;TYPE=HOME:jana.ohlsen@gmail.com\r
TEL;TYPE=WORK:040 3344556\r
END:VCARD\r
BEGIN:VCARD\r
VERSION:4.0\r
FN:Tom Rieger\r
ORG:Isar Maschinenbau AG\r
EMAIL:tom.rieger@isar-mb.de\r
TEL;VALUE=uri;TYPE=cell:tel:+49-171-5556667\r
END:VCARD\r
BEGIN:VCARD\r
VERSION:4.0\r
FN:Freelancer Without Company\r
EMAIL:free@lancer.example\r
END:VCARD\r
"""


def test_vcard_3_and_4(tmp_path: Path) -> None:
    rows, errors = read_directory(_write(tmp_path, "c.vcf", VCARDS.encode()), "DE")
    assert [(e.line, e.field) for e in errors] == [(17, "ORG")]
    jana, tom = rows
    assert (jana.account, jana.contact) == ("Elbe Logistik GmbH", "Jana Ohlsen")
    # Gmail ignores dots in the local part, so the index stores the canonical form.
    assert jana.emails == ("j.ohlsen@elbe-logistik.de", "janaohlsen@gmail.com")
    assert jana.domains == ("elbe-logistik.de",), "free-mail domains never become account domains"
    assert jana.phones == ("+49403344556",)
    assert tom.phones == ("+491715556667",)
    assert tom.domains == ("isar-mb.de",)


def test_vcard_without_cards_is_rejected(tmp_path: Path) -> None:
    with pytest.raises(DirectoryFileError, match="no BEGIN:VCARD"):
        read_directory(_write(tmp_path, "c.vcf", b"hello\n"), "DE")


def test_short_rows_open_quotes_and_nul_bytes_are_rejected_by_line_and_field(
    tmp_path: Path,
) -> None:
    """Each used to import silently: as a company, as an account named after the rest of the
    file, as a name cut at the NUL. The good rows before and after still import."""
    path = _write(
        tmp_path,
        "d.csv",
        (
            HEADER
            + "Good GmbH,good.de,Eva Gut,eva@good.de,,\n"
            + "Short GmbH,short.de\n"
            + '"Open GmbH,open.de,Ina Auf,ina@open.de,,\n'
            + "After GmbH,after.de,Udo Nach,udo@after.de,,\n"
            + "Elbe Log\x00istik,elbe.de,,,,\n"
            + "Nul Mail GmbH,nul.de,Max,max@nul.de\x00x,,\n"
            + "Last GmbH,last.de,,,,\n"
        ).encode(),
    )
    rows, errors = read_directory(path, "DE")
    assert [(r.line, r.account) for r in rows] == [
        (2, "Good GmbH"),
        (5, "After GmbH"),
        (8, "Last GmbH"),
    ]
    assert rows[1].emails == ("udo@after.de",)
    assert [(e.line, e.field) for e in errors] == [
        (3, "row"),
        (4, "row"),
        (6, "account"),
        (7, "emails"),
    ]
    short, opened, nul_name, nul_mail = (e.message for e in errors)
    assert short.startswith("2 fields, the header has 6")
    assert opened.startswith("a quote is never closed: the field it opens runs to the end")
    assert "'\"Open GmbH,open.de,Ina Auf,ina@open.de,,'" in opened
    assert nul_name.startswith("a NUL byte (\\x00) after 'Elbe Log'")
    assert nul_mail.startswith("a NUL byte (\\x00) after 'max@nul.de'")


def test_an_unclosed_quote_in_a_semicolon_file_spares_the_rows_it_took_in(
    tmp_path: Path,
) -> None:
    text = (
        "account;domains;contact;emails;phones;owner\r\n"
        '"Offen AG;offen.de;;;;\r\n'
        'Müller KG;mueller.de;Jürgen;"jw@mueller.de;j.w@mueller.de";;\r\n'
    )
    rows, errors = read_directory(_write(tmp_path, "d.csv", text.encode("cp1252")), "DE")
    assert [(r.line, r.account, r.emails) for r in rows] == [
        (3, "Müller KG", ("jw@mueller.de", "j.w@mueller.de"))
    ]
    assert [(e.line, e.field) for e in errors] == [(2, "row")]


def test_vcard_nul_byte_names_its_line_and_property(tmp_path: Path) -> None:
    broken = VCARDS.replace("FN:Tom Rieger", "FN:Tom\x00 Rieger")
    rows, errors = read_directory(_write(tmp_path, "c.vcf", broken.encode()), "DE")
    assert [r.contact for r in rows] == ["Jana Ohlsen"]
    assert [(e.line, e.field) for e in errors] == [(12, "FN"), (17, "ORG")]
    assert errors[0].message.startswith("a NUL byte (\\x00) after 'Tom'")
