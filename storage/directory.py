"""The customer directory: accounts with domains, contacts with emails and phones."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import delete, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from hub.model import Account, Contact
from storage import directory_search
from storage.tables import (
    AccountDomainRow,
    AccountRow,
    ContactEmailRow,
    ContactPhoneRow,
    ContactRow,
    DirectoryStateRow,
)


class DirectoryError(ValueError):
    """A directory change that cannot be made as asked; the message says why."""


@dataclass
class DirectoryCounts:
    accounts_created: int = 0
    accounts_updated: int = 0
    contacts_created: int = 0
    contacts_updated: int = 0
    # What the directory gained: stored items with these identities are attributed again.
    new_addresses: set[str] = field(default_factory=set)  # emails and E.164 numbers
    new_domains: set[str] = field(default_factory=set)


async def upsert_directory(
    session: AsyncSession, entries: list[tuple[Account, Contact | None]]
) -> DirectoryCounts:
    """Merge entries into the directory by account name and (account, contact name).

    Re-importing the same file changes nothing; new domains, addresses and numbers are added,
    existing ones are kept (a directory file is not a deletion list).
    """
    counts = DirectoryCounts()
    accounts = {a.name: a for a in (await session.execute(select(AccountRow))).scalars()}
    contacts = {
        (c.account_id, c.name): c for c in (await session.execute(select(ContactRow))).scalars()
    }
    touched_accounts: set[str] = set()
    touched_contacts: set[tuple[int | None, str]] = set()
    for account, contact in entries:
        row = accounts.get(account.name)
        if row is None:
            row = AccountRow(name=account.name, owner=account.owner, domains=[])
            session.add(row)
            accounts[account.name] = row
            counts.accounts_created += 1
            touched_accounts.add(account.name)
        changed = False
        known = {d.domain for d in row.domains}
        for domain in account.domains:
            if domain not in known:
                row.domains.append(AccountDomainRow(domain=domain))
                known.add(domain)
                counts.new_domains.add(domain)
                changed = True
        if account.owner and row.owner != account.owner:
            row.owner, changed = account.owner, True
        if changed and account.name not in touched_accounts:
            counts.accounts_updated += 1
            touched_accounts.add(account.name)
        if contact is None:
            continue
        await session.flush()
        key = (row.id, contact.name)
        crow = contacts.get(key)
        if crow is None:
            crow = ContactRow(
                account_id=row.id,
                name=contact.name,
                owner=contact.owner,
                title=contact.title,
                emails=[],
                phones=[],
            )
            session.add(crow)
            contacts[key] = crow
            counts.contacts_created += 1
            touched_contacts.add(key)
        changed = _merge_contact(crow, contact, counts.new_addresses)
        if changed and key not in touched_contacts:
            counts.contacts_updated += 1
            touched_contacts.add(key)
    await session.flush()
    if touched_accounts or touched_contacts:
        await bump_version(session)
    return counts


async def bump_version(session: AsyncSession) -> None:
    """Call in every transaction that changes the directory, so cached indexes reload."""
    raised = await session.execute(
        update(DirectoryStateRow)
        .where(DirectoryStateRow.id == 1)
        .values(version=DirectoryStateRow.version + 1)
    )
    if not raised.rowcount:  # type: ignore[attr-defined]
        session.add(DirectoryStateRow(id=1, version=1))
        await session.flush()


async def version(session: AsyncSession) -> int:
    found = await session.execute(
        select(DirectoryStateRow.version).where(DirectoryStateRow.id == 1)
    )
    return int(found.scalar_one_or_none() or 0)


async def add_identity(session: AsyncSession, contact_id: int, key: str) -> ContactRow:
    """Give a contact one more normalised address or E.164 number (a number starts with +)."""
    contact = await session.get(ContactRow, contact_id)
    if contact is None:
        raise DirectoryError(f"contact_id: there is no contact {contact_id}")
    if key.startswith("+"):
        _add_missing(contact.phones, "e164", (key,), ContactPhoneRow, set())
    else:
        _add_missing(contact.emails, "address", (key,), ContactEmailRow, set())
    await session.flush()
    await bump_version(session)
    return contact


async def create_contact(session: AsyncSession, account_id: int, name: str, key: str) -> ContactRow:
    """A new contact at an account with one identity; an existing namesake there gains it."""
    if await session.get(AccountRow, account_id) is None:
        raise DirectoryError(f"account_id: there is no account {account_id}")
    name = " ".join(name.split())
    if not name:
        raise DirectoryError("name: a new contact needs a name")
    row, _ = await _namesake_or_new(session, account_id, name)
    await session.flush()
    return await add_identity(session, row.id, key)


async def _namesake_or_new(
    session: AsyncSession, account_id: int, name: str
) -> tuple[ContactRow, bool]:
    """The contact of this name at the account, or a new one (added, not yet flushed)."""
    found = await session.execute(
        select(ContactRow).where(ContactRow.account_id == account_id, ContactRow.name == name)
    )
    row = found.scalar_one_or_none()
    if row is not None:
        return row, False
    row = ContactRow(account_id=account_id, name=name, owner="", emails=[], phones=[])
    session.add(row)
    return row, True


@dataclass
class CreatedContacts:
    """What `create_contacts` did; `contacts` hold the addresses, as the directory has them."""

    contacts: list[Contact] = field(default_factory=list)
    created: int = 0  # new contact rows; the others are namesakes that gained an address
    addresses: set[str] = field(default_factory=set)  # the addresses this call added


async def create_contacts(
    session: AsyncSession, wanted: list[tuple[int, str, str]]
) -> CreatedContacts:
    """Contacts for (account_id, name, normalised address) triples, in the caller's transaction.

    An address some contact already holds is skipped, and so is an account that is gone, so
    running this twice (a sync that crashed after committing it, or two syncs at once) creates
    nothing twice; a namesake at the same account gains the address, as in `create_contact`.
    The result lists every contact that now holds one of the addresses, the skipped ones'
    holders included, so that a caller with an out-of-date index can bring it up to date.
    The directory version is raised first: on PostgreSQL that row lock queues concurrent
    callers until this transaction ends, so the check below sees what they committed.
    """
    result = CreatedContacts()
    if not wanted:
        return result
    await bump_version(session)
    addresses = sorted({address for _, _, address in wanted})
    holders = (
        await session.execute(
            select(ContactRow)
            .join(ContactEmailRow, ContactEmailRow.contact_id == ContactRow.id)
            .where(ContactEmailRow.address.in_(addresses))
        )
    ).scalars()
    touched: dict[int, ContactRow] = {row.id: row for row in holders}
    held = {e.address for row in touched.values() for e in row.emails}
    account_ids = {account_id for account_id, _, _ in wanted}
    accounts = set(
        (
            await session.execute(select(AccountRow.id).where(AccountRow.id.in_(account_ids)))
        ).scalars()
    )
    for account_id, raw_name, address in wanted:
        name = " ".join(raw_name.split())
        if address in held or account_id not in accounts or not name:
            continue
        row, new = await _namesake_or_new(session, account_id, name)
        result.created += new
        _add_missing(row.emails, "address", (address,), ContactEmailRow, result.addresses)
        held.add(address)
        await session.flush()
        touched[row.id] = row
    result.contacts = [_contact(row) for row in touched.values()]
    return result


def _contact(row: ContactRow) -> Contact:
    return Contact(
        row.name,
        row.account_id,
        tuple(e.address for e in row.emails),
        tuple(p.e164 for p in row.phones),
        row.owner,
        row.id,
        row.title,
    )


async def keep_identity_only_on(session: AsyncSession, contact_id: int, key: str) -> int:
    """`key` belongs to this contact alone: other contacts lose it. Returns how many did."""
    table, column = (
        (ContactPhoneRow, ContactPhoneRow.e164)
        if key.startswith("+")
        else (ContactEmailRow, ContactEmailRow.address)
    )
    await add_identity(session, contact_id, key)
    losing = select(table.contact_id).where(column == key, table.contact_id != contact_id)
    others = list((await session.execute(losing)).scalars())
    result = await session.execute(
        delete(table).where(column == key, table.contact_id != contact_id)
    )
    await directory_search.refresh(session, contacts=others)
    return int(result.rowcount or 0)  # type: ignore[attr-defined]


async def keep_domain_only_on(session: AsyncSession, account_id: int, domain: str) -> int:
    """`domain` belongs to this account alone: other accounts lose it. Returns how many did."""
    if await session.get(AccountRow, account_id) is None:
        raise DirectoryError(f"account_id: there is no account {account_id}")
    found = await session.execute(
        select(AccountDomainRow.account_id).where(AccountDomainRow.domain == domain)
    )
    owners = set(found.scalars())
    if account_id not in owners:
        raise DirectoryError(f"account_id: account {account_id} does not list {domain}")
    result = await session.execute(
        delete(AccountDomainRow).where(
            AccountDomainRow.domain == domain, AccountDomainRow.account_id != account_id
        )
    )
    await directory_search.refresh(session, accounts=set(owners) - {account_id})
    await bump_version(session)
    return int(result.rowcount or 0)  # type: ignore[attr-defined]


def _merge_contact(row: ContactRow, contact: Contact, gained: set[str]) -> bool:
    added = _add_missing(row.emails, "address", contact.emails, ContactEmailRow, gained)
    added |= _add_missing(row.phones, "e164", contact.phones, ContactPhoneRow, gained)
    if contact.owner and row.owner != contact.owner:
        row.owner, added = contact.owner, True
    if contact.title and row.title != contact.title:
        row.title, added = contact.title, True
    return added


def _add_missing(
    rows: list[Any], attribute: str, values: tuple[str, ...], make: Any, gained: set[str]
) -> bool:
    """Append a row for each value not there yet; `gained` collects them for re-matching."""
    known = {getattr(r, attribute) for r in rows}
    fresh = [v for v in dict.fromkeys(values) if v not in known]
    rows.extend(make(**{attribute: value}) for value in fresh)
    gained.update(fresh)
    return bool(fresh)


async def load_directory(session: AsyncSession) -> tuple[list[Account], list[Contact]]:
    accounts = [
        Account(a.name, tuple(d.domain for d in a.domains), a.owner, a.id)
        for a in (await session.execute(select(AccountRow).order_by(AccountRow.id))).scalars()
    ]
    contacts = [
        _contact(c)
        for c in (await session.execute(select(ContactRow).order_by(ContactRow.id))).scalars()
    ]
    return accounts, contacts
