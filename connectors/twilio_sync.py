"""One pass of the `twilio` connector over its account: what changed since the cursor.

Twilio lists newest first and filters by date only, so a pass reads a window (from the day
before the last sync) whole, folds child legs into their parents, and hands on only what the
last pass did not already deliver in the same state (connectors/twilio.py explains the cursor).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from connectors.calls import OPEN_STATUSES
from connectors.twilio import CALL_STATUSES, twilio_time
from connectors.twilio_api import TwilioAccount, TwilioApi, TwilioRefused, connect
from connectors.twilio_callbacks import message_resource_raw
from hub.model import RawItem

log = logging.getLogger(__name__)
OVERLAP = timedelta(days=1)  # Twilio's StartTime/DateSent filters take a date, not a time
# How long before the newest change already delivered a change may still show up in a listing
# (Twilio's lists are eventually consistent): versions in this span are compared one by one.
SETTLE = timedelta(minutes=10)


@dataclass
class _Group:
    """A call and its child legs: one raw item."""

    call: dict[str, Any]
    legs: list[dict[str, Any]] = field(default_factory=list)
    recordings: list[dict[str, Any]] = field(default_factory=list)
    transcriptions: list[dict[str, Any]] = field(default_factory=list)

    @property
    def sid(self) -> str:
        return str(self.call["sid"])

    def changed_at(self) -> datetime | None:
        times = [twilio_time(c.get("date_updated")) for c in (self.call, *self.legs)]
        times += [twilio_time(r.get("date_created")) for r in self.recordings]
        known = [t for t in times if t is not None]
        return max(known) if len(known) == len(times) else None

    def version(self) -> str:
        parts = [(c.get("sid"), c.get("date_updated"), c.get("status")) for c in self.legs]
        return json.dumps(
            [
                self.call.get("date_updated"),
                self.call.get("status"),
                parts,
                sorted(str(r.get("sid")) for r in self.recordings),
                sorted((str(t.get("sid")), str(t.get("status"))) for t in self.transcriptions),
            ]
        )

    def is_open(self) -> bool:
        """Still queued, ringing or in progress: asked for by its SID until it is over."""
        return CALL_STATUSES.get(str(self.call.get("status"))) in OPEN_STATUSES

    def raw(self) -> RawItem:
        legs = sorted(self.legs, key=lambda leg: str(leg.get("sid")))
        doc = {
            "call": self.call,
            "legs": legs,
            "recordings": self.recording_sids(),
            "transcriptions": [
                {"sid": t["sid"], "recording_sid": t.get("recording_sid"), "text": text}
                for t in sorted(self.transcriptions, key=lambda t: str(t.get("sid")))
                if (text := t.get("transcription_text"))
            ],
        }
        return RawItem(self.sid, json.dumps(doc, sort_keys=True).encode(), "application/json")

    def recording_sids(self) -> list[str]:
        return sorted(str(r["sid"]) for r in self.recordings if r.get("sid"))


@dataclass
class _Message:
    message: dict[str, Any]

    @property
    def sid(self) -> str:
        return str(self.message["sid"])

    def changed_at(self) -> datetime | None:
        return twilio_time(self.message.get("date_updated"))

    def version(self) -> str:
        return json.dumps([self.message.get("date_updated"), self.message.get("status")])

    def raw(self) -> RawItem:
        return message_resource_raw(self.message)


async def changes(
    account: TwilioAccount, cursor: Mapping[str, Any], history_days: int
) -> tuple[list[RawItem], dict[str, Any]]:
    """The raw items that changed since `cursor`, and the cursor after them."""
    started = datetime.now(UTC)
    since = _parse(cursor.get("since")) or started - timedelta(days=history_days) + OVERLAP
    day = (since - OVERLAP).date().isoformat()
    async with connect(account) as api:
        recordings = [
            r
            async for page in api.pages("Recordings.json", "recordings", {"DateCreated>": day})
            for r in page
        ]
        calls = {
            c["sid"]: c
            async for page in api.pages("Calls.json", "calls", {"StartTime>": day})
            for c in page
            if c.get("sid")
        }
        for sid in cursor.get("open") or ():
            if sid not in calls and (found := await _call(api, str(sid))):
                calls[found["sid"]] = found
        groups = await _fold(api, calls, recordings)
        messages = [
            _Message(m)
            async for page in api.pages("Messages.json", "messages", {"DateSent>": day})
            for m in page
            if m.get("sid")
        ]
    return _delta([*groups, *messages], cursor, started)


async def _call(api: TwilioApi, sid: str) -> dict[str, Any] | None:
    try:
        found = await api.get(f"Calls/{sid}.json")
    except TwilioRefused as e:
        if e.status != 404:
            raise
        log.warning("%s: call %s is no longer at Twilio; not polled again", api.account.name, sid)
        return None
    return found if isinstance(found, dict) and found.get("sid") else None


async def _fold(
    api: TwilioApi, calls: dict[str, dict[str, Any]], recordings: list[dict[str, Any]]
) -> list[_Group]:
    """Parents with their legs; a leg whose parent started before the window brings its
    parent along (asked for by SID), a leg whose parent Twilio no longer has stands alone."""
    for parent in {c["parent_call_sid"] for c in calls.values() if c.get("parent_call_sid")}:
        if parent not in calls and (found := await _call(api, str(parent))):
            calls[str(parent)] = found
    groups = {
        sid: _Group(call)
        for sid, call in calls.items()
        if not call.get("parent_call_sid") or call["parent_call_sid"] not in calls
    }
    for sid, call in calls.items():
        if sid not in groups:
            groups[_root(calls, sid)].legs.append(call)
    owner = {leg["sid"]: g for g in groups.values() for leg in g.legs} | groups
    for recording in recordings:
        if group := owner.get(recording.get("call_sid")):
            group.recordings.append(recording)
            group.transcriptions += await _transcriptions(api, str(recording.get("sid") or ""))
    return list(groups.values())


async def _transcriptions(api: TwilioApi, recording_sid: str) -> list[dict[str, Any]]:
    """A recording's finished transcriptions (listed below the recording: one request per
    recording of the window, as Twilio's list of all transcriptions has no time filter)."""
    if not recording_sid:
        return []
    try:
        page = await api.get(f"Recordings/{recording_sid}/Transcriptions.json")
    except TwilioRefused as e:
        if e.status != 404:
            raise
        return []
    found = page.get("transcriptions") if isinstance(page, dict) else None
    return [t for t in found or () if isinstance(t, dict) and t.get("status") == "completed"]


