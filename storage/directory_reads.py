"""The directory as the request path reads it: accounts and contacts with their domains,
addresses and numbers, one Core statement each, into slotted records.

The ORM rows load their domains, addresses and numbers by a select each (selectin): the
call-center look-up spent 5.7 of its 11.6 ms (PostgreSQL, 1,000,000 items) loading the
caller's contact and account that way. Here the lists come aggregated with the record, as
storage.items reads a page of items. The values are in their own order (the unique index of
(owner, value) reads them so on SQLite), the same on both databases.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable
from typing import Any

from sqlalchemy import ColumnElement, func, literal_column, select
from sqlalchemy.dialects.postgresql import aggregate_order_by
from sqlalchemy.ext.asyncio import AsyncSession

from hub.model import record
from storage.items import json_value
from storage.tables import (
    AccountDomainRow,
    AccountRow,
    ContactEmailRow,
    ContactPhoneRow,
    ContactRow,
)


@record
class StoredAccount:
    id: int
    name: str
    domains: tuple[str, ...]
    owner: str


@record
class StoredContact:
    id: int
    name: str
    account_id: int | None
    emails: tuple[str, ...]
    phones: tuple[str, ...]
    owner: str
    title: str = ""


def _values(dialect: str, value: Any, linked: ColumnElement[bool], outer: Any) -> Any:
    """The values of the record's rows in `value`'s table, as one JSON array; correlated
    with `outer` only, as the record may be joined to that same table (contacts_where)."""
    values: Any
    if dialect == "postgresql":
        values = func.coalesce(
            func.json_agg(aggregate_order_by(value, value)), literal_column("'[]'::json")
        )
    else:
        values = func.json_group_array(value)
    return select(values).where(linked).correlate(outer).scalar_subquery()


@functools.cache
def _accounts(dialect: str) -> Any:
    domains = _values(
        dialect, AccountDomainRow.domain, AccountDomainRow.account_id == AccountRow.id, AccountRow
    )
    return select(AccountRow.id, AccountRow.name, domains, AccountRow.owner)


@functools.cache
def _contacts(dialect: str) -> Any:
    emails = _values(
        dialect, ContactEmailRow.address, ContactEmailRow.contact_id == ContactRow.id, ContactRow
    )
    phones = _values(
        dialect, ContactPhoneRow.e164, ContactPhoneRow.contact_id == ContactRow.id, ContactRow
    )
    return select(
        ContactRow.id,
        ContactRow.name,
        ContactRow.account_id,
        emails,
        phones,
        ContactRow.owner,
        ContactRow.title,
    )


async def accounts_where(
    session: AsyncSession, *where: ColumnElement[bool], order: Iterable[Any] = ()
) -> list[StoredAccount]:
    connection = await session.connection()
    statement = _accounts(connection.dialect.name).where(*where).order_by(*order)
    return [
        StoredAccount(i, name, tuple(json_value(d)), owner)
        for i, name, d, owner in await connection.execute(statement)
    ]


async def contacts_where(
    session: AsyncSession,
    *where: ColumnElement[bool],
    order: Iterable[Any] = (),
    via: Any = None,
) -> list[StoredContact]:
    """Contacts meeting `where`; `via`: a table of theirs joined to ask about it (an address
    or number: a join reads it through its own index where an IN reads every contact's)."""
    connection = await session.connection()
    statement = _contacts(connection.dialect.name)
    if via is not None:
        statement = statement.join(via, via.contact_id == ContactRow.id)
    statement = statement.where(*where).order_by(*order)
    return [
        StoredContact(i, name, account, tuple(json_value(e)), tuple(json_value(p)), owner, title)
        for i, name, account, e, p, owner, title in await connection.execute(statement)
    ]


@functools.cache
def _contacts_with_accounts(dialect: str) -> Any:
    """A contact and its account in one row: the call-center look-up needs both, and on
    PostgreSQL a second round trip costs more than the join."""
    domains = _values(
        dialect, AccountDomainRow.domain, AccountDomainRow.account_id == AccountRow.id, AccountRow
    )
    return (
        _contacts(dialect)
        .add_columns(AccountRow.id, AccountRow.name, domains, AccountRow.owner)
        .outerjoin(AccountRow, AccountRow.id == ContactRow.account_id)
    )


async def contacts_with_accounts_where(
    session: AsyncSession, *where: ColumnElement[bool], via: Any
) -> tuple[list[StoredContact], dict[int, StoredAccount]]:
    """`contacts_where` with each contact's account, in one statement."""
    connection = await session.connection()
    statement = (
        _contacts_with_accounts(connection.dialect.name)
        .join(via, via.contact_id == ContactRow.id)
        .where(*where)
    )
    contacts, accounts = [], {}
    for row in await connection.execute(statement):
        i, name, account, emails, phones, owner, title, a_id, a_name, domains, a_owner = row
        emails, phones = tuple(json_value(emails)), tuple(json_value(phones))
        contacts.append(StoredContact(i, name, account, emails, phones, owner, title))
        if a_id is not None:
            accounts[a_id] = StoredAccount(a_id, a_name, tuple(json_value(domains)), a_owner)
    return contacts, accounts
