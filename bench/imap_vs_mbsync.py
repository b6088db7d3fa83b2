"""Initial IMAP sync: crmhub against a bare imaplib fetch, mbsync and offlineimap, one Dovecot.

    .venv/bin/python bench/imap_vs_mbsync.py [--messages 10000] [--rounds 5] [--skip-offlineimap]
    .venv/bin/python bench/imap_vs_mbsync.py --messages 200000 --memory-only [--cache DIR]

Fills a private Dovecot (the test fixture's) with realistic mail (2-30 KB, threads, multipart
text and HTML, attachments, umlauts, several charsets), then times in the same run: a bare
fetch of every message with the standard library's imaplib (nothing parsed or stored: the
floor), `mbsync` (Debian's isync) into a Maildir with its defaults, `offlineimap`, parsing every
message with `email` policy.default, and the initial `crmhub sync` (fetch, parse, match, store)
in a child process, with the peak memory of its process tree. Then a no-change re-sync, and a
second initial sync of the doubled mailbox to show whether memory stays flat. Needs: apt-get
install dovecot-imapd isync offlineimap. Machines here are shared and noisy (the same sync took
4.2 s and 6.4 s in two runs an hour apart), so the timings run in interleaved rounds and the
ratios are given of the best and of the median times, and as the median of each round's own
ratio: the two programs of one round ran under the same load (a best time from a quiet round
divided by one from a busy round says little).

`--memory-only` runs the initial `crmhub sync` once, sampled, and nothing else (no baselines,
no timed rounds, no re-sync, no doubled mailbox): what makes a 200,000-message mailbox (2.5 GB)
affordable. Its peak is compared with that of another `--messages` run. `--cache DIR` keeps
the generated mail in a file there and reuses it in later runs (generating 200,000 messages
takes about two minutes of one core; they are the same every time, until `realistic()`
changes: then empty the directory).
"""

from __future__ import annotations

import argparse
import compileall
import email
import email.policy
import imaplib
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from base64 import encodebytes
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.integration.dovecot import Dovecot, MailUser, start_dovecot  # noqa: E402

WORDS = (
    "Angebot Lieferung Rechnung Termin Bestellung Größe Übergabe Prüfung Maße Grüße quote "
    "delivery invoice schedule meeting order spare parts contract maintenance Köln Düsseldorf "
    "Förderanlage Ersatzteile Wartungsvertrag Zahlungsziel Auftragsbestätigung"
).split()
CHARSETS = ("utf-8", "utf-8", "utf-8", "iso-8859-1", "windows-1252", "iso-8859-15")
PASSWORD = "bench-password"
MIB = 1024 * 1024
# The console script users run: its module is what the translation workers' fork server loads.
_SCRIPT = Path(sys.executable).with_name("crmhub")
CRMHUB = [str(_SCRIPT)] if _SCRIPT.exists() else [sys.executable, "-m", "hub"]


def _text(rng: random.Random, size: int) -> str:
    words: list[str] = []
    length = 0
    while length < size:
        word = rng.choice(WORDS)
        words.append(word + ("\n" if rng.random() < 0.08 else " "))
        length += len(word) + 1
    return "".join(words)


