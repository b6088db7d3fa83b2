"""A connector kind for the per-mailbox owner tests, loaded from its dotted path
(tests.integration.mailboxes_connector:MailboxesConnector): like a service account that reads
many mailboxes (Exchange impersonation, a Microsoft 365 tenant), it reads a folder whose
subfolders are named by their owners' addresses, one batch per mailbox, and sets each raw's
`owner` to that address."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from connectors.base import FileConnector
from connectors.mail import translate_in
from hub.model import Interaction, RawItem

KIND = "tests.integration.mailboxes_connector:MailboxesConnector"


class MailboxesConnector(FileConnector):
    kind = KIND

    def _read(self, cursor: dict[str, Any]) -> Iterator[tuple[list[RawItem], dict[str, Any]]]:
        done = list(cursor.get("mailboxes", []))
        for mailbox in sorted(Path(self.settings["path"]).iterdir()):
            if mailbox.name in done:
                continue
            raws = [
                RawItem(f"{mailbox.name}/{file.name}", file.read_bytes(), owner=mailbox.name)
                for file in sorted(mailbox.glob("*.eml"))
            ]
            done.append(mailbox.name)
            yield raws, {"mailboxes": list(done)}

    def translate(self, raw: RawItem) -> Interaction:
        return translate_in(self.context, raw.data)
