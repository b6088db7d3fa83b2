"""attribute(): participants -> attributions, following the policy of DESIGN.md in order."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from hub.model import (
    AddressKind,
    Attribution,
    Channel,
    Direction,
    Interaction,
    Participant,
    Role,
)
from matching.identities import is_internal_extension, normalize_email, normalize_phone
from matching.index import IdentityIndex
from matching.rules import (
    ACCOUNT_DOMAIN,
    CONTACT_EMAIL,
    CONTACT_PHONE,
    THREAD,
    account_by_domain,
    accounts_by_thread,
    bulk_reason,
    contact_by_email,
    contact_by_phone,
)

ORIGINATORS = frozenset({Role.FROM, Role.ORGANIZER, Role.CALLER})


@dataclass(frozen=True, slots=True)
class ResolvedParticipant:
    participant: Participant
    normalized: str | None
    internal: bool
    contact_id: int | None


@dataclass
class Decision:
    """What matching concluded for one interaction; `not_logged` explains an empty result."""

    attributions: list[Attribution] = field(default_factory=list)
    participants: list[ResolvedParticipant] = field(default_factory=list)
    direction: Direction = Direction.INBOUND
    not_logged: str = ""


def resolve(participant: Participant, index: IdentityIndex) -> tuple[str | None, bool]:
    """Normalised address and whether it is one of ours (staff address or extension)."""
    if participant.kind is AddressKind.PHONE:
        if is_internal_extension(participant.address):
            return participant.address.strip(), True
        return normalize_phone(participant.address, index.region), False
    address = normalize_email(participant.address)
    if address is None:
        return None, False
    return address, index.is_internal_domain(address.rpartition("@")[2])


def direction_of(resolved: list[ResolvedParticipant]) -> Direction:
    if not any(not r.internal and r.normalized for r in resolved):
        return Direction.INTERNAL
    originators = [r for r in resolved if r.participant.role in ORIGINATORS]
    if originators and all(r.internal for r in originators):
        return Direction.OUTBOUND
    return Direction.INBOUND


def attribute(
    interaction: Interaction,
    index: IdentityIndex,
    threads: Mapping[str, frozenset[int]] | None = None,
) -> Decision:
    """Attribute one interaction to every customer any of its external participants matches.

    `threads` maps the Message-IDs of stored, attributed messages to their accounts; an item
    with no direct match inherits the accounts of the messages it answers.
    """
    decision = Decision()
    matched: dict[tuple[int, int | None], Attribution] = {}
    for participant in interaction.participants:
        normalized, internal = resolve(participant, index)
        contact_id: int | None = None
        if normalized and not internal:
            contact_id = _match(participant, normalized, index, matched)
        decision.participants.append(
            ResolvedParticipant(participant, normalized, internal, contact_id)
        )
    decision.direction = direction_of(decision.participants)
    if decision.direction is Direction.INTERNAL:
        decision.not_logged = "internal only"
    elif interaction.channel is Channel.EMAIL and (reason := bulk_reason(interaction.headers)):
        decision.not_logged = f"bulk or automated ({reason})"
    if not decision.not_logged:
        by_account = {key[0] for key in matched if key[1] is not None}
        decision.attributions = [
            a for key, a in matched.items() if key[1] is not None or key[0] not in by_account
        ]
        if not decision.attributions and threads:
            parents = [*interaction.in_reply_to, *interaction.references]
            decision.attributions = [
                Attribution(account_id, THREAD, 0.8, sentence)
                for account_id, sentence in accounts_by_thread(parents, threads, index)
            ]
    return decision


def _match(
    participant: Participant,
    normalized: str,
    index: IdentityIndex,
    matched: dict[tuple[int, int | None], Attribution],
) -> int | None:
    if participant.kind is AddressKind.PHONE:
        contacts, rule = contact_by_phone(normalized, index), CONTACT_PHONE
    else:
        contacts, rule = contact_by_email(normalized, index), CONTACT_EMAIL
    for contact_id, account_id, sentence in contacts:
        if account_id is not None:
            matched.setdefault(
                (account_id, contact_id),
                Attribution(account_id, rule, 1.0, sentence, contact_id=contact_id),
            )
    if contacts:
        return contacts[0][0]
    if participant.kind is AddressKind.EMAIL:
        for account_id, sentence in account_by_domain(normalized, index):
            matched.setdefault(
                (account_id, None), Attribution(account_id, ACCOUNT_DOMAIN, 0.9, sentence)
            )
    return None
