"""The one search: what a person types in the header of every page or sends to /api/search.

A phone number in any format or an address finds its contacts (and their latest items, which
is what a call-center agent wants next); words find accounts and contacts by the start of any
word of their names, domains and addresses, and interactions by the full-text index. The
directory is readable by every role; interactions only as far as the policy lets the viewer
read their text (storage.visibility.text_matches): a hit never reveals more than the item
itself would.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from hub.bootstrap import Hub
from hub.model import ReadScope
from storage import directory_search, queries
from storage.directory_reads import StoredAccount, StoredContact

MAX_PER_KIND = 50


@dataclass(frozen=True)
class Found:
    """Each group best first: accounts and contacts holding a query word whole before those
    only beginning with one, then by name; interactions newest first."""

    query: directory_search.Parsed
    accounts: list[StoredAccount]
    contacts: list[StoredContact]
    interactions: list[Any]  # storage.items.StoredInteraction

    @property
    def caller(self) -> StoredContact | None:
        """The one contact with the very number asked for: its page is the answer, not a
        list (a number's start, or a number two contacts share, lists them)."""
        if self.query.phone and len(self.contacts) == 1:
            if self.query.phone in self.contacts[0].phones:
                return self.contacts[0]
        return None


KINDS = frozenset({"account", "contact", "interaction"})


async def search(
    hub: Hub,
    session: AsyncSession,
    scope: ReadScope,
    q: str,
    limit: int,
    kinds: frozenset[str] = KINDS,
) -> Found:
    """`kinds` leaves out what is not wanted: a typeahead picking a record asks for accounts
    and contacts only, and no keystroke runs a full-text search."""
    query = directory_search.parse(q, hub.settings.default_region)
    limit = min(limit, MAX_PER_KIND)
    account_ids, contact_ids = [], []
    if "account" in kinds:
        account_ids = await directory_search.search(session, directory_search.ACCOUNT, query, limit)
    if "contact" in kinds or ("interaction" in kinds and query.identity):
        contact_ids = await directory_search.search(session, directory_search.CONTACT, query, limit)
    accounts = await queries.accounts_by_ids(session, set(account_ids))
    contacts = (
        await queries.contacts_by_ids(session, set(contact_ids)) if "contact" in kinds else {}
    )
    if "interaction" not in kinds:
        items = []
    elif query.identity:  # a number or an address: what its people lately wrote or said
        items = await queries.latest_of(session, scope, contact_ids, [], limit)
    elif query.prefixes:
        f = queries.TimelineFilter(q=" ".join(query.prefixes))
        items = (await queries.list_interactions(session, scope, f=f, limit=limit)).items
    else:
        items = []
    return Found(
        query,
        [accounts[i] for i in account_ids if i in accounts],
        [contacts[i] for i in contact_ids if i in contacts],
        items,
    )


class NotOneRecord(ValueError):
    """What was typed to pick a record names none, or several: the message says which."""


async def one_record(hub: Hub, session: AsyncSession, kind: str, typed: str) -> int:
    """The one account or contact a person means by what they typed (a name, a word of it, an
    address, a number, a domain), so that no form asks for a numeric id. A name matching
    several records picks the one whose whole name it is, if only one is; otherwise the
    message lists the candidates to be more precise about."""
    query = directory_search.parse(typed, hub.settings.default_region)
    what = "account" if kind == directory_search.ACCOUNT else "contact"
    ids = await directory_search.search(session, kind, query, CANDIDATES + 1)
    if not ids:
        raise NotOneRecord(f"No {what} matches {typed.strip()[:100]!r}.")
    if len(ids) == 1:
        return ids[0]
    if kind == directory_search.ACCOUNT:
        records: dict[int, Any] = await queries.accounts_by_ids(session, set(ids))
    else:
        records = await queries.contacts_by_ids(session, set(ids))
    wanted = typed.strip().casefold()
    exact = [i for i in ids if i in records and records[i].name.casefold() == wanted]
    if len(exact) == 1:
        return exact[0]
    names = ", ".join(records[i].name for i in ids[:CANDIDATES] if i in records)
    more = " and more" if len(ids) > CANDIDATES else ""
    raise NotOneRecord(
        f"{typed.strip()[:100]!r} matches several {what}s ({names}{more}): type more of the "
        f"name, or an address or number."
    )


CANDIDATES = 5  # named in the message when a pick is ambiguous
