"""The blocklist decision (DESIGN.md "Never stored"), pure so that the sync, the dropbox, mail
sent through crmhub and the clean-up of items already stored all decide alike.

An entry is a mail address (normalised as matching normalises addresses) or a domain (lower
case, IDNA), which also covers its subdomains by whole labels: `acme.de` blocks `eu.acme.de`,
not `notacme.de`. An entry is admin-wide (user "") or holds for the mailboxes of one user. An
item is blocked when it has an external party and every external party is blocked, for the
item's owner, by an admin-wide entry or one of that owner's.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from matching.identities import normalize_domain, normalize_email, parent_domains


class BlockEntryError(ValueError):
    """A blocklist entry that cannot be taken (neither a mail address nor a domain) or found;
    the message says what was expected."""


def normalize_entry(text: str) -> str:
    """The stored form of a blocklist entry: an address or a domain (`@acme.de` is a domain)."""
    stripped = text.strip()
    if "@" in stripped.lstrip("@"):
        address = normalize_email(stripped)
        if address is None:
            raise BlockEntryError(f"{text!r} is not a mail address (like jane@example.com)")
        return address
    domain = normalize_domain(stripped)
    if domain is None:
        raise BlockEntryError(
            f"{text!r} is neither a mail address nor a domain (like jane@example.com or "
            "example.com)"
        )
    return domain


def normalize_user(text: str) -> str:
    """Whose mailboxes a per-user entry covers: "" for everyone, else a mailbox owner's address
    in lower case (owners are compared case-insensitively, never by matching keys)."""
    user = text.strip().lower()
    if user and normalize_email(user) is None:
        raise BlockEntryError(f"--user {text!r} is not a mail address (like anna@ourco.example)")
    return user


@dataclass(frozen=True)
class Blocklist:
    everyone: frozenset[str] = frozenset()
    by_user: Mapping[str, frozenset[str]] = field(default_factory=dict)

    @classmethod
    def of(cls, entries: Iterable[tuple[str, str]]) -> Blocklist:
        """From stored (entry, user) pairs."""
        everyone: set[str] = set()
        by_user: dict[str, set[str]] = {}
        for entry, user in entries:
            (by_user.setdefault(user.lower(), set()) if user else everyone).add(entry)
        return cls(frozenset(everyone), {u: frozenset(e) for u, e in by_user.items()})

    def __bool__(self) -> bool:
        return bool(self.everyone or self.by_user)

    def blocks(self, party: str, owner: str) -> bool:
        """Whether one external party (a normalised address) is blocked in `owner`'s mailboxes.

        Numbers are never on the blocklist: it holds addresses and domains.
        """
        local, at, domain = party.rpartition("@")
        if not at or not local:
            return False
        own = self.by_user.get(owner.strip().lower(), frozenset()) if owner else frozenset()
        keys = (party, *parent_domains(domain))
        return any(key in self.everyone or key in own for key in keys)


def is_blocked(parties: Sequence[str | None], blocklist: Blocklist, owner: str) -> bool:
    """Whether an item with these external parties (see matching.parties) is never stored in
    `owner`'s mailboxes ("" for a connector without owner: admin-wide entries only)."""
    return bool(parties) and all(
        party is not None and blocklist.blocks(party, owner) for party in parties
    )
