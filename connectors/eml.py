"""A folder of .eml files (recursively); each file is read once unless it changes."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, ClassVar

from connectors.base import ConnectorError, FileConnector
from connectors.folders import list_folder, outside_link, refuse_outside_link
from connectors.mail import translate_in
from hub.model import Interaction, RawItem


def folder_changes(
    files: list[Path], root: Path, done: dict[str, list[float]], outside: Mapping[Path, Path]
) -> list[tuple[str, Path, list[float]]]:
    """Files that are new or changed (by size and mtime) since the cursor's record; a link out
    of the folder by its own, so that what it leads to is not even looked at."""
    changed = []
    for file in files:
        stat = file.lstat() if file in outside else file.stat()
        key = file.relative_to(root).as_posix()
        mark = [stat.st_size, stat.st_mtime]
        if done.get(key) != mark:
            changed.append((key, file, mark))
    return changed


def read_folder(
    connector: FileConnector,
    files: list[Path],
    root: Path,
    cursor: dict[str, Any],
    key_of: Any,
    levels_of: Callable[[str], list[str]],
    outside: Mapping[Path, Path],
) -> Iterator[tuple[list[RawItem], dict[str, Any]]]:
    """Batches of changed files; the cursor remembers each file read by size and mtime.

    A file in a folder that `private_marker` names (`levels_of` gives the folders of a key) is
    not read: it goes on as a private item, skipped and counted, and the cursor remembers it.
    A link that leads `outside` the folder is not read either: it goes on to be quarantined.
    """
    done: dict[str, list[float]] = dict(cursor.get("files", {}))
    batch: list[RawItem] = []
    for key, file, mark in folder_changes(files, root, done, outside):
        private = connector.private_folder(levels_of(key))
        if file in outside and not private:
            batch.append(outside_link(key_of(key), key, outside[file]))
        else:
            data = b"" if private else file.read_bytes()
            batch.append(RawItem(key_of(key), data, private=private))
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
