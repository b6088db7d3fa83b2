"""The review page asks about each sender once: the questions the queue holds about one key
(an unknown sender in one mail, a customer's lookalike name in the next) are one case with
all their reasons, suggestions and items, and "Create contact" is filled in on every case."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hub.review import ItemSummary, ReviewEntry
from hub.web.pages.review import per_sender
from matching.suggest import Suggestion
from storage.review import CaseItem, OpenCase

T0 = datetime(2025, 3, 1, tzinfo=UTC)


def _entry(
    kind: str, key: str, reason: str, count: int, items: list[int], *s: Suggestion
) -> ReviewEntry:
    shown = tuple(CaseItem(i, T0 - timedelta(hours=i), f"mail {i}", True, ()) for i in items)
    case = OpenCase(kind, key, "Jana Ohlsen", reason, (), count, T0, shown)
    summaries = [ItemSummary(i.id, i.subject, i.occurred_at) for i in shown]
    return ReviewEntry(case, list(s), summaries)


def test_two_questions_about_one_sender_are_one_case_with_both_reasons() -> None:
    contact = Suggestion(1, 7, "Jana Ohlsen at Elbe Logistik GmbH", 80, "same name")
    account = Suggestion(1, None, "Elbe Logistik GmbH", 60, "signature names the company")
    entries = [
        _entry(
            "unknown-sender", "jana84@gmail.com", "nobody knows this address", 3, [1, 2], account
        ),
        _entry("unknown-sender", "other@web.de", "nobody knows this address", 1, [3]),
        _entry("name-lookalike", "jana84@gmail.com", "the name of a customer", 2, [2, 4], contact),
    ]
    cases = per_sender(entries)
    assert [c.case.key for c in cases] == ["jana84@gmail.com", "other@web.de"]
    jana = cases[0]
    assert jana.kinds == ("unknown-sender", "name-lookalike")
    assert jana.reasons == ("nobody knows this address", "the name of a customer")
    assert jana.count == 3
    assert [s.label for s in jana.suggestions] == [contact.label, account.label], "by score"
    assert [i.id for i in jana.items] == [1, 2, 4]
    assert jana.best_account == "Elbe Logistik GmbH"
    assert cases[1].best_account == "" and cases[1].kinds == ("unknown-sender",)
    lookalike = per_sender([_entry("name-lookalike", "x@y.example", "a name", 1, [5], contact)])
    assert lookalike[0].best_account == "", "a namesake's account is not offered"
