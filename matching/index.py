"""IdentityIndex: the directory as lookup tables, so attribution is a handful of dict reads."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from hub.model import Account, Contact
from matching.identities import FreeMail, default_free_mail, is_internal, normalize_name


@dataclass(frozen=True, slots=True)
class ContactRef:
    contact_id: int
    contact_name: str
    account_id: int | None
    account_name: str


@dataclass(frozen=True, slots=True)
class AccountRef:
    account_id: int
    account_name: str


@dataclass
class IdentityIndex:
    """Normalised address -> contacts, E.164 -> contacts, domain -> accounts.

    `names` (name key -> contacts) only ever sends an item to review, never attributes;
    `ignored` holds the review keys (addresses, numbers, domains) people asked not to see again.

    Built from the directory at the start of a sync; `add_account` and `add_contact` keep it
    current when the directory changes, so nothing is rebuilt per item.
    """

    internal_domains: tuple[str, ...] = ()
    region: str | None = "DE"
    free_mail: FreeMail = field(default_factory=default_free_mail)
    emails: dict[str, list[ContactRef]] = field(default_factory=dict)
    phones: dict[str, list[ContactRef]] = field(default_factory=dict)
    domains: dict[str, list[AccountRef]] = field(default_factory=dict)
    names: dict[str, list[ContactRef]] = field(default_factory=dict)
    contacts: dict[int, ContactRef] = field(default_factory=dict)
    account_names: dict[int, str] = field(default_factory=dict)
    ignored: set[str] = field(default_factory=set)
    _internal_cache: dict[str, bool] = field(default_factory=dict)
    _name_keys: list[str] = field(default_factory=list)

    def name_keys(self) -> list[str]:
        """The keys of `names` as a list, kept between calls: review suggestions match each
        case's name against all of them, and copying 100,000 keys per case was a sixth of
        the review queue's time (profiled). Keys are only ever added, so a list of the
        same length is current."""
        if len(self._name_keys) != len(self.names):
            self._name_keys = list(self.names)
        return self._name_keys

    @classmethod
    def build(
        cls,
        accounts: Iterable[Account],
        contacts: Iterable[Contact],
        *,
        internal_domains: Iterable[str] = (),
        region: str | None = "DE",
        free_mail: FreeMail | None = None,
        ignored: Iterable[str] = (),
    ) -> IdentityIndex:
        index = cls(
            internal_domains=tuple(internal_domains),
            region=region,
            free_mail=free_mail or default_free_mail(),
            ignored=set(ignored),
        )
        for account in accounts:
            index.add_account(account)
        for contact in contacts:
            index.add_contact(contact)
        return index

    def add_account(self, account: Account) -> None:
        if account.id is None:
            raise ValueError("only stored accounts (with an id) can be indexed")
        self.account_names[account.id] = account.name
        ref = AccountRef(account.id, account.name)
        for domain in account.domains:
            refs = self.domains.setdefault(domain, [])
            if ref not in refs:
                refs.append(ref)

    def add_contact(self, contact: Contact) -> None:
        if contact.id is None:
            raise ValueError("only stored contacts (with an id) can be indexed")
        account_name = self.account_names.get(contact.account_id or -1, "")
        ref = ContactRef(contact.id, contact.name, contact.account_id, account_name)
        self.contacts[contact.id] = ref
        for address in contact.emails:
            refs = self.emails.setdefault(address, [])
            if ref not in refs:
                refs.append(ref)
        for number in contact.phones:
            refs = self.phones.setdefault(number, [])
            if ref not in refs:
                refs.append(ref)
        name_key = normalize_name(contact.name)
        if name_key:
            refs = self.names.setdefault(name_key, [])
            if ref not in refs:
                refs.append(ref)

    def is_internal_domain(self, domain: str) -> bool:
        known = self._internal_cache.get(domain)
        if known is None:
            known = is_internal(domain, self.internal_domains)
            self._internal_cache[domain] = known
        return known
