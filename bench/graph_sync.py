"""Initial Microsoft 365 sync over Graph: the m365 connector against a bare httpx client.

    .venv/bin/python bench/graph_sync.py [--messages 10000] [--rounds 3] [--no-pipeline]

Fills the Graph fake of the tests (tests/graph_fake.py, HTTPS on 127.0.0.1, run in a child
process so that its threads do not share this process's GIL) with one mailbox: `--messages`
mails of 2-12 KB in the inbox and 20 in Sent Items. Then, in interleaved rounds, times:
- bare: a bare `httpx.AsyncClient` (the same HTTP/1.1 keep-alive pool and TLS) walking the
  same delta pages (100 a page) and GETting every `$value`, 20 at a time: the floor;
- crmhub ($batch): `M365Connector.raw_batches` over the same data, MIME through `$batch`;
- crmhub (single): the same with one GET per `$value`, 20 at a time, as the bare client.
and prints best and median times and the median of each round's ratio to bare (the target:
at most 1.5). Then the full `crmhub sync` pipeline in this process into SQLite (fetch, translate
in worker processes, match, store), and a no-change re-sync: the connector alone and the
whole pipeline, per folder, in ms (the target: under 100 ms a folder). Machines here are shared:
read the ratios of one round, not best against best.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import multiprocessing
import random
import statistics
import sys
import tempfile
import time
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from connectors.m365 import M365Connector  # noqa: E402

MAILBOX = "anna@ourco.example"
WORDS = (
    "Angebot Lieferung Rechnung Termin Bestellung Größe Übergabe Prüfung Maße Grüße quote "
    "delivery invoice schedule meeting order spare parts contract maintenance Köln"
).split()
PARALLEL = 20


def _mail(rng: random.Random, n: int, sent: bool = False) -> bytes:
    body = " ".join(rng.choice(WORDS) for _ in range(rng.randint(250, 1500)))
    sender, to = ("anna@ourco.example", f"k{n % 300}@kunde{n % 40}.example")
    if not sent:
        sender, to = to, sender
    return (
        f"From: <{sender}>\r\nTo: <{to}>\r\nSubject: Anfrage {n}\r\n"
        f"Message-ID: <bench{n}@kunde.example>\r\n"
        f"Date: Mon, 8 Jan 2024 09:{n % 60:02d}:00 +0100\r\n"
        "MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n"
        f"Content-Transfer-Encoding: 8bit\r\n\r\n{body}\r\n"
    ).encode()


def _serve(messages: int, directory: str, pipe: Connection) -> None:
    from tests.graph_fake import start_graph_fake

    rng = random.Random(7)
    with start_graph_fake(Path(directory)) as fake:
        fake.state.add_mailbox(MAILBOX)
        for n in range(messages):
            fake.state.add_message(MAILBOX, _mail(rng, n))
        for n in range(messages, messages + 20):
            fake.state.add_message(MAILBOX, _mail(rng, n, sent=True), "sentitems")
        fake.state.log_requests = False
        pipe.send((fake.settings(mailboxes=MAILBOX, calendar="off"), fake.secrets))
        pipe.recv()  # until the parent is done


async def _bare(
    settings: dict[str, str], secrets: dict[str, str], use_batch: bool
) -> tuple[int, int]:
    """The floor: token, delta pages, every $value (one GET each, or 20 to a $batch);
    nothing parsed or kept."""
    import ssl

    verify = ssl.create_default_context(cafile=settings["ca_file"])
    count = size = 0
    async with httpx.AsyncClient(verify=verify, timeout=60) as client:
        form = {
            "client_id": settings["client_id"],
            "client_secret": secrets["client_secret"],
            "grant_type": "client_credentials",
            "scope": settings["graph_url"] + "/.default",
        }
        token_url = f"{settings['authority_url']}/{settings['tenant_id']}/oauth2/v2.0/token"
        token = (await client.post(token_url, data=form)).json()["access_token"]
        headers = {"Authorization": f"Bearer {token}", "Prefer": "odata.maxpagesize=100"}
        api = settings["graph_url"] + "/v1.0/users/" + MAILBOX
        limit = asyncio.Semaphore(PARALLEL)

        async def body(ident: str) -> int:
            async with limit:
                response = await client.get(f"{api}/messages/{ident}/$value", headers=headers)
                response.raise_for_status()
                return len(response.content)

        async def batch(ids: list[str]) -> int:
            async with limit:
                requests = [
                    {"id": str(n), "method": "GET", "url": f"/users/{MAILBOX}/messages/{i}/$value"}
                    for n, i in enumerate(ids)
                ]
                response = await client.post(
                    settings["graph_url"] + "/v1.0/$batch",
                    json={"requests": requests},
                    headers=headers,
                )
                response.raise_for_status()
                answers = response.json()["responses"]
                return sum(len(base64.b64decode(a["body"])) for a in answers)

        for folder in ("inbox", "sentitems"):
            url: str | None = f"{api}/mailFolders/{folder}/messages/delta?$select=id"
            while url:
                page = (await client.get(url, headers=headers)).json()
                ids = [m["id"] for m in page["value"] if "@removed" not in m]
                if use_batch:
                    chunks = [ids[i : i + 20] for i in range(0, len(ids), 20)]
                    size += sum(await asyncio.gather(*(batch(c) for c in chunks)))
                else:
                    size += sum(await asyncio.gather(*(body(i) for i in ids)))
                count += len(ids)
                url = page.get("@odata.nextLink")
    return count, size


async def _crmhub(
    settings: dict[str, str], secrets: dict[str, str], use_batch: bool, cursor: dict[str, Any]
) -> tuple[int, dict[str, Any]]:
    connector = M365Connector("bench", settings, secrets)
    connector.use_batch = use_batch
    count = 0
    last = cursor
    async for raws, after in connector.raw_batches(cursor):
        count, last = count + len(raws), after
    return count, last


def _timed(work: Any) -> tuple[float, Any]:
    started = time.perf_counter()
    result = asyncio.run(work)
    return time.perf_counter() - started, result


async def _pipeline(
    settings: dict[str, str], secrets: dict[str, str], directory: Path
) -> tuple[float, float, int]:
    from config.settings import Settings
    from hub.admin import add_connector
    from hub.bootstrap import build_hub
    from hub.pipeline import sync_all

    hub = build_hub(
        Settings(
            database_url=f"sqlite:///{directory / 'bench.db'}",
            internal_domains=["ourco.example"],
            secret_key="bench-secret-key-0123456789abcdef",
        ),
        migrate=True,
    )
    try:
        await add_connector(hub, "m365", "m365", settings, secrets)
        started = time.perf_counter()
        (first,) = await sync_all(hub, ["m365"])
        initial = time.perf_counter() - started
        assert not first.error, first.error
        started = time.perf_counter()
        (again,) = await sync_all(hub, ["m365"])
        resync = time.perf_counter() - started
        assert again.new == 0 and not again.error, again
        return initial, resync, first.new
    finally:
        await hub.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--no-pipeline", action="store_true")
    args = parser.parse_args()
    directory = Path(tempfile.mkdtemp(prefix="crmhub-graph-bench-"))
    ours, theirs = multiprocessing.Pipe()
    server = multiprocessing.get_context("spawn").Process(
        target=_serve, args=(args.messages, str(directory), theirs), daemon=True
    )
    server.start()
    settings, secrets = ours.recv()
    total = args.messages + 20
    print(f"{total} messages in 2 folders, Graph fake in process {server.pid}")
    times: dict[str, list[float]] = {
        "bare (single)": [],
        "crmhub (single)": [],
        "bare ($batch)": [],
        "crmhub ($batch)": [],
    }
    cursor: dict[str, Any] = {}
    for round_ in range(args.rounds):
        for use_batch, kind in ((False, "(single)"), (True, "($batch)")):
            seconds, (count, size) = _timed(_bare(settings, secrets, use_batch))
            assert count == total, count
            times[f"bare {kind}"].append(seconds)
            seconds, (count, cursor) = _timed(_crmhub(settings, secrets, use_batch, {}))
            assert count == total, count
            times[f"crmhub {kind}"].append(seconds)
        print(
            f"round {round_ + 1}: "
            + ", ".join(f"{k} {v[-1]:.2f} s" for k, v in times.items())
            + f" ({size / 1e6:.0f} MB of MIME)"
        )
    for label, values in times.items():
        floor = times["bare " + label.split(" ", 1)[1]]
        ratios = [a / b for a, b in zip(values, floor, strict=True)]
        print(
            f"{label:16} best {min(values):6.2f} s  median {statistics.median(values):6.2f} s  "
            f"{total / min(values):7.0f} msg/s  to bare of its kind: median ratio "
            f"{statistics.median(ratios):.2f}"
        )
    _timed(_crmhub(settings, secrets, True, cursor))  # the first one signs in
    resyncs = []
    for _ in range(5):
        seconds, (count, _) = _timed(_crmhub(settings, secrets, True, cursor))
        assert count == 0, count
        resyncs.append(seconds)
    print(
        f"no-change re-sync, connector alone: median {statistics.median(resyncs) * 1000:.0f} ms "
        f"for 2 folders = {statistics.median(resyncs) * 500:.0f} ms a folder"
    )
    if not args.no_pipeline:
        initial, resync, new = asyncio.run(_pipeline(settings, secrets, directory))
        print(
            f"crmhub sync into SQLite (in process): initial {initial:.2f} s for {new} new "
            f"({new / initial:.0f} msg/s); no-change re-sync {resync * 1000:.0f} ms = "
            f"{resync * 500:.0f} ms a folder"
        )
    ours.send("done")
    server.join(timeout=10)


if __name__ == "__main__":
    main()
