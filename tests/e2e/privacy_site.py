"""A site for the privacy tests: private mailboxes, a capped mailbox, a PBX nobody owns.

- sales@ourco.example owns the mailbox `sales-mail`: a customer mail from Jana Ohlsen (with an
  attachment and a tracking pixel), a personal mail from a doctor (attributed to nobody, so
  private), and an internal one.
- manager@ourco.example owns `manager-mail` with `visibility=subject`: a customer mail from
  Piet Brandt whose body nobody else may read.
- `pbx` is nobody's: a call from Piet (attributed), a call from a stranger (not attributed, so
  it exists for admins as metadata only), and one unreadable record (quarantined).
- A quarantined item of sales' own mailbox.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from hub.admin import add_connector, import_directory
from hub.bootstrap import build_hub
from hub.model import Quarantined, RawItem
from hub.pipeline import sync_all
from storage.ingest import Provenance
from storage.tables import (
    AccountRow,
    AttachmentRow,
    ContactRow,
    InteractionRow,
    QuarantineRow,
)
from storage.users import add_user
from tests.e2e.conftest import (
    DATA,
    PASSWORD,
    USERS,
    Server,
    _settings,
    _tokens,
    start_server,
    stop_server,
)

SALES, MANAGER = USERS["sales"], USERS["manager"]
CUSTOMER_WORD = "Steuerungsmodule"  # in the body of the customer mail only
PRIVATE_WORD = "Gesundheitskennwort"  # in the body of the doctor's mail only
CAPPED_WORD = "Rabattstaffel"  # in the body of the manager's capped customer mail only
PIXEL = "https://tracker.example/pixel.gif"


def _mail(key: str, sender: str, to: str, subject: str, day: int, text: str, html: str = "") -> str:
    head = (
        f"From x Mon Jan  8 09:00:00 2024\nFrom: {sender}\nTo: {to}\nSubject: {subject}\n"
        f"Date: {day:02d} Mar 2024 09:00:00 +0100\nMessage-ID: <{key}@privacy.test>\n"
        "MIME-Version: 1.0\n"
    )
    if not html:
        return head + f"Content-Type: text/plain; charset=utf-8\n\n{text}\n\n"
    return head + (
        'Content-Type: multipart/mixed; boundary="m"\n\n'
        '--m\nContent-Type: multipart/alternative; boundary="a"\n\n'
        f"--a\nContent-Type: text/plain; charset=utf-8\n\n{text}\n"
        f"--a\nContent-Type: text/html; charset=utf-8\n\n{html}\n--a--\n"
        "--m\nContent-Type: application/pdf\n"
        "Content-Disposition: attachment; filename*=UTF-8''Ma%C3%9Fblatt%20" + key + ".pdf\n"
        "Content-Transfer-Encoding: base64\n\nJVBERi0xLjQKJSBhdHRhY2htZW50Cg==\n--m--\n\n"
    )


SALES_MBOX = "".join(
    (
        _mail("customer", "Jana Ohlsen <j.ohlsen@elbe-logistik.de>", SALES,
              "Angebot Lager Nord", 1, f"Die {CUSTOMER_WORD} kommen am Montag.",
              f'<p>Die <b>{CUSTOMER_WORD}</b> kommen am Montag.</p><img src="{PIXEL}" alt="logo">'),
        _mail("doctor", "Praxis Dr. Weber <praxis@dr-weber.example>", SALES,
              "Ihr Befund", 2, f"Ihr Befund ist unauffällig. {PRIVATE_WORD}: 4711",
              f"<p>Ihr Befund ist unauffällig. {PRIVATE_WORD}: 4711</p>"),
        _mail("internal", "Sales <sales@ourco.example>", "Tom <tom@ourco.example>",
              "Mittagessen", 3, "Um zwölf?"),
    )
)  # fmt: skip
MANAGER_MBOX = _mail(
    "capped", "Piet Brandt <piet.brandt@gmail.com>", MANAGER, "Rahmenvertrag Nord", 4,
    f"Vertraulich: {CAPPED_WORD} wie besprochen.",
)  # fmt: skip
STRANGER_CDR = (
    '"","0301234567","201","from-trunk","""Fremd"" <0301234567>","PJSIP/t-1","PJSIP/201-1",'
    '"Dial","PJSIP/201,30","2024-03-05 10:00:00","2024-03-05 10:00:05","2024-03-05 10:01:05",'
    '65,60,"ANSWERED","DOCUMENTATION","1709629200.7",""\n'
)
BROKEN_CDR = "this,row,is,not,a,call,record\n"


