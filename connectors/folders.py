"""Listing a folder of mail files (an .eml folder, a Maildir) without leaving it by a link.

The folder is what the connector was set up to read. A symbolic link in it may lead anywhere
the crmhub process can read: another user's mail, the server's own files. Such a link is not
followed; it is quarantined with the reason, so that the user sees what was left out and why
(dropping it unseen would look like lost mail, failing the whole sync would stop every good
file over one bad link). Links that stay inside the folder are fine: a link to a file is read
like the file, a link to a folder is not walked again (what it leads to is read where it lies,
and a link to a parent cannot send the walk round in circles).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from connectors.base import FileConnector, MalformedItem
from hub.model import RawItem

log = logging.getLogger(__name__)

# The content type of the stand-in for a link that leads out of the folder: its data is the
# reason, never anything the link leads to.
OUTSIDE_LINK = "text/x-crmhub-outside-link"


@dataclass
class FolderListing:
    """The files to read (links out of the folder among them, sorted) and where those lead."""

    files: list[Path] = field(default_factory=list)
    outside: dict[Path, Path] = field(default_factory=dict)


def list_folder(root: Path, wanted: Callable[[Path], bool]) -> FolderListing:
    """Every file under `root` that `wanted` accepts, and every link that leads out of `root`
    (to a file `wanted` accepts, or to a folder, whose files it cannot see without following)."""
    base = root.resolve()
    listing = FolderListing()
    folders = [root]
    while folders:
        folder = folders.pop()
        try:
            entries = list(os.scandir(folder))
        except PermissionError:
            if folder == root:
                raise
            log.warning("%s: permission denied; the files in this folder are not read", folder)
            continue
        for entry in entries:
            path = Path(entry.path)
            if entry.is_symlink():
                target = Path(os.path.realpath(path))
                if not target.is_relative_to(base):
                    if entry.is_dir() or wanted(path):
                        listing.outside[path] = target
                elif entry.is_file() and wanted(path):
                    listing.files.append(path)
            elif entry.is_dir(follow_symlinks=False):
                folders.append(path)
            elif entry.is_file(follow_symlinks=False) and wanted(path):
                listing.files.append(path)
    listing.files = sorted([*listing.files, *listing.outside])
    return listing


def outside_link(external_id: str, key: str, target: Path) -> RawItem:
    """The stand-in for a link out of the folder, which `refuse_outside_link` quarantines."""
    reason = f"link leads outside the folder: {key} -> {target}; it is not read"
    return RawItem(external_id, reason.encode("utf-8", "surrogateescape"), OUTSIDE_LINK)


def refuse_outside_link(raw: RawItem) -> None:
    """Raise MalformedItem for the stand-in of a link out of the folder, so it is quarantined."""
    if raw.content_type == OUTSIDE_LINK:
        raise MalformedItem(raw.data.decode("utf-8", "replace"))


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
