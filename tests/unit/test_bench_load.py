"""bench/load.py's own logic: the mix's accounting, the verdicts, the answer checks, the mailbox.

The figures of a load run are only as good as this arithmetic: a path's throughput derived from
its latency in the mix, errors counted and never timed, a changed answer checked again.
"""

from __future__ import annotations

import asyncio
from email import message_from_bytes
from email.utils import getaddresses

import pytest

from bench import load, reads
from bench import readsdata as data


def window(latencies_ms: dict[str, list[float]], seconds: float, errors: int = 0) -> load.Window:
    names = list(latencies_ms)
    tallies = [load.Tally([ms / 1000 for ms in latencies_ms[n]]) for n in names]
    tallies[0].errors = errors
    return load.Window(names, tallies, seconds, 0.0, 0.0, 0, [])


def test_a_paths_throughput_is_what_its_latency_in_the_mix_allows() -> None:
    # 10 answers of 10 ms and 10 of 30 ms in 1 s: 0.4 requests in flight on average.
    rows = load.rows_of(window({"a timeline": [10.0] * 10, "q=": [30.0] * 10}, 1.0), 100.0)
    by_path = {r.path: r for r in rows}
    assert [r.path for r in rows] == ["a timeline", "q=", "timelines (1 paths)", "mix (2 paths)"]
    assert by_path["a timeline"].throughput == pytest.approx(40.0)  # 0.4 / 10 ms
    assert by_path["q="].throughput == pytest.approx(13.3)  # 0.4 / 30 ms
    mix = by_path["mix (2 paths)"]
    assert mix.throughput == pytest.approx(mix.rps) == pytest.approx(20.0)  # measured: 20 in 1 s
    assert mix.ratio == pytest.approx(0.2)
    assert by_path["q="].rps == pytest.approx(10.0)  # its share of the mix
    assert (mix.p50_ms, mix.p99_ms) == (10.0, 30.0)


def test_errors_are_answers_but_never_timed_nor_counted_as_throughput() -> None:
    rows = load.rows_of(window({"a timeline": [10.0] * 4, "q=": [10.0] * 4}, 2.0, errors=3), 10.0)
    first, mix = rows[0], rows[-1]
    assert (first.answers, first.errors, first.rps) == (7, 3, 2.0)
    assert (mix.answers, mix.errors, mix.rps) == (11, 3, 4.0)


def test_a_mix_of_timelines_only_has_no_separate_timelines_row() -> None:
    rows = load.rows_of(window({"account timeline": [5.0], "contact timeline": [5.0]}, 1.0), 1.0)
    assert [r.path for r in rows] == ["account timeline", "contact timeline", "mix (2 paths)"]


def test_the_baseline_is_the_mean_of_before_and_after() -> None:
    before, after = window({"bare": [1.0] * 300}, 1.0), window({"bare": [1.0] * 100}, 1.0)
    assert load.bare_baseline(before, after) == pytest.approx(200.0)


def imported(**changes: object) -> load.Imported:
    base = load.Imported(100, 80, 10.0, 8.0, False, None, 1.0)
    for key, value in changes.items():
        setattr(base, key, value)
    return base


def row(path: str, *, errors: int = 0, p99: float = 10.0, ratio: float = 0.5) -> load.Row:
    return load.Row(path, 100, errors, 90.0, 5.0, p99, 50.0, ratio)


def failed(checks: list[tuple[str, bool]]) -> list[str]:
    return [what for what, passed in checks if not passed]


def test_verdicts_pass_within_the_targets() -> None:
    rows = [row("account timeline, x"), row("q=, y", ratio=0.01), row("mix (2 paths)")]
    assert failed(load.verdicts(rows, {"bare": 0}, imported())) == []


@pytest.mark.parametrize(
    ("rows", "other", "wrong"),
    [
        ([row("q=, y", errors=1)], {}, "q=, y: 1 errors"),
        ([row("q=, y", p99=50.0)], {}, "q=, y: p99 50.0 ms < 50 ms"),
        ([row("contact timeline", ratio=0.3)], {}, "contact timeline: throughput"),
        ([row("mix (8 paths)", ratio=0.3)], {}, "mix (8 paths): throughput"),
        ([row("q=, y")], {"warm-up of crmhub": 2}, "warm-up of crmhub: 2 errors"),
    ],
)
def test_each_target_can_fail(rows: list[load.Row], other: dict[str, int], wrong: str) -> None:
    found = failed(load.verdicts(rows, other, imported()))
    assert len(found) == 1 and found[0].startswith(wrong), found