def _root(calls: Mapping[str, Mapping[str, Any]], sid: str) -> str:
    seen = {sid}
    while (parent := calls[sid].get("parent_call_sid")) in calls and parent not in seen:
        sid = str(parent)
        seen.add(sid)
    return sid


def _delta(
    items: Iterable[_Group | _Message], cursor: Mapping[str, Any], started: datetime
) -> tuple[list[RawItem], dict[str, Any]]:
    """What to deliver, and the next cursor: `updated` the newest change seen, `seen` the
    versions delivered within SETTLE of it, `open` the calls not over yet."""
    updated = _parse(cursor.get("updated"))
    seen: Mapping[str, str] = cursor.get("seen") or {}
    raws: list[RawItem] = []
    listed: list[tuple[str, str, datetime | None]] = []
    still_open: list[str] = []
    for item in items:
        at, version = item.changed_at(), item.version()
        listed.append((item.sid, version, at))
        if isinstance(item, _Group) and item.is_open():
            still_open.append(item.sid)
        old = at is not None and updated is not None and at < updated - SETTLE
        if not old and seen.get(item.sid) != version:
            raws.append(item.raw())
    newest = max([at for _, _, at in listed if at] + ([updated] if updated else []), default=None)
    next_cursor: dict[str, Any] = {
        "since": started.isoformat(),
        "updated": newest.isoformat() if newest else None,
        "seen": {
            sid: version
            for sid, version, at in listed
            if at is None or newest is None or at >= newest - SETTLE
        },
        "open": sorted(still_open),
    }
    return raws, next_cursor


def _parse(value: Any) -> datetime | None:
    try:
        return datetime.fromisoformat(str(value)) if value else None
    except ValueError:
        return None
