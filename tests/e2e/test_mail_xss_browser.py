"""Hostile mail in a real headless Chromium: no script runs, nothing remote is fetched.

A corpus of HTML mails, each carrying one well-known way to run script or to load something
from elsewhere (a tracking pixel tells the sender when and where a mail was read), is logged
through the real pipeline and each mail's page is opened as its owner reads it. Counted per
page: dialogs, marks the payloads would set, requests to any host but crmhub's, and violations
the Content-Security-Policy had to stop. The sanitiser alone must keep everything out, so even a
stopped attempt (a CSP violation) fails the test: the CSP is the second line, not the first.
"""

from __future__ import annotations

import asyncio
import base64
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Request
from sqlalchemy import select

from hub.admin import add_connector
from hub.bootstrap import build_hub
from hub.pipeline import sync_all
from storage.tables import InteractionRow
from storage.users import add_user
from tests.e2e.conftest import PASSWORD, Server, _settings, start_server, stop_server
from tests.e2e.test_browser import log_in

pytestmark = pytest.mark.browser
OWNER = "reader@ourco.example"
EVIL = "http://evil.test"
MARK = "window.__xss=(window.__xss||0)+1"

# One payload per mail. Remote loads point at EVIL, scripts set window.__xss or alert.
CORPUS = [
    f"<script>{MARK}</script>",
    f'<img src="x" onerror="{MARK}">',
    f'<svg onload="{MARK}"><circle r="1"/></svg>',
    f"<svg><script>{MARK}</script></svg>",
    f'<iframe srcdoc="<script>parent.{MARK}</script>"></iframe>',
    f'<iframe src="{EVIL}/frame"></iframe>',
    f'<a href="javascript:{MARK}" id="j">click</a>',
    f'<a href="JaVaScRiPt:{MARK}">mixed case</a>',
    f'<a href="&#106;avascript:{MARK}">entities</a>',
    f'<a href="data:text/html,<script>{MARK}</script>">data</a>',
    f'<body onload="{MARK}">',
    f'<details open ontoggle="{MARK}">x</details>',
    f'<input autofocus onfocus="{MARK}">',
    f'<math><mi xlink:href="javascript:{MARK}">m</mi></math>',
    f'<form action="javascript:{MARK}"><button>go</button></form>',
    f'<object data="{EVIL}/object"></object>',
    f'<embed src="{EVIL}/embed">',
    f'<meta http-equiv="refresh" content="0;url={EVIL}/refresh">',
    f'<base href="{EVIL}/"><img src="relative.png">',
    f'<link rel="stylesheet" href="{EVIL}/style.css">',
    f"<style>@import url({EVIL}/import.css); body {{ background: url({EVIL}/bg.png) }}</style>",
    f'<div style="background-image: url({EVIL}/inline.png)">styled</div>',
    f'<img src="{EVIL}/pixel.gif" width="1" height="1">',
    f'<img srcset="{EVIL}/srcset.png 1x">',
    f'<picture><source srcset="{EVIL}/source.png"><img src="x.png"></picture>',
    f'<video poster="{EVIL}/poster.png" src="{EVIL}/video.mp4"></video>',
    f'<audio src="{EVIL}/audio.mp3" autoplay></audio>',
    f'<table background="{EVIL}/table.png"><tr><td background="{EVIL}/td.png">t</td></tr></table>',
    f'<input type="image" src="{EVIL}/input.png">',
    f'<svg><image href="{EVIL}/svg-image.png"/></svg>',
    f'<svg><use href="{EVIL}/sprite.svg#a"/></svg>',
    f"<svg><p><style><img src=x onerror={MARK}></style></p></svg>",
    f'<noscript><p title="</noscript><img src=x onerror={MARK}>"></noscript>',
    f"<math><style><img src=x onerror={MARK}></style></math>",
    f'<a href="{EVIL}/ping" ping="{EVIL}/ping-target">ping</a>',
    f"<template><script>{MARK}</script></template>",
    '<img src="x" onerror="alert(1)">',
    '<iframe src="data:text/html;base64,'
    + base64.b64encode(b"<script>alert(1)</script>").decode()
    + '"></iframe>',
]


