"""One person's traces, stored through the real pipeline: the fixture of the privacy tests.

Jane Roe is a contact of two accounts (one address on two contacts: a review question). She
writes a mail with an attachment, is copied with a customer on another mail, calls from her
number, and appears in an unreadable mbox entry (quarantined). Every string that identifies
her, or that only her items contain, is in NEEDLES: after an erasure none may be found.
"""

from __future__ import annotations

from pathlib import Path

from hub.admin import add_connector
from hub.bootstrap import Hub
from hub.model import Account, Contact
from hub.pipeline import SyncReport, sync_all
from storage.directory import upsert_directory

ADDRESS = "jane.roe@praxis-example.de"
E164 = "+4951168900756"
WRITTEN = "0511 68900756"
NAME = "Jane Roe"
BODY_PHRASE = "quokka marmalade 7731"
ATTACHMENT_PHRASE = "pangolin ledger 4412"
NEEDLES = (ADDRESS, E164, WRITTEN, NAME, BODY_PHRASE, ATTACHMENT_PHRASE)
OTHER_PHRASE = "unrelated wombat order"

MBOX = f"""From MAILER-DAEMON Mon Jan  8 09:00:00 2024
From: {NAME} <{ADDRESS}>
To: Anna <anna@ourco.example>
Subject: Befund fuer {NAME}
Date: Mon, 8 Jan 2024 09:00:00 +0100
Message-ID: <p1@praxis-example.de>
MIME-Version: 1.0
Content-Type: multipart/mixed; boundary="b1"

--b1
Content-Type: text/plain; charset=utf-8

Guten Tag, {BODY_PHRASE}. Regards, {NAME}
--b1
Content-Type: text/plain; charset=utf-8
Content-Disposition: attachment; filename="befund.txt"

Laborwerte: {ATTACHMENT_PHRASE}
--b1--

From MAILER-DAEMON Mon Jan  8 10:00:00 2024
From: Buyer <buyer@acme.example>
To: anna@ourco.example
Cc: {NAME} <{ADDRESS}>
Subject: Referral of {NAME}
Date: Mon, 8 Jan 2024 10:00:00 +0100
Message-ID: <a1@acme.example>

Anna, please see {NAME} ({WRITTEN}) about the {BODY_PHRASE}.

From MAILER-DAEMON Mon Jan  8 11:00:00 2024
From: Buyer <buyer@acme.example>
To: anna@ourco.example
Subject: Order 17
Date: Mon, 8 Jan 2024 11:00:00 +0100
Message-ID: <a2@acme.example>

An {OTHER_PHRASE}.

From MAILER-DAEMON Mon Jan  8 12:00:00 2024
X-Garbled: {NAME} <{ADDRESS}>

not a mail at all, {BODY_PHRASE}
"""

CDR = (
    f'"","{WRITTEN}","201","from-trunk","""{NAME}"" <{WRITTEN}>","PJSIP/t-1","PJSIP/201-1",'
    '"Dial","PJSIP/201,30","2024-01-09 14:00:00","2024-01-09 14:00:05","2024-01-09 14:03:05",'
    '185,180,"ANSWERED","DOCUMENTATION","1704808800.7",""\n'
    '"","01712233445","202","from-trunk","""Piet"" <01712233445>","PJSIP/t-1","PJSIP/202-1",'
    '"Dial","PJSIP/202,30","2024-01-09 15:00:00","2024-01-09 15:00:05","2024-01-09 15:01:05",'
    '65,60,"ANSWERED","DOCUMENTATION","1704812400.8",""\n'
)


async def store_person(hub: Hub, folder: Path) -> dict[str, SyncReport]:
    """Directory, mbox and CDR connectors ("mail", "calls"), synced once."""
    jane = Contact(NAME, None, (ADDRESS,), (E164,))
    entries = [
        (Account("Praxis Dr. R.", ("praxis-example.de",)), jane),
        (Account("Klinik Nord", ("klinik-nord.example",)), jane),
        (Account("Acme", ("acme.example",)), None),
    ]
    async with hub.sessions() as session, session.begin():
        await upsert_directory(session, entries)
    (folder / "mail.mbox").write_text(MBOX, encoding="utf-8")
    (folder / "Master.csv").write_text(CDR, encoding="utf-8")
    await add_connector(hub, "mbox", "mail", {"path": str(folder / "mail.mbox")}, {})
    await add_connector(hub, "asterisk-cdr", "calls", {"path": str(folder / "Master.csv")}, {})
    reports = {r.connector: r for r in await sync_all(hub)}
    assert (reports["mail"].new, reports["mail"].quarantined, reports["calls"].new) == (3, 1, 2)
    return reports
