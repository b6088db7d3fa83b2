"""End-to-end file ingest: messages per second and peak RSS for a generated 10,000-message mbox.

    python bench/ingest_files.py [--messages 10000]

Prints, from one run on this machine: the baseline (parsing every message with the standard
library's compat32 parser, nothing matched or stored), then `crmhub sync` of the same mbox into a
fresh SQLite database in a child process (fetch, parse, match, store), and their ratio. Machines
here are shared and noisy, so compare the ratio, not the absolute figures.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import subprocess
import sys
import tempfile
import time
from email import message_from_bytes
from email.policy import compat32
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
WORDS = (
    "Angebot Lieferung Rechnung Termin Bestellung quote delivery invoice schedule meeting "
    "Ersatzteile Wartung Vertrag contract Prüfung Übergabe Müller Größe"
).split()


def generate(path: Path, count: int, seed: int = 7) -> int:
    """An mbox of `count` realistic messages: threads, multipart, umlauts, some attachments."""
    rng = random.Random(seed)
    with path.open("wb") as out:
        for n in range(count):
            customer = f"kunde{n % 400}@firma{n % 90}.example"
            staff = f"sales{n % 6}@ourco.example"
            sender, rcpt = (customer, staff) if n % 3 else (staff, customer)
            subject = " ".join(rng.choice(WORDS) for _ in range(4))
            body = "\n".join(" ".join(rng.choice(WORDS) for _ in range(12)) for _ in range(30))
            reply = f"In-Reply-To: <m{n - 1}@bench.example>\n" if n % 4 and n else ""
            head = (
                f"From {sender} Mon Jan  8 09:00:00 2024\nFrom: {sender}\nTo: {rcpt}\n"
                f"Subject: {subject}\n"
                f"Date: Mon, 8 Jan 2024 09:{n % 60:02d}:00 +0100\n"
                f"Message-ID: <m{n}@bench.example>\n{reply}MIME-Version: 1.0\n"
            )
            if n % 5 == 0:
                attachment = rng.randbytes(6000).hex()
                text = (
                    f'Content-Type: multipart/mixed; boundary="b{n}"\n\n--b{n}\n'
                    f"Content-Type: text/plain; charset=utf-8\n\n{body}\n--b{n}\n"
                    f"Content-Type: application/octet-stream\n"
                    f'Content-Disposition: attachment; filename="a{n}.bin"\n\n'
                    f"{attachment}\n--b{n}--\n"
                )
            else:
                text = f"Content-Type: text/plain; charset=utf-8\n\n{body}\n"
            out.write((head + text + "\n").encode("utf-8"))
    return path.stat().st_size


def baseline(path: Path) -> float:
    """Split and parse every message with compat32; nothing else."""
    started = time.perf_counter()
    data = path.read_bytes()
    for chunk in data.split(b"\nFrom "):
        message_from_bytes(chunk, policy=compat32).get_payload()
    return time.perf_counter() - started


def crmhub_sync(path: Path, workdir: Path) -> tuple[float, int, dict[str, object]]:
    """Wall time, peak RSS (KiB) and the sync report of `crmhub sync` in a child process."""
    env = dict(
        os.environ,
        CRMHUB_DATABASE_URL=f"sqlite:///{workdir / 'bench.db'}",
        CRMHUB_INTERNAL_DOMAINS="ourco.example",
        CRMHUB_SECRET_KEY="bench-secret-key-0123",
    )
    cli = [sys.executable, "-m", "hub"]
    subprocess.run(
        [*cli, "connectors", "add", "mbox", "bench", "--set", f"path={path}"],
        env=env,
        check=True,
        cwd=ROOT,
        capture_output=True,
    )
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    started = time.perf_counter()
    done = subprocess.run(
        [*cli, "sync", "--json"], env=env, check=True, cwd=ROOT, capture_output=True, text=True
    )
    seconds = time.perf_counter() - started
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    report = json.loads(done.stdout)["connectors"][0]
    return seconds, max(peak, before), report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=10_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="crmhub-bench-") as tmp:
        work = Path(tmp)
        mbox = work / "bench.mbox"
        size = generate(mbox, args.messages)
        base = baseline(mbox)
        seconds, rss_kib, report = crmhub_sync(mbox, work)
    n = args.messages
    print(f"mbox: {n} messages, {size / 1e6:.1f} MB")
    print(f"baseline (stdlib compat32 parse only): {base:.2f} s, {n / base:,.0f} msg/s")
    print(
        f"crmhub sync (fetch, parse, match, store): {seconds:.2f} s, {n / seconds:,.0f} msg/s "
        f"(new {report['new']}, quarantined {report['quarantined']})"
    )
    print(f"peak RSS of crmhub sync: {rss_kib / 1024:.0f} MiB")
    print(f"ratio crmhub / baseline wall time: {seconds / base:.1f}x")


if __name__ == "__main__":
    main()
