"""Who the outside parties of an item are: the one definition the blocklist and erasure share.

An item's external parties are those matching would attribute by (DESIGN.md "Attribution
policy"): staff addresses and internal extensions are ours, not parties. A number that cannot
be read (a withheld caller) is an unknown external party, never an internal one; an email
participant without a readable address (`undisclosed-recipients:;`) is nobody.
"""

from __future__ import annotations

from collections.abc import Iterable

from hub.model import AddressKind, Participant
from matching.engine import resolve
from matching.index import IdentityIndex


def external_parties(participants: Iterable[Participant], index: IdentityIndex) -> list[str | None]:
    """The normalised address or E.164 number of each external party; None for an unknown one."""
    parties: list[str | None] = []
    for participant in participants:
        normalized, internal = resolve(participant, index)
        if internal:
            continue
        if normalized is not None or participant.kind is AddressKind.PHONE:
            parties.append(normalized)
    return parties
