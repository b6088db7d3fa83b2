"""A folder of .eml files (recursively); each file is read once unless it changes."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, ClassVar

from connectors.base import ConnectorError, FileConnector
from connectors.mail import translate_in
from hub.model import Interaction, RawItem


def folder_changes(
    files: list[Path], root: Path, done: dict[str, list[float]]
) -> list[tuple[str, Path, list[float]]]:
    """Files that are new or changed (by size and mtime) since the cursor's record."""
    changed = []
    for file in files:
        stat = file.stat()
        key = file.relative_to(root).as_posix()
        mark = [stat.st_size, stat.st_mtime]
        if done.get(key) != mark:
            changed.append((key, file, mark))
    return changed


def read_folder(
    connector: FileConnector, files: list[Path], root: Path, cursor: dict[str, Any], key_of: Any
) -> Iterator[tuple[list[RawItem], dict[str, Any]]]:
    """Batches of changed files; the cursor remembers each file read by size and mtime."""
    done: dict[str, list[float]] = dict(cursor.get("files", {}))
    batch: list[RawItem] = []
    for key, file, mark in folder_changes(files, root, done):
        batch.append(RawItem(key_of(key), file.read_bytes()))
        done[key] = mark
        if len(batch) >= connector.batch_size:
            yield batch, {"files": dict(done)}
            batch = []
    if batch:
        yield batch, {"files": done}


class EmlConnector(FileConnector):
    kind = "eml"
    options: ClassVar[dict[str, str]] = {
        "path": "a folder holding .eml files (searched recursively)"
    }

    def _read(self, cursor: dict[str, Any]) -> Iterator[tuple[list[RawItem], dict[str, Any]]]:
        root = Path(self.settings["path"]).expanduser()
        if not root.is_dir():
            raise ConnectorError(f"{self.name}: {root} is not a folder")
        files = sorted(p for p in root.rglob("*") if p.suffix.lower() == ".eml" and p.is_file())
        yield from read_folder(self, files, root, cursor, lambda key: key)

    def translate(self, raw: RawItem) -> Interaction:
        path = Path(self.settings["path"]).expanduser() / raw.external_id
        fallback = None
        if path.exists():
            fallback = datetime.fromtimestamp(path.stat().st_mtime, UTC)
        return translate_in(self.context, raw.data, fallback)
