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
