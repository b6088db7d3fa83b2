"""A Maildir (cur/ and new/, and Maildir++ subfolders); keyed by the file's unique name."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, ClassVar

from connectors.base import ConnectorError, FileConnector
from connectors.folders import list_folder, read_folder, refuse_outside_link
from connectors.mail import translate_in
from hub.model import Interaction, RawItem


class MaildirConnector(FileConnector):
    kind = "maildir"
    options: ClassVar[dict[str, str]] = {"path": "the Maildir folder (holding cur/ and new/)"}

    def _read(self, cursor: dict[str, Any]) -> Iterator[tuple[list[RawItem], dict[str, Any]]]:
        root = Path(self.settings["path"]).expanduser()
        if not (root / "cur").is_dir() and not (root / "new").is_dir():
            raise ConnectorError(f"{self.name}: {root} is not a Maildir (no cur/ or new/)")
        listing = list_folder(
            root, lambda p: p.parent.name in ("cur", "new") and not p.name.startswith(".")
        )
        yield from read_folder(
            self, listing.files, root, cursor, lambda key: key, _folders, listing.outside
        )

    def translate(self, raw: RawItem) -> Interaction:
        """The unique part of the file name (before `:2,flags`) stamps the delivery time."""
        refuse_outside_link(raw)
        name = raw.external_id.rsplit("/", 1)[-1]
        fallback = None
        stamp = name.split(".", 1)[0]
        if stamp.isdigit():
            fallback = datetime.fromtimestamp(int(stamp), UTC)
        return translate_in(self.context, raw.data, fallback)


def _folders(key: str) -> list[str]:
    """The folders a message lies in, outermost first: Maildir++ names a subfolder of a
    subfolder `.Private.Arzt` (`.Private.Arzt/cur/1704...` -> Private, Arzt)."""
    return [level for part in key.split("/")[:-2] for level in part.lstrip(".").split(".")]