def _mail(n: int, html: str) -> str:
    body = base64.encodebytes(f"<html><body><p>Payload {n}</p>{html}</body></html>".encode())
    return (
        f"From x Mon Jan  8 09:00:00 2024\nFrom: Attacker <a@evil.test>\nTo: {OWNER}\n"
        f"Subject: Payload {n}\nDate: Mon, 8 Jan 2024 09:{n:02d}:00 +0100\n"
        f"Message-ID: <xss-{n}@evil.test>\nMIME-Version: 1.0\n"
        'Content-Type: multipart/alternative; boundary="b"\n\n'
        f"--b\nContent-Type: text/plain; charset=utf-8\n\nPayload {n}\n"
        "--b\nContent-Type: text/html; charset=utf-8\nContent-Transfer-Encoding: base64\n\n"
        f"{body.decode()}"
        "--b--\n\n"
    )


async def _seed(database_url: str, workdir: Path) -> list[int]:
    (workdir / "xss.mbox").write_text(
        "".join(_mail(n, html) for n, html in enumerate(CORPUS)), encoding="utf-8"
    )
    hub = build_hub(_settings(database_url))
    try:
        mailbox = {"path": str(workdir / "xss.mbox"), "owner": OWNER}
        await add_connector(hub, "mbox", "xss", mailbox, {})
        [report] = await sync_all(hub)
        assert (report.new, report.quarantined, report.error) == (len(CORPUS), 0, "")
        async with hub.sessions() as session, session.begin():
            await add_user(session, OWNER, "sales", PASSWORD)
        async with hub.sessions() as session:
            rows = await session.execute(select(InteractionRow.id).order_by(InteractionRow.id))
            return list(rows.scalars())
    finally:
        await hub.close()


@pytest.fixture(scope="module")
def hostile_site(
    module_database_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Server, list[int]]]:
    workdir = tmp_path_factory.mktemp("xss")
    with ThreadPoolExecutor(1) as pool:
        ids = pool.submit(asyncio.run, _seed(module_database_url, workdir)).result()
    server = start_server(module_database_url, workdir)
    try:
        yield server, ids
    finally:
        stop_server(server)


WATCH = """
window.__violations = [];
document.addEventListener('securitypolicyviolation',
    e => window.__violations.push(e.violatedDirective + ' ' + e.blockedURI));
"""


def test_no_mail_runs_script_or_fetches_anything_remote(
    browser: Browser, hostile_site: tuple[Server, list[int]]
) -> None:
    server, ids = hostile_site
    context = browser.new_context(base_url=server.url)
    context.set_default_timeout(10_000)
    context.add_init_script(WATCH)
    remote: list[str] = []
    dialogs: list[str] = []

    def note(request: Request) -> None:
        if not request.url.startswith(server.url) and not request.url.startswith("data:"):
            remote.append(request.url)

    context.on("request", note)
    page = context.new_page()
    page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
    log_in(page, OWNER, PASSWORD, start=f"/interactions/{ids[0]}")
    findings: dict[int, tuple[int, list[str]]] = {}
    for n, interaction_id in enumerate(ids):
        page.goto(f"/interactions/{interaction_id}")
        page.get_by_text(f"Payload {n}").first.wait_for()
        page.wait_for_timeout(100)
        marks = int(page.evaluate("window.__xss || 0"))
        violations = list(page.evaluate("window.__violations"))
        # A link a reader might click must not be script either.
        scripted = page.evaluate(
            "[...document.querySelectorAll('.mail [href], .mail [action], .mail [ping]')]"
            ".map(e => e.getAttribute('href') || e.getAttribute('action') || 'ping')"
            ".filter(v => !/^(https?:|mailto:|#)/i.test(v.trim()))"
        )
        if marks or violations or scripted:
            findings[n] = (marks, [*violations, *scripted])
    context.close()
    assert dialogs == [], dialogs
    assert remote == [], remote
    assert findings == {}, {CORPUS[n]: found for n, found in findings.items()}
