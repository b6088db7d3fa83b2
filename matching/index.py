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
    _by_word: dict[str, list[str]] = field(default_factory=dict)  # word -> name keys
    _by_variant: dict[str, set[str]] = field(default_factory=dict)  # spelling -> words

    def names_near(self, name_key: str) -> list[str]:
        """Name keys sharing a word with `name_key`, or a word one typo away: the few names a
        fuzzy comparison can rate as the same person.

        Comparing a name with every name of the directory cost 10 ms per name at 80,000
        names (rapidfuzz, measured), 400 ms for a page of the review queue. Two names that
        score 80 or more (token_sort_ratio) share all but a few letters, so they nearly
        always share a word or spell one with a letter more, less or changed: a lookup of
        each word's one-deletion spellings finds them. Words of three letters or less are
        only looked up as they are, or "al" would be near half the directory.
        """
        found: dict[str, None] = {}
        for word in name_key.split(" "):
            for variant in _variants(word):
                for near in self._by_variant.get(variant, ()):
                    found.update(dict.fromkeys(self._by_word[near]))
        return list(found)

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
            if name_key not in self.names:
                self._add_name_key(name_key)
            refs = self.names.setdefault(name_key, [])
            if ref not in refs:
                refs.append(ref)

    def _add_name_key(self, name_key: str) -> None:
        for word in dict.fromkeys(name_key.split(" ")):
            keys = self._by_word.get(word)
            if keys is None:
                keys = self._by_word[word] = []
                for variant in _variants(word):
                    self._by_variant.setdefault(variant, set()).add(word)
            keys.append(name_key)

    def is_internal_domain(self, domain: str) -> bool:
        known = self._internal_cache.get(domain)
        if known is None:
            known = is_internal(domain, self.internal_domains)
            self._internal_cache[domain] = known
        return known


SHORT_WORD = 3  # words this short are matched exactly


def _variants(word: str) -> list[str]:
    """The word and, if it is long enough, every spelling of it with one letter left out:
    two words one insertion, deletion or substitution apart share one of these."""
    if len(word) <= SHORT_WORD:
        return [word]
    return [word, *dict.fromkeys(word[:i] + word[i + 1 :] for i in range(len(word)))]
