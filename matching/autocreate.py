"""Which unknown people become contacts on their own: the per-connector auto-creation policy.

A directory that only grows by hand misses the customer's new buyer for months. Creating a
contact for every address seen would fill it with newsletters, free-mail strangers and our own
staff, so creation is limited to addresses that already attribute to exactly one account by
their domain, and the policy (a connector setting) says whose addresses count:

* `off`: nobody (the default).
* `written-to`: the recipients of mail the mailbox owner sent. Writing to someone is the
  strongest sign that they are a real counterpart, not a sender of unsolicited mail.
* `account-domain`: every external mail party of an item at a known account's domain.

Pure: the caller stores what this returns and adds it to the index.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Iterable
from dataclasses import dataclass

from hub.model import AddressKind, Interaction, Role
from matching.engine import Decision, ResolvedParticipant
from matching.identities import normalize_email
from matching.index import IdentityIndex
from matching.rules import account_by_domain

RECIPIENTS = frozenset({Role.TO, Role.CC, Role.BCC})
# Compared with separators removed, as a prefix ("no-reply-billing", "bounces-123"); these
# mailboxes are machines, whatever their domain.
AUTOMATED_LOCAL_PARTS = (
    "noreply",
    "donotreply",
    "mailerdaemon",
    "postmaster",
    "bounce",
    "autoreply",
    "autoresponder",
)
_SEPARATORS = re.compile(r"[-_.]+")


class ContactPolicy(enum.StrEnum):
    """The values of the `create_contacts` connector setting."""

    OFF = "off"
    WRITTEN_TO = "written-to"
    ACCOUNT_DOMAIN = "account-domain"


@dataclass(frozen=True, slots=True)
class NewContact:
    """A contact to create: `address` is normalised, `name` is never empty."""

    account_id: int
    name: str
    address: str


def contacts_to_create(
    interaction: Interaction,
    decision: Decision,
    index: IdentityIndex,
    policy: ContactPolicy,
    owner: str = "",
) -> list[NewContact]:
    """The contacts one item asks for, one per address, in participant order.

    `decision` is `matching.engine.attribute`'s result for `interaction` against `index`;
    `owner` is the mailbox owner's address ("" when unknown: then mail from any internal
    address counts as written by the owner).
    """
    return [
        contact for contact, _ in _candidates(interaction, decision, index, policy, owner).values()
    ]


def contacts_for_batch(
    decided: Iterable[tuple[Interaction, Decision]],
    index: IdentityIndex,
    policy: ContactPolicy,
    owner: str = "",
) -> list[NewContact]:
    """The contacts a batch asks for, one per address; a display name beats a guessed name."""
    found: dict[str, tuple[NewContact, bool]] = {}
    for interaction, decision in decided:
        for pick in _candidates(interaction, decision, index, policy, owner).values():
            _keep(found, pick)
    return [contact for contact, _ in found.values()]


def _keep(found: dict[str, tuple[NewContact, bool]], pick: tuple[NewContact, bool]) -> None:
    """The first sighting of an address, unless a later one brings its display name."""
    known = found.get(pick[0].address)
    if known is None or (pick[1] and not known[1]):
        found[pick[0].address] = pick


def _candidates(
    interaction: Interaction,
    decision: Decision,
    index: IdentityIndex,
    policy: ContactPolicy,
    owner: str,
) -> dict[str, tuple[NewContact, bool]]:
    """Address -> (contact, whether its name is a display name)."""
    if policy is ContactPolicy.OFF or decision.not_logged:
        return {}
    owner_key = normalize_email(owner) if owner else None
    if policy is ContactPolicy.WRITTEN_TO:
        if not _sent_by_owner(interaction, decision.participants, owner_key):
            return {}
        parties = [r for r in decision.participants if r.participant.role in RECIPIENTS]
    else:
        parties = decision.participants
    found: dict[str, tuple[NewContact, bool]] = {}
    for r in parties:
        address = r.normalized
        if (
            address is None
            or r.participant.kind is not AddressKind.EMAIL
            or r.internal
            or r.contact_id is not None
            or address == owner_key
            or address in index.ignored
            or is_automated(address)
        ):
            continue
        accounts = account_by_domain(address, index)
        if len(accounts) != 1:
            continue
        name, named = contact_name(r.participant.name, address)
        _keep(found, (NewContact(accounts[0][0], name, address), named))
    return found


def _sent_by_owner(
    interaction: Interaction, resolved: list[ResolvedParticipant], owner: str | None
) -> bool:
    """Mail from the owner; without a known owner, mail from our own staff only.

    Only mail has a From: a meeting's organizer invites, which says less than writing does.
    """
    senders = [r for r in resolved if r.participant.role is Role.FROM and r.normalized]
    if not senders:
        return False
    if owner:
        return any(r.normalized == owner for r in senders)
    return all(r.internal for r in senders)


def is_automated(address: str) -> bool:
    """Whether a normalised address is a machine's mailbox (noreply, mailer-daemon, bounces)."""
    compact = _SEPARATORS.sub("", address.rpartition("@")[0])
    return compact.startswith(AUTOMATED_LOCAL_PARTS)


def contact_name(display_name: str, address: str) -> tuple[str, bool]:
    """A readable name and whether it is the display name (True) rather than a guess.

    The display name with its whitespace normalised; when it is empty or holds an address, the
    local part read as words ("jane.doe" -> "Jane Doe"); the address itself when no word with a
    letter remains ("4711@acme.de").
    """
    name = " ".join(display_name.split())
    if name and "@" not in name:
        return name, True
    local = address.rpartition("@")[0]
    words = [w for w in _SEPARATORS.split(local) if any(ch.isalpha() for ch in w)]
    if not words:
        return address, False
    return " ".join(w[:1].upper() + w[1:] for w in words), False
