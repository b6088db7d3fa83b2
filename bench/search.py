"""The web view people use every day (issue 13): the one search, an account's page and the
start page, at 1,000,000 items and 100,000 contacts, beside a trivial request of the same app.

    .venv/bin/python bench/search.py [--sizes 1000000] [--databases sqlite,postgresql]
        [--clients 1,20] [--duration 5] [--upgrade-cached] [--json search.json]

The data sets are bench/reads.py's (built or found cached the same way, see its docstring; the
first build of a million items takes 10-20 minutes per database). One `crmhub serve` with its
default workers; for each path p50, p95 and p99 latency (ms) and requests/s at each number of
clients, and the ratio of p95 to the trivial request's (GET /api/health) in the same run:

- search by a contact's last name (GET /api/search?q=, with the sales user's token);
- search by a known caller's number, spelled three ways ("0221 5000123", "+492215000123",
  "0221/500-0123"): the contact must be found;
- search by a rare word (5 items) and by a common one (in ~20 % of the items);
- the search page (GET /search?q=, logged in by cookie) for a rare word;
- an account's page (GET /accounts/{id}, a typical account) and the start page (GET /).

Targets of issue 13 (judged at every client count): search p99 under 50 ms, account page p95
under 100 ms, start page p95 under 150 ms.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from pathlib import Path
from typing import Any
from urllib.parse import quote

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench import reads  # noqa: E402
from bench import readsdata as data  # noqa: E402

ROTATE = reads.ROTATE
TARGETS = {  # path prefix -> (percentile, ms)
    "search": ("p99", 50.0),
    "account page": ("p95", 100.0),
    "start page": ("p95", 150.0),
}


def found_contacts(body: bytes) -> str:
    return "" if json.loads(body).get("contacts") else "no contact found"


def found_items(body: bytes) -> str:
    return "" if json.loads(body).get("interactions") else "no interaction found"


def search_paths(size: int, found: dict[str, Any], token: str, cookie: str) -> list[Any]:
    plan = data.plan_of(size)
    bearer = f"Authorization: Bearer {token}\r\n"
    session = f"Cookie: {reads.SESSION_COOKIE}={cookie}\r\n"
    callers = list(plan.known_callers(ROTATE))
    numbers = [
        quote(reads.phone_spellings(*data.contact_phone(c))[n % 3]) for n, c in enumerate(callers)
    ]
    names = [quote(data.contact_name(c).split(" ")[1]) for c in callers]
    rare = [quote(w) for w in data.RARE]
    common = [quote(w) for w in data.COMMON]
    path = reads.ReadPath
    return [
        path("search, contact name", [f"/api/search?q={n}" for n in names], bearer, found_contacts),
        path(
            "search, phone number", [f"/api/search?q={n}" for n in numbers], bearer, found_contacts
        ),
        path("search, rare word", [f"/api/search?q={w}" for w in rare], bearer, found_items),
        path("search, common word", [f"/api/search?q={w}" for w in common], bearer, found_items),
        path("search page (HTML)", [f"/search?q={w}" for w in rare], session, reads.html_items),
        path(
            "account page (HTML)",
            [f"/accounts/{a}" for a in found["typical"]],
            session,
            reads.html_items,
        ),
        path("start page (HTML)", ["/"], session, reads.html_items),
    ]


async def latencies(
    path: Any, port: int, clients: int, duration: float
) -> tuple[list[float], float]:
    return await reads.run_clients(path, port, clients, duration, None)


def measure(path: Any, server: Any, clients: int, duration: float) -> dict[str, Any]:
    cpu = server.cpu_seconds()
    values, seconds = asyncio.run(latencies(path, server.port, clients, duration))
    cpu = server.cpu_seconds() - cpu
    values.sort()
    n = len(values)
    return {
        "path": path.name,
        "clients": clients,
        "requests": n,
        "p50_ms": round(reads.percentile(values, 0.50) * 1000, 2),
        "p95_ms": round(reads.percentile(values, 0.95) * 1000, 2),
        "p99_ms": round(reads.percentile(values, 0.99) * 1000, 2),
        "rps": round(n / seconds, 1),
        "cpu_ms": round(cpu * 1000 / n, 2),
    }


def run(ds: Any, args: argparse.Namespace, workdir: Path) -> list[dict[str, Any]]:
    token = asyncio.run(data.tokens(ds.url))[data.SALES]
    found = asyncio.run(reads.ids(ds.url, ds.size))
    server = reads.start_server(ds.url, workdir)
    results: list[dict[str, Any]] = []
    try:
        cookie = reads.session_cookie(server.port)
        trivial = reads.ReadPath("trivial (GET /api/health)", ["/api/health"], "", reads.ok)
        paths = search_paths(ds.size, found, token, cookie)
        for path in (trivial, *paths):
            path.prepare(server.port)
            asyncio.run(reads.probe(path, server.port))
        for path in (trivial, *paths, trivial):
            measure(path, server, max(args.clients), min(1.0, args.duration / 4))  # warm up
            for clients in args.clients:
                row = {
                    "database": ds.database,
                    "size": ds.size,
                    **measure(path, server, clients, args.duration),
                }
                results.append(row)
                print(
                    f"  {ds.database} {ds.size:>9,} {row['path']:<28} {clients:>3} clients: "
                    f"p50 {row['p50_ms']:7.1f} p95 {row['p95_ms']:7.1f} "
                    f"p99 {row['p99_ms']:7.1f} ms, "
                    f"{row['rps']:8,.0f} req/s, {row['cpu_ms']:5.1f} CPU ms/req",
                    flush=True,
                )
    finally:
        server.stop()
    return results


def judge(results: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each path against its target, and its p95 as a multiple of the trivial request's."""
    trivial: dict[tuple[str, int, int], list[float]] = {}
    for r in results:
        if r["path"].startswith("trivial"):
            trivial.setdefault((r["database"], r["size"], r["clients"]), []).append(r["p95_ms"])
    verdicts = []
    for r in results:
        if r["path"].startswith("trivial"):
            continue
        base = trivial[(r["database"], r["size"], r["clients"])]
        ratio = r["p95_ms"] / (sum(base) / len(base))
        for prefix, (which, limit) in TARGETS.items():
            if r["path"].startswith(prefix):
                ok = r[f"{which}_ms"] < limit
                verdicts.append(
                    {
                        **r,
                        "target": f"{which} < {limit:.0f} ms",
                        "ok": ok,
                        "x_trivial": round(ratio, 1),
                    }
                )
    return verdicts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="1000000")
    parser.add_argument("--databases", default="sqlite,postgresql")
    parser.add_argument("--clients", default="1,20")
    parser.add_argument("--duration", type=float, default=5.0)
    parser.add_argument("--upgrade-cached", action="store_true")
    parser.add_argument("--rebuild", action="store_true")
    parser.add_argument("--json", type=Path)
    parser.add_argument("--cache", type=Path, default=Path.home() / ".cache" / "crmhub-bench")
    parser.add_argument("--pg-url", default="postgresql+psycopg://root@127.0.0.1:5432/postgres")
    args = parser.parse_args()
    args.sizes = [int(s) for s in args.sizes.split(",")]
    args.databases = [d.strip() for d in args.databases.split(",")]
    args.clients = [int(c) for c in args.clients.split(",")]
    args.build_only = False
    workdir = args.cache / "run"
    workdir.mkdir(parents=True, exist_ok=True)
    started = time.time()
    results = []
    for database in args.databases:
        for size in args.sizes:
            ds = reads.dataset(database, size, args)
            reads.ensure_built(ds, args)
            results += run(ds, args, workdir)
    verdicts = judge(results)
    print("== targets of issue 13 ==")
    for v in verdicts:
        print(
            f"{'PASS' if v['ok'] else 'FAIL'} {v['database']:<10} {v['size']:>9,} {v['path']:<28} "
            f"{v['clients']:>3} clients: {v['target']} "
            f"({v['target'].split()[0]} {v[v['target'].split()[0] + '_ms']:.1f} ms; p95 "
            f"{v['p95_ms']:.1f} ms, {v['x_trivial']}x the trivial request's)"
        )
    passed = sum(v["ok"] for v in verdicts)
    print(f"{passed} of {len(verdicts)} checks pass ({time.time() - started:.0f} s)")
    if args.json:
        args.json.write_text(json.dumps({"rows": results, "checks": verdicts}, indent=1))


if __name__ == "__main__":
    main()
