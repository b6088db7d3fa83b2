"""translate_message() per message: the full feedparser parse against the fast MIME splitter.

    python bench/translate.py [--messages 3000] [--rounds 7]

Three corpora: realistic IMAP mail (bench/imap_vs_mbsync.py `messages()`: plain, alternative,
mixed with a base64 PDF, quoted-printable, several charsets), CPython's own email test corpus
(odd MIME, broken headers, non-mail) and the demo mbox. Each corpus is translated with
the code before the fast path (connectors/mail.py at commit BEFORE, read with `git show`), with
`fast=False` (today's code on the standard library's full compat32 parse) and with the default
fast path, in alternating rounds; the best round of each is printed, because machines here are
shared and noisy. Also printed: how many messages the splitter handles itself rather than
handing back to the full parse.
"""

from __future__ import annotations

import argparse
import mailbox
import subprocess
import sys
import sysconfig
import tempfile
import time
import types
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.imap_vs_mbsync import messages  # noqa: E402
from connectors.base import MalformedItem  # noqa: E402
from connectors.mail import translate_message  # noqa: E402
from connectors.mime import split_message  # noqa: E402
from hub.demo_data import write_demo_files  # noqa: E402

BEFORE = "3c209a7"
CPYTHON_MAIL_CORPUS = Path(sysconfig.get_paths()["stdlib"]) / "test" / "test_email" / "data"


def demo_messages() -> list[bytes]:
    with tempfile.TemporaryDirectory() as work:
        box = mailbox.mbox(write_demo_files(Path(work)).mbox, create=False)
        try:
            return [box.get_bytes(key) for key in box.keys()]
        finally:
            box.close()


def corpora(count: int) -> dict[str, list[bytes]]:
    return {
        f"bench ({count})": list(messages(count)),
        "cpython": [p.read_bytes() for p in sorted(CPYTHON_MAIL_CORPUS.glob("msg_*.txt"))],
        "demo mbox": demo_messages(),
    }


def translate_before() -> Callable[[bytes], object]:
    """translate_message as it was before the fast path."""
    source = subprocess.run(
        ["git", "-C", str(ROOT), "show", f"{BEFORE}:connectors/mail.py"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    module = types.ModuleType("mail_before")
    exec(compile(source, f"{BEFORE}:connectors/mail.py", "exec"), module.__dict__)
    return module.translate_message


def seconds_per_message(corpus: list[bytes], translate: Callable[[bytes], object]) -> float:
    started = time.perf_counter()
    for data in corpus:
        try:
            translate(data)
        except MalformedItem:
            pass
    return (time.perf_counter() - started) / len(corpus)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=3000)
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    ways: dict[str, Callable[[bytes], object]] = {
        "before": translate_before(),
        "full": lambda data: translate_message(data, fast=False),
        "fast": translate_message,
    }
    print(f"ms per message, best of {args.rounds} rounds; before = {BEFORE}")
    print(
        f"{'corpus':<14}{'msgs':>6}{'KB/msg':>8}{'split':>7}"
        f"{'before':>9}{'full':>9}{'fast':>9}{'x':>7}"
    )
    for name, corpus in corpora(args.messages).items():
        best = dict.fromkeys(ways, float("inf"))
        for _ in range(args.rounds):
            for way, translate in ways.items():
                best[way] = min(best[way], seconds_per_message(corpus, translate))
        split = sum(split_message(data) is not None for data in corpus)
        size = sum(map(len, corpus)) / len(corpus) / 1000
        figures = "".join(f"{best[way] * 1000:>9.3f}" for way in ways)
        print(
            f"{name:<14}{len(corpus):>6}{size:>8.1f}{split:>7}{figures}"
            f"{best['before'] / best['fast']:>7.2f}"
        )


if __name__ == "__main__":
    main()