def realistic(n: int, rng: random.Random) -> bytes:
    """One mail of 2-30 KB: plain, alternative (text + HTML) or mixed with an attachment."""
    customer = f"kunde{n % 700}@firma{n % 120}.example"
    staff = f"sales{n % 8}@ourco.example"
    sender, rcpt = (customer, staff) if n % 3 else (staff, customer)
    charset = rng.choice(CHARSETS)
    subject = " ".join(rng.choice(WORDS) for _ in range(rng.randint(2, 6)))
    if n % 4:
        subject = f"AW: {subject}"
    encoded_subject = "=?utf-8?b?" + encodebytes(subject.encode()).decode().replace("\n", "") + "?="
    head = (
        f"From: {sender}\r\nTo: {rcpt}\r\nSubject: {encoded_subject}\r\n"
        f"Date: Mon, {1 + n % 28} Jan 2024 {n % 24:02d}:{n % 60:02d}:00 +0100\r\n"
        f"Message-ID: <b{n}@bench.example>\r\nMIME-Version: 1.0\r\n"
    )
    if n % 4:
        head += f"In-Reply-To: <b{n - 1}@bench.example>\r\nReferences: <b{n - 1}@bench.example>\r\n"
    target = rng.choice((2_000, 4_000, 6_000, 9_000, 12_000, 16_000, 30_000))
    body = _text(rng, target // 2)
    plain = body.encode(charset, "replace")
    qp = email.quoprimime.body_encode(plain.decode("latin-1")).encode("latin-1")
    kind = n % 5
    if kind in (0, 1):
        return (
            (
                head + f"Content-Type: text/plain; charset={charset}\r\n"
                "Content-Transfer-Encoding: quoted-printable\r\n\r\n"
            ).encode()
            + qp
            + b"\r\n"
        )
    html = ("<html><body><p>" + body.replace("\n", "</p><p>") + "</p></body></html>").encode(
        charset, "replace"
    )
    html_qp = email.quoprimime.body_encode(html.decode("latin-1")).encode("latin-1")
    alt = (
        b"--alt\r\nContent-Type: text/plain; charset="
        + charset.encode()
        + b"\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n"
        + qp
        + b"\r\n--alt\r\nContent-Type: text/html; charset="
        + charset.encode()
        + b"\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n"
        + html_qp
        + b"\r\n--alt--\r\n"
    )
    if kind in (2, 3):
        return (head + 'Content-Type: multipart/alternative; boundary="alt"\r\n\r\n').encode() + alt
    attachment = encodebytes(rng.randbytes(target // 3)).replace(b"\n", b"\r\n")
    return (
        (
            head + 'Content-Type: multipart/mixed; boundary="mix"\r\n\r\n--mix\r\n'
            'Content-Type: multipart/alternative; boundary="alt"\r\n\r\n'
        ).encode()
        + alt
        + b"--mix\r\nContent-Type: application/pdf\r\nContent-Transfer-Encoding: base64\r\n"
        + f'Content-Disposition: attachment; filename="Angebot-{n}.pdf"\r\n\r\n'.encode()
        + attachment
        + b"--mix--\r\n"
    )


def messages(count: int, start: int = 0) -> Iterator[bytes]:
    rng = random.Random(start + 11)
    for n in range(start, start + count):
        yield realistic(n, rng)


def cached_messages(count: int, cache: Path | None) -> Iterator[bytes]:
    """`messages(count)`, read from a file in `cache` when an earlier run wrote one (each
    message behind its length, 8 bytes big-endian), else generated and written there."""
    if cache is None:
        yield from messages(count)
        return
    path = cache / f"imap-bench-{count}.bin"
    if path.exists():
        with path.open("rb") as handle:
            while head := handle.read(8):
                yield handle.read(int.from_bytes(head, "big"))
        return
    cache.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".partial")
    with partial.open("wb") as handle:
        for raw in messages(count):
            handle.write(len(raw).to_bytes(8, "big") + raw)
            yield raw
    partial.replace(path)  # complete only once every message is in


def compile_crmhub() -> None:
    """Byte-compile crmhub's own modules, as every installed program has them.

    pip compiles a package when it installs it, and an editable install writes the cache at
    its first start; but where PYTHONDONTWRITEBYTECODE is set, as on the machines here, nothing
    ever writes it, and each timed `crmhub sync` compiled its hundred modules from source again
    (measured: 0.1-0.2 s of every run, which no installed crmhub spends). The standard
    library's imaplib, the floor, is compiled already.
    """
    for package in ("hub", "connectors", "matching", "storage", "config"):
        compileall.compile_dir(ROOT / package, quiet=1)


def bare_fetch(server: Dovecot, user: MailUser) -> tuple[float, int]:
    """imaplib, 500 UIDs per FETCH, bytes thrown away: what the network and server allow."""
    started = time.perf_counter()
    conn = imaplib.IMAP4_SSL(server.host, server.imaps_port, ssl_context=server.ssl_context())
    conn.login(user.name, user.password)
    conn.select("INBOX", readonly=True)
    _, data = conn.uid("SEARCH", None, "ALL")
    uids = data[0].split()
    total = 0
    for start in range(0, len(uids), 500):
        chunk = b",".join(uids[start : start + 500]).decode()
        _, parts = conn.uid("FETCH", chunk, "(BODY.PEEK[])")
        total += sum(len(p[1]) for p in parts if isinstance(p, tuple))
    conn.logout()
    return time.perf_counter() - started, total


def run_mbsync(server: Dovecot, user: MailUser, work: Path) -> float:
    maildir = work / "mbsync-maildir"
    maildir.mkdir()
    config = work / "mbsyncrc"
    config.write_text(
        f"IMAPAccount bench\nHost {server.host}\nPort {server.imaps_port}\nUser {user.name}\n"
        f"Pass {user.password}\nSSLType IMAPS\nCertificateFile {server.cert_path}\n\n"
        "IMAPStore bench-remote\nAccount bench\n\n"
        f"MaildirStore bench-local\nPath {maildir}/\nInbox {maildir}/INBOX\n\n"
        "Channel bench\nFar :bench-remote:\nNear :bench-local:\nPatterns INBOX\nCreate Near\n"
        "SyncState *\n"
    )
    started = time.perf_counter()
    done = subprocess.run(
        ["mbsync", "-c", str(config), "-q", "bench"], capture_output=True, text=True, check=False
    )
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"mbsync failed: {done.stderr.strip()[-400:]}")
    return seconds


def run_offlineimap(server: Dovecot, user: MailUser, work: Path) -> float:
    config = work / "offlineimaprc"
    config.write_text(
        "[general]\naccounts = bench\nmetadata = " + str(work / "offlineimap-meta") + "\n\n"
        "[Account bench]\nlocalrepository = local\nremoterepository = remote\n\n"
        "[Repository local]\ntype = Maildir\nlocalfolders = " + str(work / "oi-maildir") + "\n\n"
        # offlineimap matches the certificate by DNS name only, so not by 127.0.0.1.
        "[Repository remote]\ntype = IMAP\nremotehost = localhost\n"
        f"remoteport = {server.imaps_port}\nremoteuser = {user.name}\n"
        f"remotepass = {user.password}\nssl = yes\nsslcacertfile = {server.cert_path}\n"
        "folderfilter = lambda name: name == 'INBOX'\nreadonly = True\n"
    )
    (work / "oi-maildir").mkdir()
    started = time.perf_counter()
    done = subprocess.run(
        ["offlineimap", "-c", str(config), "-o", "-u", "quiet"], capture_output=True, text=True
    )
    if done.returncode != 0:
        raise SystemExit(f"offlineimap failed: {(done.stderr + done.stdout).strip()[-600:]}")
    return time.perf_counter() - started


def parse_all(server: Dovecot, user: MailUser) -> float:
    """The standard library's modern parser over every message, bytes already in memory."""
    raws = [p.read_bytes() for p in (server.home_root / user.name).rglob("cur/*")]
    raws += [p.read_bytes() for p in (server.home_root / user.name).rglob("new/*")]
    started = time.perf_counter()
    for raw in raws:
        msg = email.message_from_bytes(raw, policy=email.policy.default)
        body = msg.get_body(("plain", "html"))
        if body is not None:
            body.get_content()
    return time.perf_counter() - started


def crmhub_timed(server: Dovecot, user: MailUser, work: Path, name: str) -> tuple[float, dict]:
    """`crmhub sync`, the console script, in a child process into a fresh database: wall time
    and its report. Memory is sampled in a run of its own (`crmhub_memory`): reading a
    process's memory map takes the kernel's lock on it and CPU beside it, which slowed the timed
    run by a quarter when both were one run."""
    seconds, _, out = _crmhub_sync(server, user, work, name, sample=False)
    return seconds, json.loads(out)["connectors"][0]


def crmhub_memory(server: Dovecot, user: MailUser, work: Path, name: str) -> Memory:
    return crmhub_memory_report(server, user, work, name)[0]


def crmhub_memory_report(
    server: Dovecot, user: MailUser, work: Path, name: str
) -> tuple[Memory, dict]:
    _, memory, out = _crmhub_sync(server, user, work, name, sample=True)
    return memory, json.loads(out)["connectors"][0]


def _crmhub_sync(
    server: Dovecot, user: MailUser, work: Path, name: str, *, sample: bool
) -> tuple[float, Memory, str]:
    db = work / f"{name}.db"
    env = dict(
        os.environ,
        CRMHUB_DATABASE_URL=f"sqlite:///{db}",
        CRMHUB_INTERNAL_DOMAINS="ourco.example",
        CRMHUB_SECRET_KEY="bench-secret-0123456",
        BENCH_IMAP_PASSWORD=user.password,
    )
    subprocess.run(
        [
            *CRMHUB,
            "connectors",
            "add",
            "imap",
            name,
            "--set",
            f"host={server.host}",
            "--set",
            f"port={server.imaps_port}",
            "--set",
            f"username={user.name}",
            "--set",
            f"ca_file={server.cert_path}",
            "--set",
            "folders=INBOX",
            "--secret",
            "password=BENCH_IMAP_PASSWORD",
        ],
        env=env,
        check=True,
        cwd=ROOT,
        capture_output=True,
    )
    return measured([*CRMHUB, "sync", "--json"], env, sample=sample)


@dataclass
class Memory:
    """Peaks over a run, in MiB: the main process alone, and its whole process tree (the main
    process, the fork server and the translation workers) as RSS and as PSS. Forked workers
    share pages with the fork server; PSS counts a shared page once in all."""

    main_rss: float = 0.0
    tree_rss: float = 0.0
    tree_pss: float = 0.0

    def __str__(self) -> str:
        return (
            f"peak RSS main process {self.main_rss:.0f} MiB; process tree "
            f"{self.tree_rss:.0f} MiB RSS, {self.tree_pss:.0f} MiB PSS"
        )


def measured(command: list[str], env: dict[str, str], *, sample: bool) -> tuple[float, Memory, str]:
    """Run a command: wall time, memory peaks (sampled every 50 ms when `sample`), its output."""
    memory = Memory()
    started = time.perf_counter()
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        proc = psutil.Popen(command, env=env, cwd=ROOT, stdout=out, stderr=err)
        if not sample:
            proc.wait()
        while proc.poll() is None:
            try:
                infos = [p.memory_full_info() for p in [proc, *proc.children(recursive=True)]]
            except psutil.Error:  # a process ended between listing and reading
                continue
            memory.main_rss = max(memory.main_rss, infos[0].rss / MIB)
            memory.tree_rss = max(memory.tree_rss, sum(i.rss for i in infos) / MIB)
            memory.tree_pss = max(memory.tree_pss, sum(i.pss for i in infos) / MIB)
            time.sleep(0.05)
        seconds = time.perf_counter() - started
        out.seek(0)
        err.seek(0)
        if proc.returncode != 0:
            raise SystemExit(f"{' '.join(command[-2:])} failed: {err.read().decode()[-600:]}")
        return seconds, memory, out.read().decode()


def crmhub_resync(work: Path, name: str) -> float:
    env = dict(
        os.environ,
        CRMHUB_DATABASE_URL=f"sqlite:///{work / f'{name}.db'}",
        CRMHUB_SECRET_KEY="bench-secret-0123456",
    )
    code = (
        "import asyncio, time\nfrom config.settings import load_settings\n"
        "from hub.bootstrap import build_hub\nfrom hub.pipeline import sync_all\n"
        "async def main():\n    hub = build_hub(load_settings())\n    await sync_all(hub)\n"
        "    best = min([await timed(hub) for _ in range(5)])\n    print(best)\n"
        "    await hub.close()\n"
        "async def timed(hub):\n    t = time.perf_counter()\n    r = await sync_all(hub)\n"
        "    assert r[0].new == 0 and not r[0].error, r\n    return time.perf_counter() - t\n"
        "asyncio.run(main())\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], env=env, cwd=ROOT, capture_output=True, text=True, check=True
    )
    return float(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=10_000)
    parser.add_argument("--skip-offlineimap", action="store_true")
    parser.add_argument(
        "--rounds", type=int, default=5, help="interleaved rounds of every timing (default 5)"
    )
    parser.add_argument(
        "--memory-only",
        action="store_true",
        help="only the initial crmhub sync's peak memory: no baselines, timings or doubled mailbox",
    )
    parser.add_argument(
        "--cache", type=Path, help="keep the generated mail in this directory and reuse it"
    )
    args = parser.parse_args()
    if args.messages < 1:
        raise SystemExit(f"--messages {args.messages}: give at least 1")
    if not args.memory_only:
        for tool in ("mbsync", *(() if args.skip_offlineimap else ("offlineimap",))):
            if shutil.which(tool) is None:
                raise SystemExit(f"{tool} is missing: apt-get install isync offlineimap")
    n = args.messages
    compile_crmhub()
    with start_dovecot() as server, tempfile.TemporaryDirectory(prefix="crmhub-bench-") as tmp:
        work = Path(tmp)
        user = server.add_user("bench@ourco.example", PASSWORD)
        started = time.perf_counter()
        server.fill_maildir(user, "INBOX", cached_messages(n, args.cache))
        print(f"filled INBOX with {n} messages in {time.perf_counter() - started:.1f} s")
        if args.memory_only:
            memory, stored = crmhub_memory_report(server, user, work, "first")
            print(f"crmhub stored {stored['new']} new, quarantined {stored['quarantined']}")
            print(f"crmhub sync, memory: {memory}")
            return
        times: dict[str, list[float]] = {}
        report: dict = {}
        for round_ in range(1, args.rounds + 1):
            here = work / f"round{round_}"
            here.mkdir()
            bare, size = bare_fetch(server, user)
            times.setdefault("bare", []).append(bare)
            times.setdefault("mbsync", []).append(run_mbsync(server, user, here))
            if not args.skip_offlineimap:
                times.setdefault("offlineimap", []).append(run_offlineimap(server, user, here))
            seconds, report = crmhub_timed(server, user, here, "timed")
            times.setdefault("crmhub", []).append(seconds)
            print(f"round {round_}: " + ", ".join(f"{k} {v[-1]:.2f} s" for k, v in times.items()))
        print(f"mailbox: {n} messages, {size / 1e6:.1f} MB; crmhub stored {report['new']} new,")
        print(f"  quarantined {report['quarantined']}, {n / min(times['crmhub']):,.0f} msg/s best")
        parse = parse_all(server, user)
        print(f"email policy.default parse only:    {parse:7.2f} s")
        best = {k: min(v) for k, v in times.items()}
        middle = {k: statistics.median(v) for k, v in times.items()}
        for name, label in (
            ("bare", "bare imaplib fetch (the floor)"),
            ("mbsync", "mbsync (isync) to Maildir"),
            ("offlineimap", "offlineimap to Maildir"),
            ("crmhub", "crmhub sync (fetch+parse+match+store)"),
        ):
            if name in times:
                print(f"{label:<40} best {best[name]:6.2f} s, median {middle[name]:6.2f} s")
        memory = crmhub_memory(server, user, work, "first")
        print(f"crmhub sync, memory: {memory}")
        resync = crmhub_resync(work, "first")
        print(f"crmhub no-change re-sync (1 folder, incl. connect+login): {resync * 1000:.0f} ms")
        server.fill_maildir(user, "INBOX", messages(n, start=n))
        seconds2, report2 = crmhub_timed(server, user, work, "doubled-timed")
        memory2 = crmhub_memory(server, user, work, "doubled")
        print(
            f"crmhub sync of the doubled mailbox ({2 * n}): {seconds2:.2f} s (new {report2['new']})"
        )
        print(f"  memory: {memory2}")
        print(f"ratios (of the best and of the median times over {args.rounds} rounds):")

        def ratio(a: str, b: str, target: str) -> None:
            rounds = [x / y for x, y in zip(times[a], times[b], strict=True)]
            print(
                f"  {a} / {b} wall time: {best[a] / best[b]:5.2f} best, "
                f"{middle[a] / middle[b]:5.2f} median, {statistics.median(rounds):5.2f} median "
                f"of the rounds' own ({', '.join(f'{r:.2f}' for r in rounds)})  (target {target})"
            )

        ratio("crmhub", "mbsync", "<= 1")
        if "offlineimap" in times:
            ratio("offlineimap", "crmhub", ">= 10")
        ratio("crmhub", "bare", "<= 5")
        print(
            f"  peak memory doubled / single:     {memory2.main_rss / memory.main_rss:5.2f} main "
            f"RSS, {memory2.tree_pss / memory.tree_pss:.2f} tree PSS  (flat: about 1)"
        )
        print(
            f"  peak memory (target < 200 MB, {200e6 / MIB:.1f} MiB): {memory.main_rss:.0f} MiB "
            f"main process RSS, {memory.tree_pss:.0f} MiB process tree PSS; doubled mailbox "
            f"{memory2.main_rss:.0f} and {memory2.tree_pss:.0f} MiB"
        )


if __name__ == "__main__":
    main()
