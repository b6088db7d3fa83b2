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
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from connectors.base import MalformedItem
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
