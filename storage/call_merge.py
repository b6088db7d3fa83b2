"""One call reported by two systems is one interaction with two sources.

A PBX (its CDR, its webhook, the AMI) and the carrier (Twilio) both report the call a customer
made. Their ids have nothing in common, so the dedupe key cannot join them; what they share is
the two parties and the start. A new call that no dedupe key matched is looked up by its pair
of normalised numbers (sorted, so either side may call itself the caller) in
`call_parties`, as a range of (pair, start) within `WINDOW`, among calls that no source of the
same connector reported (a connector reports a call once: two calls of one connector are two
calls, however close). The nearest start wins; the new report becomes one more source of it.

A call with a withheld or unreadable number has no pair and is never joined: two withheld
callers within a minute are not one person.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import exists, select
from sqlalchemy.ext.asyncio import AsyncSession

from hub.model import AddressKind, Channel, Interaction
from storage.tables import CallPartiesRow, InteractionRow, SourceRow

if TYPE_CHECKING:
    from storage.ingest import StoredItem

# Two systems' clocks and their idea of "start" (the PBX's when the trunk rang, the carrier's
# when it routed the call) differ by seconds, rarely more; a minute is what the issue names.
WINDOW = timedelta(seconds=60)
CHUNK = 400  # pairs per statement
PAIR_LENGTH = 80  # call_parties.pair


@dataclass(frozen=True)
class SameCall:
    """The stored call a new report joins, with what `wins` compares."""

    interaction_id: int
    occurred_at: datetime
    extra: dict[str, Any]
    duration_seconds: int | None


def party_pair(item: StoredItem) -> str | None:
    """The call's two normalised numbers, sorted and joined; None for anything else, and for a
    call of which a party has no readable number."""
    if item.interaction.channel is not Channel.CALL:
        return None
    numbers = [p.normalized or "" for p in item.participants if p.kind == AddressKind.PHONE]
    if len(numbers) != 2 or not all(numbers):
        return None
    pair = "|".join(sorted(numbers))
    return pair if len(pair) <= PAIR_LENGTH else None


async def same_calls(
    session: AsyncSession, connector: str, items: Iterable[StoredItem]
) -> dict[str, SameCall]:
    """For each new call of `items` (by dedupe key), the stored call of another connector with
    the same pair that started nearest to it within WINDOW. Each stored call is taken once per
    batch: two calls of this connector are never folded into one."""
    wanted: dict[str, list[StoredItem]] = {}
    for item in items:
        pair = party_pair(item)
        if pair is not None:
            wanted.setdefault(pair, []).append(item)
    if not wanted:
        return {}
    times = [i.interaction.occurred_at for group in wanted.values() for i in group]
    low, high = min(times) - WINDOW, max(times) + WINDOW
    stored: dict[str, list[SameCall]] = {}
    pairs = sorted(wanted)
    for start in range(0, len(pairs), CHUNK):
        rows = await session.execute(
            select(
                CallPartiesRow.pair,
                CallPartiesRow.interaction_id,
                CallPartiesRow.occurred_at,
                InteractionRow.extra,
                InteractionRow.duration_seconds,
            )
            .join(InteractionRow, InteractionRow.id == CallPartiesRow.interaction_id)
            .where(
                CallPartiesRow.pair.in_(pairs[start : start + CHUNK]),
                CallPartiesRow.occurred_at >= low,
                CallPartiesRow.occurred_at <= high,
                ~exists().where(
                    SourceRow.interaction_id == CallPartiesRow.interaction_id,
                    SourceRow.connector == connector,
                ),
            )
        )
        for pair, item_id, at, extra, seconds in rows:
            stored.setdefault(pair, []).append(SameCall(item_id, at, extra or {}, seconds))
    found: dict[str, SameCall] = {}
    taken: set[int] = set()
    for pair, group in wanted.items():
        for item in group:
            at = item.interaction.occurred_at
            near = [
                c
                for c in stored.get(pair, ())
                if abs(c.occurred_at - at) <= WINDOW and c.interaction_id not in taken
            ]
            if near:
                best = min(near, key=lambda c: (abs(c.occurred_at - at), c.interaction_id))
                taken.add(best.interaction_id)
                found[item.interaction.dedupe_key] = best
    return found


# A report's rank: over (a final state beats one still ringing), answered (if either system
# saw the call answered, somebody talked: the other saw a leg that was not), then the longer
# talk time.
_FINAL = frozenset({"completed", "busy", "no-answer", "failed", "canceled"})


def _rank(status: object, seconds: int | None) -> tuple[bool, bool, int]:
    return (status in _FINAL, status == "completed", seconds or 0)


def wins(new: Interaction, stored: SameCall) -> bool:
    """Whether the new report's subject, outcome and duration replace the stored call's.

    Neither system is the better witness as such: a carrier measures its trunk leg (queue and
    IVR included), a PBX the leg to the extension. What one can say is that an answered report
    knows more than an unanswered one (the other saw the leg that rang in vain, a forwarded
    leg, the queue), and that the longer of two talk times holds the shorter one. Ties keep
    the stored report, so that the timeline does not change for nothing.
    """
    return _rank(new.extra.get("status"), new.duration_seconds) > _rank(
        stored.extra.get("status"), stored.duration_seconds
    )


def party_rows(
    ids: dict[str, int], items: Iterable[tuple[str, StoredItem]]
) -> list[tuple[int, str, datetime]]:
    """call_parties rows of newly stored calls, in the column order of `PARTY_COLUMNS`."""
    rows = []
    for key, item in items:
        pair = party_pair(item)
        if pair is not None:
            rows.append((ids[key], pair, item.interaction.occurred_at))
    return rows


PARTY_COLUMNS = ("interaction_id", "pair", "occurred_at")
