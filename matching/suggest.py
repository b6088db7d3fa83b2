"""Suggestions for the review queue: who an unknown sender probably is, best guess first.

Evidence, strongest first: an address or number in the sender's signature that the directory
knows (100); a contact matching already suspects, or one with the sender's name (95, down to
80 for a near spelling, ranked by rapidfuzz); a company domain named in the signature (85).
A name never reaches the score of a signature: anybody can type a name. Suggestions are
offered to a person, never applied by themselves: a name or a signature is written by the
sender and proves nothing.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

import phonenumbers
from rapidfuzz import fuzz, process

from hub.model import ReviewKind
from matching.identities import normalize_email, normalize_name, normalize_phone
from matching.index import ContactRef, IdentityIndex
from matching.rules import listed_domain

MAX_SUGGESTIONS = 5
SIGNATURE_SCORE = 100
NAME_SCORE = 95  # a candidate of matching's, or the very same name
DOMAIN_SCORE = 85
NAME_CUTOFF = 80  # token_sort_ratio; "Jana Ohlsen" vs "Jana Olsen" is 95, unrelated names < 60
SIGNATURE_LINES = 15
_EMAIL = re.compile(r"[\w.!#$%&'*+/=?^`{|}~-]+@[\w-]+(?:\.[\w-]+)+")
_WEB = re.compile(r"\b(?:https?://)?www\.([a-z0-9-]+(?:\.[a-z0-9-]+)+)", re.IGNORECASE)
_QUOTE_START = re.compile(
    r"^(?:-{2,}\s*(?:Original|Ursprüngliche|Forwarded|Weitergeleitete)\b.*"
    r"|(?:From|Von):\s.*)$",
    re.IGNORECASE,
)
# "On <date> Jana <j@x> wrote:", "Am <date> schrieb Jana <j@x>:"; mail clients wrap it, so the
# line that ends it may be the second one.
_ATTRIBUTION_END = re.compile(r"\b(?:wrote|schrieb)\b.*:$", re.IGNORECASE)
_ATTRIBUTION_START = re.compile(r"^(?:On|Am)\s", re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class Suggestion:
    """One way to settle a case: a contact, or an account to create the contact at."""

    account_id: int | None
    contact_id: int | None
    label: str
    score: int  # 0-100, comparable across kinds of evidence
    reason: str


@dataclass(frozen=True, slots=True)
class Signature:
    emails: tuple[str, ...]
    phones: tuple[str, ...]
    domains: tuple[str, ...]


def signature_of(body: str, region: str | None) -> Signature:
    """Addresses, numbers and web domains in the sender's own closing lines.

    Quoted replies and forwarded parts are cut first: identities in them belong to others.
    """
    own: list[str] = []
    for line in body.splitlines():
        stripped = line.strip()
        if _QUOTE_START.match(stripped):
            break
        if _ATTRIBUTION_END.search(stripped):
            if not _ATTRIBUTION_START.match(stripped) and own and _ATTRIBUTION_START.match(own[-1]):
                own.pop()
            break
        if not stripped.startswith(">"):
            own.append(stripped)
    lines = [line for line in own if line]
    if "--" in lines:
        lines = lines[len(lines) - lines[::-1].index("--") :]
    text = "\n".join(lines[-SIGNATURE_LINES:])
    phones = []
    for found in phonenumbers.PhoneNumberMatcher(text, region or "ZZ"):
        e164 = normalize_phone(found.raw_string, region)
        if e164:
            phones.append(e164)
    emails = [e for e in map(normalize_email, _EMAIL.findall(text)) if e]
    domains = [m.lower() for m in _WEB.findall(text)]
    return Signature(
        tuple(dict.fromkeys(emails)), tuple(dict.fromkeys(phones)), tuple(dict.fromkeys(domains))
    )


def _label(ref: ContactRef) -> str:
    return ref.contact_name + (f" at {ref.account_name}" if ref.account_name else "")


def _by_contact(ref: ContactRef, score: int, reason: str) -> Suggestion:
    return Suggestion(ref.account_id, ref.contact_id, _label(ref), score, reason)


def _name_queries(name: str, spellings: Iterable[str]) -> list[str]:
    """The display name, and local parts read as names ("jana.ohlsen84@" is Jana Ohlsen).

    The spellings are the addresses as written: a Gmail key has lost the dots between names.
    """
    queries = [normalize_name(name)]
    for address in spellings:
        local, at, _ = address.strip().strip("<>").rpartition("@")
        if at:
            spelled = re.sub(r"[\d_.\-]+", " ", local.partition("+")[0])
            queries.append(normalize_name(spelled))
    return [q for q in dict.fromkeys(queries) if q]


def suggest(
    kind: ReviewKind,
    key: str,
    name: str,
    bodies: Iterable[str],
    candidates: Iterable[int],
    index: IdentityIndex,
    spellings: Iterable[str] = (),
) -> list[Suggestion]:
    """Contacts (or accounts) `key` probably belongs to, strongest evidence first.

    For a shared domain the answer is one of the accounts listing it; for every other kind,
    a contact (or an account to create one at). `spellings` are the addresses as the items
    wrote them (the key is normalised), read for a name in the local part.
    """
    if kind is ReviewKind.SHARED_DOMAIN:
        return [
            Suggestion(account_id, None, index.account_names[account_id], 90, f"lists {key}")
            for account_id in candidates
            if account_id in index.account_names
        ]
    found: dict[tuple[int | None, int | None], Suggestion] = {}

    def offer(s: Suggestion) -> None:
        held = found.get((s.account_id, s.contact_id))
        if held is None or held.score < s.score:
            found[(s.account_id, s.contact_id)] = s

    for ref in filter(None, map(index.contacts.get, candidates)):
        if kind is ReviewKind.SHARED_ADDRESS:
            reason = f"{_label(ref)} has {key}"
        else:
            reason = f"{name or key} has the name of {_label(ref)}"
        offer(_by_contact(ref, NAME_SCORE, reason))
    for body in bodies:
        signature = signature_of(body, index.region)
        for identity in (*signature.emails, *signature.phones):
            refs = index.emails.get(identity) or index.phones.get(identity) or []
            for ref in refs:
                if identity != key:
                    offer(_by_contact(ref, SIGNATURE_SCORE, f"the signature gives {identity}"))
        for domain in signature.domains:
            listed = listed_domain("@" + domain, index)
            for account in index.domains.get(listed, []) if listed else []:
                offer(
                    Suggestion(
                        account.account_id,
                        None,
                        account.account_name,
                        DOMAIN_SCORE,
                        f"the signature names {domain}",
                    )
                )
    for query in _name_queries(name, [key, *spellings]):
        for choice, score, _ in process.extract(
            query,
            index.names_near(query),
            scorer=fuzz.token_sort_ratio,
            limit=MAX_SUGGESTIONS,
            score_cutoff=NAME_CUTOFF,
        ):
            refs = index.names[choice]
            many = f", one of {len(refs)} contacts of that name" if len(refs) > 1 else ""
            # A common name is held by hundreds in a big directory; five of them fill the list.
            for ref in refs[:MAX_SUGGESTIONS]:
                same = score >= 100
                reason = f"{name or key} {'has the name of' if same else 'is like'} {_label(ref)}"
                offer(_by_contact(ref, min(int(score), NAME_SCORE), reason + many))
    ranked = sorted(found.values(), key=lambda s: (-s.score, s.label))
    return ranked[:MAX_SUGGESTIONS]