def test_a_path_without_correct_answers_fails_p99() -> None:
    nothing = load.Row("q=, y", 5, 5, 0.0, 0.0, 0.0, 0.0, 0.0)
    assert "q=, y: p99 0.0 ms < 50 ms" in failed(load.verdicts([nothing], {}, imported()))


def test_an_import_that_ended_early_or_stored_nothing_fails() -> None:
    early = imported(finished_early=True, exit_code=1, note="login failed")
    assert failed(load.verdicts([], {}, early)) == [
        "IMAP import ended after 10.0 s, before the window did (exit status 1: login failed)"
    ]
    assert len(failed(load.verdicts([], {}, imported(stored=0)))) == 1


def test_each_distinct_answer_is_checked_in_full_once() -> None:
    seen: list[bytes] = []

    def check(body: bytes) -> str:
        seen.append(body)
        return reads.items_json(body)

    answers = load.Answers([check])
    page = b'{"items":[{"id":1}]}'
    assert answers.problem(0, 0, 200, page) == ""
    assert answers.problem(0, 0, 200, page) == ""
    assert answers.problem(0, 1, 200, page) == ""  # another URL: its own check
    assert answers.problem(0, 0, 200, b'{"items":[{"id":2}]}') == ""  # changed: checked again
    assert len(seen) == answers.full == 3
    assert answers.problem(0, 0, 200, b'{"items":[]}').startswith("no items")
    assert answers.problem(0, 0, 200, b"<html>").startswith("unreadable answer (JSONDecodeError")
    assert answers.problem(0, 0, 500, page).startswith("status 500")
    assert answers.full == 5  # a bad status needs no checker


def test_the_schedule_goes_round_every_path_before_repeating() -> None:
    paths = [
        reads.ReadPath("a", ["/a1", "/a2", "/a3"], "", reads.ok),
        reads.ReadPath("b", ["/b1"], "", reads.ok),
    ]
    assert load.schedule_of(paths) == [(0, 0), (1, 0), (0, 1), (1, 0), (0, 2), (1, 0)]


def test_the_clients_count_wrong_answers_and_keep_going() -> None:
    """Against a loopback server whose /bad answers 500: every /bad answer is an error of its
    path, on a fresh connection each time, and /good goes on being timed."""
    connections: list[int] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        connections.append(1)
        try:
            while head := await reader.readuntil(b"\r\n\r\n"):
                good = head.startswith(b"GET /good ")
                body = b'{"items":[1]}' if good else b'{"error":{}}'
                status = b"200 OK" if good else b"500 Internal Server Error"
                writer.write(
                    b"HTTP/1.1 %s\r\ncontent-length: %d\r\n\r\n%s" % (status, len(body), body)
                )
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass  # the client closed the connection
        finally:
            writer.close()

    async def scenario() -> tuple[list[load.Tally], int]:
        server = await asyncio.start_server(handle, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        paths = [
            reads.ReadPath("good", ["/good"], "", reads.items_json),
            reads.ReadPath("bad", ["/bad"], "", reads.items_json),
        ]
        for path in paths:
            path.prepare(port)
        shown: list[str] = []
        async with server:
            tallies, _, _ = await load.run_clients(paths, port, 2, 0.3, shown)
        assert len(shown) == min(load.SHOWN_ERRORS, tallies[1].errors)
        assert shown[0].startswith("bad: /bad: status 500")
        return tallies, len(connections)

    (good, bad), opened = asyncio.run(scenario())
    assert good.latencies and good.errors == 0
    assert bad.errors > 0 and bad.latencies == []
    assert opened >= bad.errors  # a new connection after each error (and one to start)


def test_the_mailbox_is_partly_the_directorys() -> None:
    size = 10_000
    shape = data.Shape(size)
    contacts = {data.contact_email(c) for c in range(shape.contacts)}
    domains = {data.account_domain(a) for a in range(shape.accounts)}
    kinds = {"contact": 0, "domain": 0, "unknown": 0}
    for n, raw in enumerate(load.mailbox(200, size)):
        message = message_from_bytes(raw)
        addresses = {a for _, a in getaddresses([message["From"], message["To"]])}
        customers = {a for a in addresses if not a.endswith(f"@{data.OUR_DOMAIN}")}
        assert customers == {load.customer(n, shape)}
        address = customers.pop()
        if address in contacts:
            kinds["contact"] += 1
        elif address.partition("@")[2] in domains:
            kinds["domain"] += 1
        else:
            kinds["unknown"] += 1
    assert kinds == {"contact": 100, "domain": 50, "unknown": 50}


def test_a_changed_corpus_is_refused_not_left_unmatched() -> None:
    with pytest.raises(RuntimeError, match="CORPUS_CUSTOMER"):
        load.readdressed(b"From: someone@else.example\r\n\r\nhi", 3, data.Shape(10_000))
