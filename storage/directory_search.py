"""Finding accounts and contacts by what people type: a word of a name (or its start), a domain,
an address, or a phone number written any way.

`directory_terms` holds, per record, the words a search may start with: name words folded as
the full-text index folds them (storage.fulltext.fold: "Müller" is "muller") and, for German
names, spelled with the umlaut written out too ("mueller"), so that either spelling finds it;
an account's domains and their labels; a contact's addresses, the local parts' words, and each
number as E.164 digits and as national digits. A query word matches a term it begins; every
word of the query must match a term of the record. The terms are a range of one b-tree index
on both databases, so a search reads the matching entries, not the directory: at 100,000
contacts a name search would otherwise be a scan of every name.

The terms follow every change of the directory: rows are re-indexed from the session's flush
(`follow`), whatever wrote them, and the few bulk deletes re-index what they touched (`refresh`).
tests/integration/test_directory_search.py checks after a series of directory changes that the
table equals a rebuild from scratch.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import phonenumbers
from sqlalchemy import Connection, and_, delete, event, func, insert, inspect, literal, or_, select
from sqlalchemy import case as case_when
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session

from matching.identities import normalize_email, normalize_phone
from storage.fulltext import fold, words
from storage.tables import (
    AccountDomainRow,
    AccountRow,
    ContactEmailRow,
    ContactPhoneRow,
    ContactRow,
    DirectoryTermRow,
)

ACCOUNT, CONTACT = "account", "contact"
MAX_TERM = 64  # DirectoryTermRow.term
MAX_QUERY_WORDS = 6
MIN_DIGITS = 4  # fewer typed digits are no number worth looking up
_UMLAUTS = str.maketrans({"ä": "ae", "ö": "oe", "ü": "ue", "ß": "ss", "Ä": "ae", "Ö": "oe"})
_PHONE_TEXT = re.compile(r"[\d\s+()./-]+")


def name_terms(name: str) -> set[str]:
    """The folded words of a name, and those with umlauts written out (ü as ue)."""
    found = set(words(name))
    written_out = name.translate(_UMLAUTS)
    if written_out != name:
        found.update(words(written_out))
    return found


def domain_terms(domain: str) -> set[str]:
    """The domain and its labels: "elbe-logistik.de" is found by "elbe-logistik" and "elbe"."""
    domain = domain.lower()
    return {domain, *domain.split("."), *words(domain)} - {""}


def email_terms(address: str) -> set[str]:
    local, _, domain = address.lower().rpartition("@")
    return {address.lower(), *words(local), *domain_terms(domain)} - {""}


def national_digits(e164: str) -> str:
    """The national significant number: "+492217322098" is "2217322098"."""
    try:
        return str(phonenumbers.national_significant_number(phonenumbers.parse(e164, None)))
    except phonenumbers.NumberParseException:
        return e164.lstrip("+")


def phone_terms(e164: str) -> set[str]:
    """E.164 digits ("492217322098") and the national digits without trunk prefix
    ("2217322098"): a number is found by its start written either way."""
    return {e164.lstrip("+"), national_digits(e164)}


def account_terms(name: str, domains: Iterable[str]) -> set[str]:
    found = name_terms(name)
    for domain in domains:
        found |= domain_terms(domain)
    return {t[:MAX_TERM] for t in found}


def contact_terms(name: str, emails: Iterable[str], phones: Iterable[str]) -> set[str]:
    found = name_terms(name)
    for address in emails:
        found |= email_terms(address)
    for number in phones:
        found |= phone_terms(number)
    return {t[:MAX_TERM] for t in found}


# --- keeping the terms -------------------------------------------------------------------------


def reindex(connection: Connection, accounts: Iterable[int], contacts: Iterable[int]) -> None:
    """Write the terms of these records anew from what is stored (a deleted record: none)."""
    account_ids, contact_ids = sorted(set(accounts)), sorted(set(contacts))
    rows: list[dict[str, Any]] = []
    if account_ids:
        names = dict(
            connection.execute(
                select(AccountRow.id, AccountRow.name).where(AccountRow.id.in_(account_ids))
            ).all()
        )
        domains: dict[int, list[str]] = {}
        for account_id, domain in connection.execute(
            select(AccountDomainRow.account_id, AccountDomainRow.domain).where(
                AccountDomainRow.account_id.in_(account_ids)
            )
        ):
            domains.setdefault(account_id, []).append(domain)
        rows += [
            {"kind": ACCOUNT, "record_id": id_, "term": term}
            for id_, name in names.items()
            for term in account_terms(name, domains.get(id_, []))
        ]
        _drop(connection, ACCOUNT, account_ids)
    if contact_ids:
        names = dict(
            connection.execute(
                select(ContactRow.id, ContactRow.name).where(ContactRow.id.in_(contact_ids))
            ).all()
        )
        emails: dict[int, list[str]] = {}
        for contact_id, address in connection.execute(
            select(ContactEmailRow.contact_id, ContactEmailRow.address).where(
                ContactEmailRow.contact_id.in_(contact_ids)
            )
        ):
            emails.setdefault(contact_id, []).append(address)
        phones: dict[int, list[str]] = {}
        for contact_id, number in connection.execute(
            select(ContactPhoneRow.contact_id, ContactPhoneRow.e164).where(
                ContactPhoneRow.contact_id.in_(contact_ids)
            )
        ):
            phones.setdefault(contact_id, []).append(number)
        rows += [
            {"kind": CONTACT, "record_id": id_, "term": term}
            for id_, name in names.items()
            for term in contact_terms(name, emails.get(id_, []), phones.get(id_, []))
        ]
        _drop(connection, CONTACT, contact_ids)
    if rows:
        connection.execute(insert(DirectoryTermRow), rows)


def _drop(connection: Connection, kind: str, ids: list[int]) -> None:
    connection.execute(
        delete(DirectoryTermRow).where(
            DirectoryTermRow.kind == kind, DirectoryTermRow.record_id.in_(ids)
        )
    )


async def refresh(
    session: AsyncSession, accounts: Iterable[int] = (), contacts: Iterable[int] = ()
) -> None:
    """For writes that bypass the ORM (bulk deletes): re-index the records they touched."""
    account_ids, contact_ids = sorted(set(accounts)), sorted(set(contacts))

    def run(sync: Session) -> None:
        sync.flush()
        reindex(sync.connection(), account_ids, contact_ids)

    if account_ids or contact_ids:
        await session.run_sync(run)


def _touched(session: Session) -> tuple[set[int], set[int]]:
    """Accounts and contacts whose searchable fields this flush writes or deletes: read in
    after_flush, where the lists still hold what was flushed and new rows have their ids. An
    address or number moved to another contact (a merge) re-indexes both contacts."""
    accounts: set[int] = set()
    contacts: set[int] = set()
    for row in (*session.new, *session.dirty, *session.deleted):
        if isinstance(row, AccountRow):
            accounts.add(row.id)
        elif isinstance(row, AccountDomainRow):
            accounts.update(_values(row, "account_id"))
        elif isinstance(row, ContactRow):
            contacts.add(row.id)
        elif isinstance(row, ContactEmailRow | ContactPhoneRow):
            contacts.update(_values(row, "contact_id"))
    return {a for a in accounts if a is not None}, {c for c in contacts if c is not None}


def _values(row: Any, column: str) -> list[Any]:
    """The column's value now and before this flush."""
    history = inspect(row).attrs[column].history
    return [*history.added, *history.unchanged, *history.deleted, getattr(row, column)]


