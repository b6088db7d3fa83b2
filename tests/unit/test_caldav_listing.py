"""Reading a sync-collection answer (connectors/caldav_listing.py) in the shapes servers send
that Radicale does not: a member without its data, a removed one listed again with an ETag
(Cyrus), the calendar itself in the answer (iCloud), a truncated answer (RFC 6578 3.6). The
answers Radicale gives are read against the library's own calendar-multiget in
tests/integration/test_caldav.py."""

from __future__ import annotations

import pytest
from caldav.lib import error as dav_error
from lxml import etree

from connectors.caldav_listing import Listing, _by_token, _read_page

OWN = "/dav/anna/work"
EVENT = (
    "BEGIN:VCALENDAR\nBEGIN:VEVENT\nUID:a@x\nDTSTART:20250101T100000Z\nEND:VEVENT\nEND:VCALENDAR\n"
)


def _answer(*responses: str, token: str = "tok-2") -> etree._Element:
    body = (
        '<D:multistatus xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:ns:caldav">'
        + "".join(responses)
        + f"<D:sync-token>{token}</D:sync-token></D:multistatus>"
    )
    return etree.fromstring(body.encode())


def _member(href: str, etag: str = "", data: str = "", status: str = "") -> str:
    props = (f"<D:getetag>{etag}</D:getetag>" if etag else "") + (
        f"<C:calendar-data>{data}</C:calendar-data>" if data else ""
    )
    propstat = (
        f"<D:propstat><D:prop>{props}</D:prop><D:status>HTTP/1.1 200 OK</D:status></D:propstat>"
        if props
        else ""
    )
    missing = (
        "<D:propstat><D:prop><C:calendar-data/></D:prop>"
        "<D:status>HTTP/1.1 404 Not Found</D:status></D:propstat>"
        if etag and not data
        else ""
    )
    own_status = f"<D:status>HTTP/1.1 {status}</D:status>" if status else ""
    return f"<D:response><D:href>{href}</D:href>{own_status}{propstat}{missing}</D:response>"


def test_changed_removed_and_dataless_members() -> None:
    listing = Listing()
    token, truncated = _read_page(
        _answer(
            _member(f"{OWN}/", etag='"c"'),  # the calendar itself, as iCloud lists it
            _member(f"{OWN}/a%40x.ics", etag='"1"', data=EVENT),
            _member(f"{OWN}/b.ics", etag='"2"'),  # its data answered 404: fetched by multiget
            _member(f"{OWN}/gone.ics", status="404 Not Found"),
            _member(f"{OWN}/cyrus.ics", status="404 Not Found"),
            _member(f"{OWN}/cyrus.ics", etag='"3"', data=EVENT),
        ),
        OWN,
        listing,
    )
    assert (token, truncated) == ("tok-2", False)
    assert listing.changed == {"a@x.ics": '"1"', "b.ics": '"2"', "cyrus.ics": '"3"'}
    assert listing.deleted == {"gone.ics"}
    assert set(listing.data) == {"a@x.ics", "cyrus.ics"}
    assert "DTSTAMP:" in listing.data["a@x.ics"], "the library's repairs, as its objects get"


def test_a_later_page_wins() -> None:
    listing = Listing()
    _read_page(_answer(_member(f"{OWN}/a.ics", etag='"1"', data=EVENT)), OWN, listing)
    _read_page(_answer(_member(f"{OWN}/a.ics", status="404 Not Found")), OWN, listing)
    assert (listing.changed, listing.deleted, listing.data) == ({}, {"a.ics"}, {})


def test_a_truncated_answer_is_marked_and_a_bad_member_raises() -> None:
    listing = Listing()
    mark = _member(f"{OWN}/", status="507 Insufficient Storage")
    assert _read_page(_answer(mark, token="tok-3"), OWN, listing) == ("tok-3", True)
    with pytest.raises(dav_error.ResponseError, match="507"):
        _read_page(
            _answer(_member(f"{OWN}/x.ics", status="507 Insufficient Storage")), OWN, listing
        )


class _Answer:
    def __init__(self, tree: etree._Element) -> None:
        self.status, self.tree = 207, tree


class _Server:
    """A CalDAV client that answers sync-collection REPORTs from a list of pages, recording
    the token each request asked from: the follow-up loop of RFC 6578 3.6 without a server
    that truncates (Radicale never does)."""

    def __init__(self, *pages: etree._Element) -> None:
        self.pages, self.asked = list(pages), []

    def report(self, url: str, body: str, depth: int) -> _Answer:
        self.asked.append(etree.fromstring(body.encode()).findtext("{DAV:}sync-token"))
        return _Answer(self.pages.pop(0))


class _Calendar:
    def __init__(self, client: _Server) -> None:
        self.client, self.url = client, f"https://dav.example{OWN}/"


def test_a_truncated_answer_is_followed_from_its_token_until_complete() -> None:
    mark = _member(f"{OWN}/", status="507 Insufficient Storage")
    server = _Server(
        _answer(_member(f"{OWN}/a.ics", '"1"', EVENT), mark, token="page-1"),
        _answer(_member(f"{OWN}/b.ics", '"2"', EVENT), mark, token="page-2"),
        _answer(_member(f"{OWN}/a.ics", status="404 Not Found"), token="done"),
    )
    listing = _by_token(_Calendar(server), {}, "old")  # type: ignore[arg-type]
    assert server.asked == ["old", "page-1", "page-2"]
    assert listing.state == {"mode": "sync", "token": "done"}
    assert listing.changed == {"b.ics": '"2"'} and listing.deleted == {"a.ics"}
    assert set(listing.data) == {"b.ics"}


def test_a_truncated_answer_without_a_new_token_ends_the_loop() -> None:
    mark = _member(f"{OWN}/", status="507 Insufficient Storage")
    server = _Server(_answer(_member(f"{OWN}/a.ics", '"1"', EVENT), mark, token="old"))
    listing = _by_token(_Calendar(server), {}, "old")  # type: ignore[arg-type]
    assert server.asked == ["old"] and server.pages == []
    assert listing.changed == {"a.ics": '"1"'} and listing.state["token"] == "old"
