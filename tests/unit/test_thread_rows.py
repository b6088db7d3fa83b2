"""A timeline page folds each mail thread into the row of its newest mail on the page; calls and
meetings (whose thread is a PBX call or a meeting series) stay rows of their own."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hub.model import Disclosure
from hub.web.views import InteractionView, ParticipantView, thread_rows

T0 = datetime(2025, 1, 1, tzinfo=UTC)


def _view(n: int, channel: str, thread: str | None, sender: str = "Jana") -> InteractionView:
    return InteractionView(
        id=n, disclosure=Disclosure.FULL, channel=channel, direction="inbound",
        occurred_at=T0 - timedelta(hours=n), ends_at=None, duration_seconds=None,
        subject=f"item {n}", snippet="", body_text=None,
        participants=(ParticipantView("from", "email", f"{sender}@k.example", sender, None),),
        attributions=(), sources=(), attachments=(), message_id=None, thread_id=thread,
        not_logged="", owned=False,
    )  # fmt: skip


def test_a_threads_mails_fold_into_its_newest_and_others_keep_their_place() -> None:
    views = [
        _view(1, "email", "<a>"),
        _view(2, "call", None),
        _view(3, "email", "<a>", "Ole"),
        _view(4, "meeting", "ics:series"),
        _view(5, "meeting", "ics:series"),
        _view(6, "email", "<b>"),
        _view(7, "email", None),
        _view(8, "email", "<a>"),
    ]
    rows = thread_rows(views, {"<a>": 5, "<b>": 1})
    assert [r.item.id for r in rows] == [1, 2, 4, 5, 6, 7]
    first = rows[0]
    assert [v.id for v in first.earlier] == [3, 8]
    assert first.size == 5, "the thread's size as the reader may see it, beyond the page"
    assert first.people == ["Jana", "Ole"]
    assert all(r.size == 1 and not r.earlier for r in rows[1:])


def test_a_size_below_what_the_page_shows_is_raised_to_it() -> None:
    rows = thread_rows([_view(1, "email", "<a>"), _view(2, "email", "<a>")], {})
    assert rows[0].size == 2
