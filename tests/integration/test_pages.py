"""The interaction page shows a mail's HTML, read from the stored raw message and sanitised.

Storage keeps no HTML bodies (migration 0004); this proves the page still shows them, and that
nothing a sender wrote can run in the viewer's browser. SQLite, or PostgreSQL in CI.
"""

from __future__ import annotations

import re
from pathlib import Path

from sqlalchemy import select

from hub.admin import add_connector
from hub.bootstrap import Hub
from hub.pipeline import sync_all
from storage.tables import InteractionRow
from tests.integration.conftest import logged_in

MBOX = (
    "From x Mon Jan  8 09:00:00 2024\n"
    "From: Jana Ohlsen <j.ohlsen@elbe-logistik.de>\nTo: anna@ourco.example\n"
    "Subject: Angebot\nDate: Mon, 8 Jan 2024 09:00:00 +0100\nMessage-ID: <html-1@test>\n"
    'MIME-Version: 1.0\nContent-Type: multipart/alternative; boundary="b"\n\n'
    "--b\nContent-Type: text/plain; charset=utf-8\n\nDer Preis für 400 Paletten.\n"
    "--b\nContent-Type: text/html; charset=iso-8859-1\n"
    "Content-Transfer-Encoding: quoted-printable\n\n"
    '<p onclick=3D"steal()">Der <b>Preis</b> f=FCr 400 Paletten.</p>'
    '<script>steal()</script><a href=3D"javascript:steal()">Link</a>\n'
    "--b--\n\n"
)


async def test_the_interaction_page_shows_the_sanitised_html_of_the_raw_mail(
    hub: Hub, tmp_path: Path
) -> None:
    (tmp_path / "mail.mbox").write_text(MBOX, encoding="utf-8")
    mailbox = {"path": str(tmp_path / "mail.mbox"), "owner": "lea@ourco.example"}
    await add_connector(hub, "mbox", "mail", mailbox, {})
    [report] = await sync_all(hub)
    assert (report.new, report.quarantined, report.error) == (1, 0, "")
    async with hub.sessions() as session:
        mail_id = (
            await session.execute(
                select(InteractionRow.id).where(InteractionRow.message_id == "<html-1@test>")
            )
        ).scalar_one()
    async with logged_in(hub, "lea@ourco.example") as browser:
        page = (await browser.get(f"/interactions/{mail_id}")).text
    content = re.search(r'<div class="mail">(.*?)</div>', page, flags=re.S)
    assert content is not None, page
    assert "Der <b>Preis</b> für 400 Paletten." in content.group(1), "HTML part, from latin-1"
    for unsafe in ("<script", "onclick", "javascript:", "steal()"):
        assert unsafe not in content.group(1)


THREAD = "".join(
    f"From x Mon Jan  {8 + n} 09:00:00 2024\n"
    f"From: {sender}\nTo: {to}\nSubject: {'Re: ' if n else ''}Paletten\n"
    f"Date: Mon, {8 + n} Jan 2024 09:00:00 +0100\nMessage-ID: <t{n}@test>\n"
    + (
        f"In-Reply-To: <t{n - 1}@test>\nReferences: {' '.join(f'<t{i}@test>' for i in range(n))}\n"
        if n
        else ""
    )
    + f"\nNachricht {n} im Faden.\n\n"
    for n, (sender, to) in enumerate(
        [
            ("Jana Ohlsen <j.ohlsen@elbe-logistik.de>", "lea@ourco.example"),
            ("Lea <lea@ourco.example>", "j.ohlsen@elbe-logistik.de"),
            ("Jana Ohlsen <j.ohlsen@elbe-logistik.de>", "lea@ourco.example"),
        ]
    )
)


