"""Attendees' replies that arrive by mail (iMIP REPLY, connectors/imip.py): the answer goes to
the stored meeting, and the mail is not logged as a conversation with the customer.

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
from storage.meeting_revision import apply_answers

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
    stored, in a transaction of its own, as storage.missed_calls.follow_up). An answer counts
    only for the address that sent the mail: a reply cannot answer for someone else."""
    changed = 0
    replies = [(item, facts) for item in items if (facts := _facts(item)) is not None]
    if not replies:
        return 0
    async with hub.sessions() as session, session.begin():
        for item, facts in replies:
            senders = {
                p.address.lower() for p in item.interaction.participants if p.role is Role.FROM
            }
            answers = facts.get("answers")
            if not isinstance(answers, dict):
                continue
            own = {a: str(v) for a, v in answers.items() if a in senders}
            if not own:
                log.info("iMIP reply %s answers for others than its sender", item.raw.external_id)
                continue
            sequence = facts.get("sequence")
            changed += len(
                await apply_answers(
                    session,
                    str(facts.get("uid", "")),
                    str(facts["occurrence"]) if facts.get("occurrence") else None,
                    sequence if isinstance(sequence, int) else 0,
                    own,
                )
            )
    return changed
