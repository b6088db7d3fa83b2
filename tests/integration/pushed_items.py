"""A test-only connector kind for calls and mails pushed as JSON through
`hub.pipeline.ingest_pushed`, so that tests order the arrival of items as they need:

    {"type": "call", "id", "start", "from", "to", "status", "seconds", "legs"}
    {"type": "mail", "id", "start", "from", "to", "subject"}

Calls go through the shared call translator (connectors.calls), as every telephony kind's do.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any

from connectors.base import Connector
from connectors.calls import Call, call_interaction
from hub.model import AddressKind, Channel, Interaction, Participant, RawItem, Role

KIND = "tests.integration.pushed_items:JsonItems"


class JsonItems(Connector):
    kind = KIND

    async def _fetch(
        self, cursor: dict[str, Any]
    ) -> AsyncIterator[tuple[list[RawItem], dict[str, Any]]]:
        return
        yield  # pragma: no cover - pushed only

    def translate(self, raw: RawItem) -> Interaction:
        item = json.loads(raw.data)
        start = datetime.fromisoformat(item["start"])
        if item["type"] == "mail":
            return Interaction(
                channel=Channel.EMAIL,
                occurred_at=start,
                dedupe_key=f"mid:<{item['id']}@pushed.test>",
                subject=item.get("subject", ""),
                message_id=f"<{item['id']}@pushed.test>",
                participants=[
                    Participant(Role.FROM, item["from"], AddressKind.EMAIL),
                    Participant(Role.TO, item["to"], AddressKind.EMAIL),
                ],
            )
        return call_interaction(
            Call(
                key=f"{self.name}:{item['id']}",
                start=start,
                caller=item["from"],
                callee=item["to"],
                status=item.get("status", "completed"),
                talk_seconds=item.get("seconds"),
                native_ids=(item["id"], *item.get("legs", ())),
            )
        )


def pushed(type_: str, id_: str, start: str, from_: str, to: str, **more: Any) -> RawItem:
    """One item to push; `start` an ISO time with offset."""
    item = {"type": type_, "id": id_, "start": start, "from": from_, "to": to, **more}
    return RawItem(id_, json.dumps(item).encode(), "application/json")
