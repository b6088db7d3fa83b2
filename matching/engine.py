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
    ReviewCase,
    ReviewKind,
    Role,
)
from matching.identities import (
    is_internal_extension,
    normalize_email,
    normalize_name,
    normalize_phone,
)
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
    listed_domain,
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
    """What matching concluded for one interaction; `not_logged` explains an empty result.

    `review` lists what a person should settle; it never holds up the attributions made.
    """

    attributions: list[Attribution] = field(default_factory=list)
    review: list[ReviewCase] = field(default_factory=list)
    participants: list[ResolvedParticipant] = field(default_factory=list)
    direction: Direction = Direction.INBOUND
    not_logged: str = ""


def resolve(participant: Participant, index: IdentityIndex) -> tuple[str | None, bool]:
    """Normalised address and whether it is one of ours (staff address, extension, or a
    number the source says is ours)."""
    if participant.kind is AddressKind.PHONE:
        if is_internal_extension(participant.address):
            return participant.address.strip(), True
        return normalize_phone(participant.address, index.region), participant.ours
    address = normalize_email(participant.address)
    if address is None:
        return None, False
    return address, index.is_internal_domain(address.rpartition("@")[2])


def _external(r: ResolvedParticipant) -> bool:
    """An outside party: a readable address or number not ours, or a caller whose number
    cannot be read (withheld, "anonymous"): somebody outside whom we do not know, never staff
    (DESIGN.md "Who sees what"; matching.parties)."""
    if r.internal:
        return False
    return bool(r.normalized) or r.participant.kind is AddressKind.PHONE


def direction_of(resolved: list[ResolvedParticipant]) -> Direction:
    if not any(_external(r) for r in resolved):
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
            contact_id = _match(participant, normalized, index, matched, decision.review)
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
        if not decision.attributions:
            decision.review.extend(_unknown_senders(decision.participants, index))
    if decision.not_logged:
        decision.review.clear()
    elif index.ignored:
        decision.review = [case for case in decision.review if case.key not in index.ignored]
    return decision


def _unknown_senders(resolved: list[ResolvedParticipant], index: IdentityIndex) -> list[ReviewCase]:
    """Who wrote or called an item nobody can be attributed for: free mail or a full number.

    A sender at an unknown company domain is left out: that is a missing account, which the
    unmatched list shows; a free-mail sender or caller may be a known person's second identity.
    """
    cases = []
    for r in resolved:
        p = r.participant
        if r.internal or not r.normalized or r.contact_id or p.role not in ORIGINATORS:
            continue
        if p.kind is AddressKind.EMAIL and r.normalized.rpartition("@")[2] not in index.free_mail:
            continue
        cases.append(
            ReviewCase(
                ReviewKind.UNKNOWN_SENDER,
                r.normalized,
                p.name,
                f"{r.normalized} is nobody in the directory and answers no known thread",
            )
        )
    return cases


def _match(
    participant: Participant,
    normalized: str,
    index: IdentityIndex,
    matched: dict[tuple[int, int | None], Attribution],
    review: list[ReviewCase],
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
        if len({account_id for _, account_id, _ in contacts}) > 1:
            review.append(
                ReviewCase(
                    ReviewKind.SHARED_ADDRESS,
                    normalized,
                    participant.name,
                    f"{normalized} belongs to contacts of {len(contacts)} accounts",
                    tuple(contact_id for contact_id, _, _ in contacts),
                )
            )
        return contacts[0][0]
    if participant.kind is AddressKind.EMAIL:
        by_domain = account_by_domain(normalized, index)
        for account_id, sentence in by_domain:
            matched.setdefault(
                (account_id, None), Attribution(account_id, ACCOUNT_DOMAIN, 0.9, sentence)
            )
        if len(by_domain) > 1:
            domain = listed_domain(normalized, index)
            review.append(
                ReviewCase(
                    ReviewKind.SHARED_DOMAIN,
                    domain,
                    "",
                    f"{domain} is listed by {len(by_domain)} accounts",
                    tuple(account_id for account_id, _ in by_domain),
                )
            )
    if participant.name and (lookalike := _lookalike(participant.name, normalized, index)):
        review.append(lookalike)
    return None


def _lookalike(name: str, normalized: str, index: IdentityIndex) -> ReviewCase | None:
    """A display name a contact has, on an address of nobody: review, never attribution."""
    key = normalize_name(name)
    refs = index.names.get(key) if key else None
    if not refs:
        return None
    who = refs[0].contact_name + (f" at {refs[0].account_name}" if refs[0].account_name else "")
    more = f" and {len(refs) - 1} more" if len(refs) > 1 else ""
    return ReviewCase(
        ReviewKind.NAME_LOOKALIKE,
        normalized,
        name,
        f"{name!r} is the name of {who}{more}, but {normalized} is not their address",
        tuple(ref.contact_id for ref in refs),
    )