@event.listens_for(Session, "after_flush")  # of every session, once storage.db is imported
def _follow(session: Session, _context: Any) -> None:
    accounts, contacts = _touched(session)
    if accounts or contacts:
        reindex(session.connection(), accounts, contacts)


# --- searching --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Parsed:
    """A query as the directory is searched: an exact term (an address) or words, each of
    which a term of the record must begin with (a number is one word: its digits)."""

    exact: tuple[str, ...] = ()  # terms a record must hold exactly (any one of them)
    prefixes: tuple[str, ...] = ()
    phone: str | None = None  # the E.164 number the query spells in full, if it does
    identity: bool = False  # a number or an address: it names people, not words of text

    @property
    def empty(self) -> bool:
        return not self.exact and not self.prefixes


def parse(q: str, region: str | None) -> Parsed:
    """A phone number in any format becomes its national digits, which the numbers it starts
    are found by ("0221 73" finds 0221 7322098); an address is itself; anything else is its
    folded words (at most MAX_QUERY_WORDS)."""
    text = q.strip()
    if _PHONE_TEXT.fullmatch(text) and sum(c.isdigit() for c in text) >= MIN_DIGITS:
        e164 = normalize_phone(text, region)
        digits = national_digits(e164) if e164 else "".join(filter(str.isdigit, text)).lstrip("0")
        return Parsed(prefixes=(digits,), phone=e164, identity=True)
    if "@" in text and " " not in text:
        address = normalize_email(text)
        if address:
            return Parsed(exact=(address,), identity=True)
    return Parsed(prefixes=tuple(fold(w)[:MAX_TERM] for w in words(text)[:MAX_QUERY_WORDS]))


def _prefix(word: str) -> Any:
    """Terms that begin with `word`: a range of the index, not a LIKE the planner may scan."""
    return and_(
        DirectoryTermRow.term >= literal(word), DirectoryTermRow.term < literal(word + "\U0010ffff")
    )


async def search(session: AsyncSession, kind: str, query: Parsed, limit: int) -> list[int]:
    """Ids of the `kind` records matching `query`, best first: records holding a query word as a
    whole word before those that only begin with it, then by name."""
    if query.empty or limit <= 0:
        return []
    t = DirectoryTermRow
    if query.exact:
        arms = [or_(*(t.term == literal(term) for term in query.exact))]
    else:
        arms = [_prefix(word) for word in query.prefixes]
    per_word = [
        select(
            t.record_id.label("record_id"),
            func.max(case_when((t.term == literal(word), 1), else_=0)).label("whole"),
        )
        .where(t.kind == kind, arm)
        .group_by(t.record_id)
        for word, arm in zip(query.exact or query.prefixes, arms, strict=False)
    ]
    if query.exact:
        per_word = per_word[:1]
    both = per_word[0].union_all(*per_word[1:]).subquery() if len(per_word) > 1 else None
    matched = (both if both is not None else per_word[0].subquery()).c
    records = AccountRow if kind == ACCOUNT else ContactRow
    found = (
        select(matched.record_id)
        .join(records, records.id == matched.record_id)
        .group_by(matched.record_id, records.name)
        .having(func.count() == len(per_word))
        .order_by(func.sum(matched.whole).desc(), records.name, matched.record_id)
        .limit(limit)
    )
    return list((await session.execute(found)).scalars())
