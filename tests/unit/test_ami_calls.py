"""CallTracker (connectors/ami_calls.py): which AMI events make a call item, and when.

Event fields follow docs.asterisk.org's AMI Events pages (Newchannel, DialBegin, DialEnd,
Hangup, Cdr).
"""

from __future__ import annotations

import json

from connectors.ami_calls import CallTracker, call_of
from hub.model import Direction

A = {"Uniqueid": "100.1", "Linkedid": "100.1"}
B = {"Uniqueid": "100.2", "Linkedid": "100.1"}
C = {"Uniqueid": "100.3", "Linkedid": "100.1"}


def _ring_two_phones(tracker: CallTracker, answered_by: str | None) -> None:
    """A customer calls; a ring group rings two phones (B and C) in parallel."""
    tracker.feed({"Event": "Newchannel", **A, "CallerIDNum": "+4917612345678", "Exten": "600"}, 0)
    for leg, exten in ((B, "201"), (C, "202")):
        tracker.feed({"Event": "Newchannel", **leg, "CallerIDNum": exten, "Exten": exten}, 0)
        tracker.feed({"Event": "DialBegin", **A, "DestExten": exten}, 0)
    for leg, status in ((B, "ANSWER" if answered_by == "B" else "NOANSWER"), (C, "CANCEL")):
        tracker.feed(
            {"Event": "DialEnd", **A, "DestUniqueid": leg["Uniqueid"], "DialStatus": status}, 2
        )
    for channel in (C, B, A):
        tracker.feed({"Event": "Hangup", **channel, "Cause": "16"}, 62)


def test_a_call_without_a_cdr_is_reported_after_the_grace_from_its_events() -> None:
    tracker = CallTracker(grace=5)
    _ring_two_phones(tracker, answered_by="B")
    assert tracker.due(66) == [], "still waiting for a Cdr"
    (raw,) = tracker.due(67)
    call = call_of(raw, "Europe/Berlin")
    assert (call.status, call.talk_seconds, call.caller, call.callee) == (
        "completed",
        60,
        "+4917612345678",
        "600",
    )
    assert call.native_ids == ("100.1",) and call.direction is Direction.INBOUND
    assert tracker.due(1000) == [] and tracker.calls == {}


def test_an_unanswered_ring_group_is_no_answer_not_canceled() -> None:
    tracker = CallTracker(grace=0)
    _ring_two_phones(tracker, answered_by=None)
    (raw,) = tracker.due(62)
    assert call_of(raw, "UTC").status == "no-answer"


def test_a_cdr_in_time_replaces_the_events_and_carries_the_linkedid() -> None:
    tracker = CallTracker(grace=5)
    _ring_two_phones(tracker, answered_by="B")
    cdr = {
        "Event": "Cdr",
        "Source": "+4917612345678",
        "Destination": "600",
        "StartTime": "2026-03-02 09:30:00",
        "BillableSeconds": "58",
        "Disposition": "ANSWERED",
        "UniqueID": "100.1",
    }
    (raw,) = tracker.feed(cdr, 63)
    assert tracker.due(1000) == [], "the Cdr took the call's place"
    call = call_of(raw, "Europe/Berlin")
    assert (call.talk_seconds, call.start.isoformat()) == (58, "2026-03-02T09:30:00+01:00")
    assert raw.external_id == "100.1:600" and json.loads(raw.data)["Linkedid"] == "100.1"


def test_a_lost_connection_reports_what_ended_and_forgets_calls_in_progress() -> None:
    tracker = CallTracker(grace=60)
    _ring_two_phones(tracker, answered_by="B")
    tracker.feed({"Event": "Newchannel", "Uniqueid": "200.1", "Linkedid": "200.1"}, 70)
    assert len(tracker.due(71, everything=True)) == 1
    tracker.reset()
    assert tracker.calls == {} and tracker.linked == {}
