"""What is never stored (DESIGN.md "Never stored"): blocklisted items, and items that name a
person whose data was erased, dated before the erasure.

The sync, the dropbox and mail sent through crmhub all pass their translated items through
`screen_items` before matching sees them (so a refused item creates no contact either); what
it refuses becomes `Skipped`, counted in the sync report and never stored.

Erased identities are kept only as keyed hashes (HMAC-SHA256 with the hub's secret key): a
re-read of an old mailbox must not bring an erased person back, and the hub must not keep a
list of who asked to be forgotten. Changing CRMHUB_SECRET_KEY therefore forgets the erasures
for this purpose, as it makes the stored connector secrets unreadable.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime

from hub.bootstrap import Hub, secret_key_for
from hub.model import Interaction, Quarantined, Skipped, Translated
from matching.blocklist import Blocklist, is_blocked
from matching.identities import normalize_email
from matching.index import IdentityIndex
from matching.parties import external_parties
from storage.blocklist import entries, erased_digests

BLOCKED = "every outside party is on the blocklist"
ERASED = "names a person whose data was erased"
_ADDRESS = re.compile(r"[\w.!#$%&'*+/=?^`{|}~-]+@[\w-]+(?:\.[\w-]+)+")


def identity_digest(secret_key: str, identity: str) -> str:
    """The keyed hash of a normalised address or E.164 number, as erased_identities keeps it."""
    return hmac.new(secret_key.encode(), identity.encode(), hashlib.sha256).hexdigest()


@dataclass(frozen=True)
class Screen:
    blocklist: Blocklist = field(default_factory=Blocklist)
    erased: Mapping[str, datetime] = field(default_factory=dict)  # digest -> erased at
    secret_key: str = ""

    def __bool__(self) -> bool:
        return bool(self.blocklist or self.erased)

    def refusal(self, interaction: Interaction, owner: str, index: IdentityIndex) -> str:
        """Why `interaction`, fetched from `owner`'s mailbox, must not be stored; "" if it may."""
        parties = external_parties(interaction.participants, index)
        if self.blocklist and is_blocked(parties, self.blocklist, owner):
            return BLOCKED
        if self.erased:
            occurred = interaction.occurred_at
            if occurred.tzinfo is None:
                occurred = occurred.replace(tzinfo=UTC)
            for party in parties:
                if party is None:
                    continue
                erased_at = self.erased.get(identity_digest(self.secret_key, party))
                if erased_at is not None and occurred < erased_at:
                    return ERASED
        return ""


async def load_screen(hub: Hub) -> Screen:
    """The blocklist and the erased identities as they are now: two small reads."""
    async with hub.sessions() as session:
        listed = await entries(session)
        erased = await erased_digests(session)
    return Screen(
        Blocklist.of((e.entry, e.user) for e in listed),
        erased,
        secret_key_for(hub.settings) if erased else "",
    )


def screen_quarantined(
    screen: Screen, items: list[Quarantined]
) -> tuple[list[Quarantined], list[Skipped]]:
    """Unreadable items that mention an erased address anywhere in their bytes, refused.

    They have no participants and no trustworthy date, so every mail address written in them
    is looked up; numbers cannot be found reliably in free text and are not.
    """
    if not screen.erased:
        return items, []
    kept: list[Quarantined] = []
    refused: list[Skipped] = []
    for item in items:
        text = item.raw.data.decode("latin-1")
        addresses = {normalize_email(found) for found in _ADDRESS.findall(text)}
        if any(identity_digest(screen.secret_key, a) in screen.erased for a in addresses if a):
            refused.append(Skipped(item.raw, ERASED))
        else:
            kept.append(item)
    return kept, refused


def screen_items(
    screen: Screen, items: list[Translated], owner: str, index: IdentityIndex
) -> tuple[list[Translated], list[Skipped]]:
    """The items that may be stored, and the refused ones as Skipped (with the reason)."""
    if not screen:
        return items, []
    kept: list[Translated] = []
    refused: list[Skipped] = []
    for item in items:
        reason = screen.refusal(item.interaction, owner, index)
        if reason:
            refused.append(Skipped(item.raw, reason))
        else:
            kept.append(item)
    return kept, refused
