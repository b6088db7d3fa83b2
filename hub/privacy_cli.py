"""`crmhub privacy ...` and `crmhub blocklist ...`: data-subject requests, retention and the
blocklist on the command line. hub.cli registers them, and ends their errors (PrivacyError,
BlockEntryError) as one line."""

from __future__ import annotations

import argparse
import asyncio
import sys
from datetime import UTC, datetime
from pathlib import Path

from hub.blocklist import add_block, list_blocks, remove_block
from hub.bootstrap import Hub
from hub.cli_support import with_hub
from hub.privacy import PrivacyError, erase_subject, export_subject, plan_erasure
from hub.retention import apply_retention
from matching.blocklist import BlockEntryError

ACTOR = "cli"


def cmd_export(args: argparse.Namespace) -> int:
    out = Path(args.out)

    async def work(hub: Hub) -> int:
        if not out.parent.is_dir():
            raise PrivacyError(f"--out {args.out}: the folder {out.parent} does not exist")
        summary = await export_subject(hub, args.identifier, out, ACTOR)
        print(
            f"{summary.key}: {summary.items} items, {summary.contacts} contact records, "
            f"{summary.raw_messages} raw messages, {summary.attachments} attachments, "
            f"{summary.quarantined} quarantined items written to {out}"
        )
        return 0

    return asyncio.run(with_hub(work))


def cmd_erase(args: argparse.Namespace) -> int:
    """Without --yes: what would be erased, exit status 2 (nothing changed)."""

    async def work(hub: Hub) -> int:
        if not args.yes:
            plan = await plan_erasure(hub, args.identifier)
            print("\n".join(plan.lines()))
            print("nothing erased yet: run again with --yes to erase this", file=sys.stderr)
            return 2
        counts = await erase_subject(hub, args.identifier, ACTOR)
        print(", ".join(f"{k.replace('_', ' ')} {v}" for k, v in counts.as_json().items()))
        return 0

    return asyncio.run(with_hub(work))


def cmd_retention(args: argparse.Namespace) -> int:
    async def work(hub: Hub) -> int:
        report = await apply_retention(hub, datetime.now(UTC))
        print("\n".join(report.lines()))
        return 0

    return asyncio.run(with_hub(work))


def cmd_block_add(args: argparse.Namespace) -> int:
    async def work(hub: Hub) -> int:
        counts = await add_block(hub, args.entry, args.user or "", ACTOR)
        who = f"in the mailboxes of {counts.user}" if counts.user else "for everyone"
        state = "blocked" if counts.added else "was blocked already"
        print(
            f"{counts.entry} {state} {who}; stored items deleted {counts.items_deleted}, "
            f"sources removed {counts.sources_removed}"
        )
        return 0

    return asyncio.run(with_hub(work))


def cmd_block_remove(args: argparse.Namespace) -> int:
    async def work(hub: Hub) -> int:
        if not await remove_block(hub, args.entry, args.user or "", ACTOR):
            who = f" for {args.user}" if args.user else " (admin-wide)"
            raise BlockEntryError(f"{args.entry} is not on the blocklist{who}")
        print(f"{args.entry} removed from the blocklist; what it removed stays removed")
        return 0

    return asyncio.run(with_hub(work))


def cmd_block_list(args: argparse.Namespace) -> int:
    async def work(hub: Hub) -> int:
        print("ENTRY\tFOR\tADDED BY\tADDED")
        for entry in await list_blocks(hub, args.user):
            when = entry.created_at.astimezone(UTC).strftime("%Y-%m-%dT%H:%MZ")
            print(f"{entry.entry}\t{entry.user or 'everyone'}\t{entry.created_by}\t{when}")
        return 0

    return asyncio.run(with_hub(work))


def add_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    privacy = sub.add_parser("privacy", help="data-subject requests and retention").add_subparsers(
        dest="privacy", required=True
    )
    export = privacy.add_parser(
        "export", help="everything stored about one address or number, as a zip"
    )
    export.add_argument("identifier", metavar="ADDRESS_OR_PHONE")
    export.add_argument("--out", required=True, metavar="FILE.zip")
    export.set_defaults(run=cmd_export)
    erase = privacy.add_parser(
        "erase", help="delete or redact everything about one person (without --yes: show it)"
    )
    erase.add_argument("identifier", metavar="ADDRESS_OR_PHONE")
    erase.add_argument("--yes", action="store_true", help="really erase")
    erase.set_defaults(run=cmd_erase)
    privacy.add_parser("retention", help="delete items older than retention_days now").set_defaults(
        run=cmd_retention
    )

    block = sub.add_parser(
        "blocklist", help="addresses and domains whose items are never stored"
    ).add_subparsers(dest="blocklist", required=True)
    for verb, run, what in (
        ("add", cmd_block_add, "block, and remove what is stored already"),
        ("remove", cmd_block_remove, "unblock (nothing removed comes back)"),
    ):
        one = block.add_parser(verb, help=what)
        one.add_argument("entry", metavar="ADDRESS_OR_DOMAIN")
        one.add_argument("--user", metavar="EMAIL", help="only in this user's mailboxes")
        one.set_defaults(run=run)
    listed = block.add_parser("list", help="the entries (of one user)")
    listed.add_argument("--user", metavar="EMAIL", help="only this user's entries")
    listed.set_defaults(run=cmd_block_list)