async def test_a_mails_page_shows_its_whole_thread_and_a_reply_threads_on(
    hub: Hub, tmp_path: Path
) -> None:
    from hub.model import Disclosure, ReadScope
    from storage import queries

    (tmp_path / "mail.mbox").write_text(THREAD, encoding="utf-8")
    mailbox = {"path": str(tmp_path / "mail.mbox"), "owner": "lea@ourco.example"}
    await add_connector(hub, "mbox", "mail", mailbox, {})
    [report] = await sync_all(hub)
    assert report.new == 3
    async with hub.sessions() as session:
        last = (
            await session.execute(
                select(InteractionRow.id).where(InteractionRow.message_id == "<t2@test>")
            )
        ).scalar_one()
        lea = ReadScope("lea@ourco.example", Disclosure.FULL, Disclosure.NONE)
        stranger = ReadScope("tom@ourco.example", Disclosure.NONE, Disclosure.NONE)
        assert await queries.references_of(session, lea, "<t2@test>") == [
            "<t0@test>",
            "<t1@test>",
            "<t2@test>",
        ]
        assert await queries.references_of(session, stranger, "<t2@test>") == ["<t2@test>"]
    async with logged_in(hub, "lea@ourco.example") as browser:
        page = (await browser.get(f"/interactions/{last}")).text
    assert "The whole thread (3)" in page
    assert "Nachricht 0 im Faden." in page and "Nachricht 1 im Faden." in page


async def test_each_user_reads_times_in_their_own_zone(hub: Hub, tmp_path: Path) -> None:
    """Settings: a user picks a zone; their pages show times in it and say so, an unknown zone
    is refused, and other users keep the configured one."""
    (tmp_path / "mail.mbox").write_text(MBOX, encoding="utf-8")
    await add_connector(
        hub, "mbox", "mail", {"path": str(tmp_path / "mail.mbox"), "owner": "lea@ourco.example"}, {}
    )
    await sync_all(hub)
    async with hub.sessions() as session:
        mail_id = (await session.execute(select(InteractionRow.id))).scalar_one()
    configured = hub.settings.timezone
    async with logged_in(hub, "lea@ourco.example") as browser:
        before = (await browser.get(f"/interactions/{mail_id}")).text
        assert f"Times are in {configured}." in before
        form = (await browser.get("/settings")).text
        csrf = re.search(r'name="csrf" value="([^"]+)"', form)
        assert csrf is not None and "America/New_York" in form
        wrong = await browser.post(
            "/settings", data={"csrf": csrf.group(1), "timezone": "Mars/Olympus"}
        )
        assert wrong.status_code == 422 and "not a time zone" in wrong.text
        saved = await browser.post(
            "/settings", data={"csrf": csrf.group(1), "timezone": "America/New_York"}
        )
        assert (
            saved.status_code == 200
            and "Saved: times are now shown in America/New_York" in saved.text
        )
        after = (await browser.get(f"/interactions/{mail_id}")).text
        assert "Times are in America/New_York." in after
        assert "2024-01-08 03:00 EST" in after, "09:00 +0100 is 03:00 in New York"
    async with logged_in(hub, "tom@ourco.example", "admin") as other:
        assert f"Times are in {configured}." in (await other.get("/settings")).text


async def test_contact_titles_come_from_the_directory_file(hub: Hub, tmp_path: Path) -> None:
    from hub.admin import import_directory

    (tmp_path / "d.csv").write_text(
        "account,domains,contact,emails,phones,owner,title\n"
        "Elbe Logistik GmbH,elbe-logistik.de,Jana Ohlsen,j.ohlsen@elbe-logistik.de,"
        "040 3344556,,Leiterin Einkauf\n",
        encoding="utf-8",
    )
    (tmp_path / "cards.vcf").write_text(
        "BEGIN:VCARD\r\nVERSION:3.0\r\nFN:Piet Brandt\r\nORG:Elbe Logistik GmbH\r\n"
        "TITLE:Disponent\r\nEMAIL:p.brandt@elbe-logistik.de\r\nEND:VCARD\r\n",
        encoding="utf-8",
    )
    await import_directory(hub, tmp_path / "d.csv")
    await import_directory(hub, tmp_path / "cards.vcf")
    async with logged_in(hub, "lea@ourco.example") as browser:
        page = (await browser.get("/accounts/1")).text
    assert re.search(r"Jana Ohlsen</a> <span class=\"muted title\">Leiterin Einkauf</span>", page)
    assert re.search(r"Piet Brandt</a> <span class=\"muted title\">Disponent</span>", page)
    assert 'href="tel:+49403344556"' in page
