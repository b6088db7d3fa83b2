"""Attendees' replies that arrive by mail (iMIP REPLY, connectors/imip.py): the answer goes to
the stored meeting, and the mail is not logged as a conversation with the customer. A reply
synced before its meeting (or before the revision it answers) is kept, and its answer given to
the meeting when that is stored (storage.meeting_answers).

Why stored and not skipped: the reply is in its owner's mailbox like any other mail; stored
with `not_logged` set (as bulk mail is: DESIGN.md "Not logged") it stays findable in the
owner's unmatched items ("bulk" tab), a re-sync recognises it by its source and applies
nothing twice, and a person can still see what came in. Not logged, it is attributed to no
customer and passes no attribution on to mails that answer it.
"""

from __future__ import annotations

import logging
from dataclasses import replace

from connectors.imip import EXTRA_KEY
from hub.bootstrap import Hub
from hub.model import Channel, Role
from storage.ingest import StoredItem
from storage.meeting_answers import Reply, apply_reply, keep_replies

log = logging.getLogger(__name__)
NOT_LOGGED = "bulk or automated (iMIP reply to a meeting invitation)"


def mark_replies(items: list[StoredItem]) -> list[StoredItem]:
    """The batch with every iMIP reply mail not logged: no attributions, no review questions."""
    return [
        replace(item, not_logged=NOT_LOGGED, attributions=[], review=[])
        if _facts(item) is not None
        else item
        for item in items
    ]


def _facts(item: StoredItem) -> dict[str, object] | None:
    if item.interaction.channel is not Channel.EMAIL:
        return None
    facts = item.interaction.extra.get(EXTRA_KEY)
    return facts if isinstance(facts, dict) else None


async def apply_replies(hub: Hub, items: list[StoredItem]) -> int:
    """Record the answers of the batch's replies on their meetings (after the batch is
    stored, in a transaction of its own, as storage.missed_calls.follow_up), and keep them
    for the meetings, or their revisions, that are stored later (storage.meeting_answers).
    An answer counts only for the address that sent the mail: a reply cannot answer for
    someone else."""
    replies = [
        (item.interaction.dedupe_key, reply)
        for item in items
        if (facts := _facts(item)) is not None
        for reply in _own_answers(item, facts)
    ]
    if not replies:
        return 0
    changed = 0
    async with hub.sessions() as session, session.begin():
        await keep_replies(session, replies)
        for _, reply in replies:
            changed += len(await apply_reply(session, reply))
    return changed


def _own_answers(item: StoredItem, facts: dict[str, object]) -> list[Reply]:
    senders = {p.address.lower() for p in item.interaction.participants if p.role is Role.FROM}
    answers = facts.get("answers")
    if not isinstance(answers, dict):
        return []
    sequence = facts.get("sequence")
    own = [
        Reply(
            uid=str(facts.get("uid", "")),
            occurrence=str(facts["occurrence"]) if facts.get("occurrence") else None,
            sequence=sequence if isinstance(sequence, int) else 0,
            address=address,
            answer=str(answer),
            sent_at=item.interaction.occurred_at,
        )
        for address, answer in answers.items()
        if address in senders
    ]
    if not own:
        log.info("iMIP reply %s answers for others than its sender", item.raw.external_id)
    return own
