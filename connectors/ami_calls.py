"""Calls from the Asterisk Manager Interface's events (docs.asterisk.org, AMI Events: Newchannel,
DialBegin, DialEnd, Hangup, Cdr).

A `Cdr` event is the call's record as Master.csv would hold it, and wins. But Asterisk writes
no CDR for unanswered calls by default (cdr.conf `unanswered = no`), exactly the missed calls a
call center needs, and not every PBX loads cdr_manager. So `CallTracker` follows each call by
its Linkedid from Newchannel through DialBegin/DialEnd to the Hangup of its last channel, and
when no Cdr for it arrives within `grace` seconds of that, reports the call as those events
told it. Both reports of one call share the item id and key that the Master.csv reader uses
(`asterisk:{uniqueid}:{dst}`), so a later Cdr, or the CSV file, refines the same call.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

from connectors.base import MalformedItem
from connectors.calls import DISPOSITIONS, Call
from hub.model import Direction, RawItem

CDR_TIME = "%Y-%m-%d %H:%M:%S"
MAX_OPEN_CALLS = 10_000  # calls followed at once; more means hangups were missed (a reconnect)
# DialEnd's DialStatus (docs.asterisk.org, app Dial) as the shared call statuses.
DIAL_STATUSES = {
    "ANSWER": "completed",
    "BUSY": "busy",
    "NOANSWER": "no-answer",
    "CANCEL": "canceled",
    "CONGESTION": "failed",
    "CHANUNAVAIL": "failed",
}
# Of a ring group's legs, the one that got furthest tells the call: one phone answering beats
# the others being cancelled, a phone ringing out beats the rest being cancelled when it did.
_RANK = {"ANSWER": 4, "NOANSWER": 3, "BUSY": 2, "CANCEL": 1}
# Hangup causes (Q.850) for a call that dialled nobody: answered by the PBX itself, or not.
CAUSES = {"16": "completed", "17": "busy", "18": "no-answer", "19": "no-answer", "21": "failed"}


@dataclass
class TrackedCall:
    """One call as its channels' events told it, until its last channel hangs up."""

    uniqueid: str  # of the channel that began the call
    linkedid: str
    start: float
    caller: str
    caller_name: str
    callee: str
    callee_name: str = ""
    answered: float | None = None
    dial_status: str = ""
    end: float = 0.0
    cause: str = ""
    channels: set[str] = field(default_factory=set)

    def status(self) -> str:
        if self.dial_status:
            return DIAL_STATUSES.get(self.dial_status, "failed")
        return CAUSES.get(self.cause, "failed")

    def raw(self) -> RawItem:
        facts = asdict(self)
        facts.pop("channels")
        facts.update(event="Hangup", status=self.status())
        return RawItem(
            f"{self.uniqueid}:{self.callee}", json.dumps(facts).encode(), "application/json"
        )


@dataclass
class CallTracker:
    grace: float = 5.0  # seconds to wait for a Cdr after the last Hangup
    calls: dict[str, TrackedCall] = field(default_factory=dict)  # by linkedid
    linked: dict[str, str] = field(default_factory=dict)  # channel uniqueid -> linkedid
    ended: dict[str, tuple[float, TrackedCall]] = field(default_factory=dict)  # by uniqueid
    # uniqueid -> linkedid of channels gone, for a Cdr that comes after its call was stored
    recent: dict[str, str] = field(default_factory=dict)

    def feed(self, event: dict[str, str], now: float) -> list[RawItem]:
        """The items an event completes (a Cdr); follows the calls' state otherwise."""
        kind = event.get("Event", "")
        at = _event_time(event, now)
        uniqueid = event.get("Uniqueid", "")
        linkedid = event.get("Linkedid") or uniqueid
        if kind == "Newchannel" and uniqueid:
            call = self.calls.get(linkedid)
            if call is None:
                if len(self.calls) >= MAX_OPEN_CALLS:
                    self._forget_oldest()
                call = TrackedCall(
                    uniqueid,
                    linkedid,
                    at,
                    _number(event.get("CallerIDNum", "")),
                    _name(event.get("CallerIDName", "")),
                    event.get("Exten", ""),
                )
                self.calls[linkedid] = call
            call.channels.add(uniqueid)
            self.linked[uniqueid] = linkedid
        elif kind == "DialBegin" and (call := self.calls.get(linkedid)):
            dest = _number(event.get("DestCallerIDNum", "")) or event.get("DestExten", "")
            if dest and call.callee in ("", "s"):
                call.callee = dest
            call.callee_name = call.callee_name or _name(event.get("DestCallerIDName", ""))
        elif kind == "DialEnd" and (call := self.calls.get(linkedid)):
            status = event.get("DialStatus", "").upper()
            if status == "ANSWER" and call.answered is None:
                call.answered = at
            if _RANK.get(status, 0) > _RANK.get(call.dial_status, -1):
                call.dial_status = status  # of parallel rings, the one that got furthest
        elif kind == "Hangup" and uniqueid:
            self._hangup(uniqueid, linkedid, event.get("Cause", ""), at, now)
        elif kind == "Cdr":
            return [self._cdr(event)]
        return []

    def _hangup(self, uniqueid: str, linkedid: str, cause: str, at: float, now: float) -> None:
        self.recent[uniqueid] = self.linked.pop(uniqueid, linkedid)
        if len(self.recent) > MAX_OPEN_CALLS:
            del self.recent[next(iter(self.recent))]
        call = self.calls.get(linkedid)
        if call is None:
            return
        call.channels.discard(uniqueid)
        if uniqueid == call.uniqueid:
            call.cause = cause
        if not call.channels:
            del self.calls[linkedid]
            call.end = at
            self.ended[call.uniqueid] = (now + self.grace, call)

    def _cdr(self, event: dict[str, str]) -> RawItem:
        uniqueid = event.get("UniqueID", "")
        waiting = self.ended.pop(uniqueid, None)
        linkedid = (
            _field(event, "linkedid")
            or (waiting[1].linkedid if waiting else "")
            or self.linked.get(uniqueid, "")
            or self.recent.get(uniqueid, "")
        )
        facts = {**event, "Linkedid": linkedid}
        dst = event.get("Destination", "")
        return RawItem(f"{uniqueid}:{dst}", json.dumps(facts).encode(), "application/json")

    def due(self, now: float, everything: bool = False) -> list[RawItem]:
        """Ended calls whose Cdr did not come in time (all of them with `everything`, when
        the connection is lost: what comes after a reconnect belongs to new calls)."""
        over = [u for u, (deadline, _) in self.ended.items() if everything or deadline <= now]
        return [self.ended.pop(u)[1].raw() for u in over]

    def next_deadline(self) -> float | None:
        return min((deadline for deadline, _ in self.ended.values()), default=None)

    def reset(self) -> None:
        """Forget calls in progress: after a reconnect their remaining events are lost."""
        self.calls.clear()
        self.linked.clear()

    def _forget_oldest(self) -> None:
        oldest = min(self.calls, key=lambda k: self.calls[k].start)
        for channel in self.calls.pop(oldest).channels:
            self.linked.pop(channel, None)