@dataclass
class PrivacyIds:
    """Ids of the seeded records the tests name."""

    customer: int  # attributed mail in sales' mailbox, with an attachment
    private: int  # the doctor's mail: sales' alone
    internal: int  # internal mail in sales' mailbox: sales' alone
    capped: int  # attributed mail in the manager's mailbox, capped at subject
    piet_call: int  # attributed call from the PBX
    stranger_call: int  # unattributed call from the PBX: admins see its metadata
    customer_attachment: int
    private_attachment: int
    own_quarantined: int  # quarantined in sales' mailbox
    pbx_quarantined: int  # quarantined in the PBX
    elbe: int  # the account of Jana and Piet
    jana: int
    piet: int


async def _seed(database_url: str, workdir: Path) -> tuple[PrivacyIds, dict[str, str]]:
    (workdir / "sales.mbox").write_text(SALES_MBOX, encoding="utf-8")
    (workdir / "manager.mbox").write_text(MANAGER_MBOX, encoding="utf-8")
    cdr = (DATA / "Master.csv").read_text(encoding="utf-8") + STRANGER_CDR + BROKEN_CDR
    (workdir / "Master.csv").write_text(cdr, encoding="utf-8")
    hub = build_hub(_settings(database_url))
    try:
        assert not (await import_directory(hub, DATA / "directory.csv")).errors
        for kind, name, settings in (
            ("mbox", "sales-mail", {"path": str(workdir / "sales.mbox"), "owner": SALES}),
            (
                "mbox",
                "manager-mail",
                {"path": str(workdir / "manager.mbox"), "owner": MANAGER, "visibility": "subject"},
            ),
            ("asterisk-cdr", "pbx", {"path": str(workdir / "Master.csv")}),
        ):
            await add_connector(hub, kind, name, settings, {})
        reports = await sync_all(hub)
        assert all(not r.errors for r in reports), [r.error for r in reports]
        broken = Quarantined(RawItem("upload-1", b"\x89PNG not a mail"), "not a mail")
        await hub.store.ingest("sales-upload", [], [broken], {}, Provenance(SALES))
        async with hub.sessions() as session, session.begin():
            for role, email in USERS.items():
                await add_user(session, email, role, PASSWORD)
        async with hub.sessions() as session:
            ids = await _ids(session)
        return ids, await _tokens(hub)
    finally:
        await hub.close()


async def _ids(session: AsyncSession) -> PrivacyIds:
    rows = list((await session.execute(select(InteractionRow))).scalars())
    by_mid = {(r.message_id or "").strip("<>").removesuffix("@privacy.test"): r for r in rows}
    calls = sorted((r for r in rows if r.channel == "call"), key=lambda r: r.occurred_at)
    attachments = {
        a.interaction_id: a.id for a in (await session.execute(select(AttachmentRow))).scalars()
    }
    quarantined = {
        q.connector: q.id for q in (await session.execute(select(QuarantineRow))).scalars()
    }
    accounts = {a.name: a.id for a in (await session.execute(select(AccountRow))).scalars()}
    contacts = {c.name: c.id for c in (await session.execute(select(ContactRow))).scalars()}
    return PrivacyIds(
        customer=by_mid["customer"].id,
        private=by_mid["doctor"].id,
        internal=by_mid["internal"].id,
        capped=by_mid["capped"].id,
        piet_call=calls[0].id,
        stranger_call=calls[1].id,
        customer_attachment=attachments[by_mid["customer"].id],
        private_attachment=attachments[by_mid["doctor"].id],
        own_quarantined=quarantined["sales-upload"],
        pbx_quarantined=quarantined["pbx"],
        elbe=accounts["Elbe Logistik GmbH"],
        jana=contacts["Jana Ohlsen"],
        piet=contacts["Piet Brandt"],
    )


def seed_privacy(database_url: str, workdir: Path) -> tuple[PrivacyIds, dict[str, str]]:
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, _seed(database_url, workdir)).result()


@dataclass
class PrivacySite:
    server: Server
    database_url: str
    ids: PrivacyIds
    tokens: dict[str, str]  # by role

    @property
    def url(self) -> str:
        return self.server.url

    def api(self, role: str | None) -> httpx.Client:
        """A client with the role's bearer token (None: anonymous)."""
        headers = {"Authorization": f"Bearer {self.tokens[role]}"} if role else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=20)


@pytest.fixture(scope="module")
def privacy_site(
    module_database_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[PrivacySite]:
    workdir = tmp_path_factory.mktemp("privacy")
    ids, tokens = seed_privacy(module_database_url, workdir)
    server = start_server(module_database_url, workdir)
    try:
        yield PrivacySite(server, module_database_url, ids, tokens)
    finally:
        stop_server(server)
    assert "Traceback" not in server.output(), f"the server failed a request:\n{server.output()}"
