"""From a signed Twilio voice callback to the call being visible through the API (issue 15:
"the call is on the timeline within 2 s of its callback").

    .venv/bin/python bench/callback.py [--calls 200] [--database-url URL]

One app in process (the ASGI app, driven by httpx without sockets, so the figure is crmhub's
own time, not the network's), a fresh SQLite file unless `--database-url` names a migrated
database, the test directory (tests/data/directory.csv) and a `twilio` connector. For each
call: POST a "ringing" callback signed with the twilio library's RequestValidator, then
GET /api/interactions?external_id=<CallSid> with a sales user's token until it is listed; then
the "completed" callback and the same read until the stored status is revised. Prints p50,
p99 and max (ms) of both, beside GET /api/health of the same app.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from twilio.request_validator import RequestValidator  # noqa: E402

from config.settings import Settings  # noqa: E402
from hub.admin import add_connector, import_directory  # noqa: E402
from hub.bootstrap import build_hub  # noqa: E402
from hub.web.app import build_app  # noqa: E402
from storage.tokens import create_token  # noqa: E402
from storage.users import add_user  # noqa: E402

ACCOUNT, TOKEN, PUBLIC = "AC" + "b" * 32, "bench-auth-token", "https://crm.example.com"
PATH = "/hooks/twilio/phones/voice"


def _params(sid: str, status: str) -> dict[str, str]:
    stamp = datetime.now(UTC).strftime("%a, %d %b %Y %H:%M:%S +0000")
    done = {"CallDuration": "61"} if status == "completed" else {}
    return {
        "CallSid": sid,
        "AccountSid": ACCOUNT,
        "From": "+491712233445",
        "To": "+4951112345600",
        "CallStatus": status,
        "Direction": "inbound",
        "Timestamp": stamp,
        **done,
    }


async def _visible(client: httpx.AsyncClient, sid: str, status: str) -> None:
    while True:
        answer = await client.get("/api/interactions", params={"external_id": sid})
        items = answer.json()["items"]
        if items and status in items[0]["subject"]:
            return
        await asyncio.sleep(0.001)


def _figures(name: str, samples: list[float]) -> str:
    ordered = sorted(samples)
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
    return (
        f"{name:<34} p50 {statistics.median(ordered) * 1000:7.1f} ms   "
        f"p99 {p99 * 1000:7.1f} ms   max {ordered[-1] * 1000:7.1f} ms   (n={len(ordered)})"
    )


async def run(calls: int, database_url: str) -> None:
    hub = build_hub(
        Settings(
            database_url=database_url,
            internal_domains=["ourco.example"],
            default_region="DE",
            secret_key="bench-secret-key-0123456789abcdef",
        )
    )
    await import_directory(hub, ROOT / "tests" / "data" / "directory.csv")
    await add_connector(
        hub,
        "twilio",
        "phones",
        {"account_sid": ACCOUNT, "public_url": PUBLIC},
        {"auth_token": TOKEN},
    )
    async with hub.sessions() as session, session.begin():
        user = await add_user(session, "bench@ourco.example", "sales", "bench-password-123")
        bearer = await create_token(session, user)
    validator = RequestValidator(TOKEN)
    transport = httpx.ASGITransport(app=build_app(hub))
    headers = {"Authorization": f"Bearer {bearer}"}
    samples: dict[str, list[float]] = {"new call (ringing)": [], "revised (completed)": []}
    health: list[float] = []
    async with httpx.AsyncClient(transport=transport, base_url="http://hub", headers=headers) as c:
        for n in range(calls):
            sid = f"CA{n:032x}"
            for status, name, shown in (
                ("ringing", "new call (ringing)", "ringing"),
                ("completed", "revised (completed)", "answered"),
            ):
                params = _params(sid, status)
                signature = validator.compute_signature(PUBLIC + PATH, params)
                started = time.perf_counter()
                answer = await c.post(PATH, data=params, headers={"X-Twilio-Signature": signature})
                assert answer.status_code == 204, answer.text
                await _visible(c, sid, shown)
                samples[name].append(time.perf_counter() - started)
            started = time.perf_counter()
            await c.get("/api/health")
            health.append(time.perf_counter() - started)
    await hub.close()
    print(f"callback -> visible through the API, {calls} calls, {database_url.split(':')[0]}")
    for name, values in samples.items():
        print(_figures(name, values[1:] or values))  # the first pays for warming up
    print(_figures("GET /api/health (same app)", health))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=200)
    parser.add_argument("--database-url", default="")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        url = args.database_url or f"sqlite:///{tmp}/callback.db"
        asyncio.run(run(args.calls, url))


if __name__ == "__main__":
    main()
