"""A folder of .eml files (recursively); each file is read once unless it changes."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, ClassVar

from connectors.base import ConnectorError, FileConnector
from connectors.folders import list_folder, read_folder, refuse_outside_link
from connectors.mail import translate_in
from hub.model import Interaction, RawItem


class EmlConnector(FileConnector):
    kind = "eml"
    options: ClassVar[dict[str, str]] = {
        "path": "a folder holding .eml files (searched recursively)"
    }

    def _read(self, cursor: dict[str, Any]) -> Iterator[tuple[list[RawItem], dict[str, Any]]]:
        root = Path(self.settings["path"]).expanduser()
        if not root.is_dir():
            raise ConnectorError(f"{self.name}: {root} is not a folder")
        listing = list_folder(root, lambda p: p.suffix.lower() == ".eml")
        yield from read_folder(
            self, listing.files, root, cursor, lambda key: key, _folders, listing.outside
        )

    def translate(self, raw: RawItem) -> Interaction:
        refuse_outside_link(raw)
        path = Path(self.settings["path"]).expanduser() / raw.external_id
        fallback = None
        if path.exists():
            fallback = datetime.fromtimestamp(path.stat().st_mtime, UTC)
        return translate_in(self.context, raw.data, fallback)


def _folders(key: str) -> list[str]:
    """The subfolders a file lies in, outermost first: `Private/2024/a.eml` -> Private, 2024."""
    return key.split("/")[:-1]