def call_of(raw: RawItem, timezone: str) -> Call:
    """The Call an item of `CallTracker` describes (a Cdr event, or a call's Hangup)."""
    try:
        facts: dict[str, Any] = json.loads(raw.data)
        if facts.get("event") == "Hangup":
            return _hangup_call(facts)
        if facts.get("Event") == "Cdr":
            return _cdr_call(facts, timezone)
    except (ValueError, KeyError, TypeError) as e:
        raise MalformedItem(f"an AMI event that cannot be read: {type(e).__name__}: {e}") from e
    raise MalformedItem("neither a Cdr event nor a call's Hangup")


def _cdr_call(cdr: dict[str, str], timezone: str) -> Call:
    uniqueid, dst = cdr["UniqueID"], cdr.get("Destination", "")
    start = datetime.strptime(cdr["StartTime"], CDR_TIME).replace(tzinfo=ZoneInfo(timezone))
    caller = cdr.get("Source", "")
    ids = tuple(dict.fromkeys(i for i in (uniqueid, cdr.get("Linkedid", "")) if i))
    return Call(
        key=f"asterisk:{uniqueid}:{dst}",
        start=start,
        caller=caller,
        callee=dst,
        status=DISPOSITIONS.get(cdr.get("Disposition", "").strip().upper(), "failed"),
        direction=direction(caller, dst),
        talk_seconds=int(cdr.get("BillableSeconds") or 0),
        caller_name=cdr.get("CallerID", "").split("<")[0].strip().strip('"'),
        native_ids=ids,
        extra={"uniqueid": uniqueid, **({"linkedid": ids[1]} if len(ids) > 1 else {})},
    )


def _hangup_call(facts: dict[str, Any]) -> Call:
    uniqueid, linkedid = str(facts["uniqueid"]), str(facts["linkedid"])
    answered = facts.get("answered")
    talk = int(float(facts["end"]) - float(answered)) if answered is not None else 0
    ids = tuple(dict.fromkeys((uniqueid, linkedid)))
    return Call(
        key=f"asterisk:{uniqueid}:{facts['callee']}",
        start=datetime.fromtimestamp(float(facts["start"]), UTC),
        caller=str(facts["caller"]),
        callee=str(facts["callee"]),
        status=str(facts["status"]),
        direction=direction(str(facts["caller"]), str(facts["callee"])),
        talk_seconds=max(0, talk),
        caller_name=str(facts.get("caller_name", "")),
        callee_name=str(facts.get("callee_name", "")),
        native_ids=ids,
        extra={"uniqueid": uniqueid, "linkedid": linkedid},
    )


def direction(caller: str, callee: str) -> Direction:
    """Seen from our side: an extension (at most four digits) calling out is outbound, two
    extensions are internal, anything else is a customer calling in."""
    inside = [n.isdigit() and len(n) <= 4 for n in (caller, callee)]
    if all(inside):
        return Direction.INTERNAL
    return Direction.OUTBOUND if inside[0] else Direction.INBOUND


def _event_time(event: dict[str, str], now: float) -> float:
    """The event's own time (manager.conf `timestampevents = yes`), else when it arrived."""
    try:
        return float(event["Timestamp"])
    except (KeyError, ValueError):
        return now


def _number(value: str) -> str:
    return "" if value.strip() in ("", "<unknown>", "anonymous") else value.strip()


def _name(value: str) -> str:
    return "" if value.strip() == "<unknown>" else value.strip()


def _field(event: dict[str, str], name: str) -> str:
    """A field in any case: cdr_manager.conf's [mappings] name custom fields as they like."""
    return next((v for k, v in event.items() if k.lower() == name), "")
