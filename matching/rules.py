"""The attribution rules of DESIGN.md, each a small pure function returning candidates."""

from __future__ import annotations

from collections.abc import Mapping

from matching.identities import parent_domains
from matching.index import IdentityIndex

CONTACT_EMAIL = "contact-email"
CONTACT_PHONE = "contact-phone"
ACCOUNT_DOMAIN = "account-domain"
THREAD = "thread"

BULK_PRECEDENCE = frozenset({"bulk", "list", "junk"})


def bulk_reason(headers: Mapping[str, str]) -> str:
    """Why an item is bulk or automated mail, or "" when it is written by a person."""
    lowered = {key.lower(): value.strip().lower() for key, value in headers.items()}
    auto = lowered.get("auto-submitted")
    if auto and auto != "no":
        return f"Auto-Submitted: {auto}"
    if lowered.get("precedence") in BULK_PRECEDENCE:
        return f"Precedence: {lowered['precedence']}"
    for header in ("list-id", "list-unsubscribe"):
        if header in lowered:
            return f"{header.title()} header"
    return ""


def contact_by_email(address: str, index: IdentityIndex) -> list[tuple[int, int | None, str]]:
    """(contact_id, account_id, sentence) for every contact that owns the address."""
    return [
        (
            ref.contact_id,
            ref.account_id,
            f"{address} is {ref.contact_name}"
            + (f" at {ref.account_name}" if ref.account_name else ""),
        )
        for ref in index.emails.get(address, ())
    ]


def contact_by_phone(number: str, index: IdentityIndex) -> list[tuple[int, int | None, str]]:
    return [
        (
            ref.contact_id,
            ref.account_id,
            f"{number} is {ref.contact_name}"
            + (f" at {ref.account_name}" if ref.account_name else ""),
        )
        for ref in index.phones.get(number, ())
    ]


def listed_domain(address: str, index: IdentityIndex) -> str:
    """The address's domain or its nearest parent an account lists; "" for none or free mail."""
    domain = address.rpartition("@")[2]
    if domain in index.free_mail:
        return ""
    for candidate in parent_domains(domain):
        if candidate in index.domains:
            return candidate
    return ""


def account_by_domain(address: str, index: IdentityIndex) -> list[tuple[int, str]]:
    """Accounts owning the address's domain or its nearest listed parent; never free mail."""
    listed = listed_domain(address, index)
    if not listed:
        return []
    domain = address.rpartition("@")[2]
    return [
        (
            ref.account_id,
            f"{domain} belongs to {ref.account_name}"
            + ("" if listed == domain else f" (domain {listed})"),
        )
        for ref in index.domains[listed]
    ]


def accounts_by_thread(
    parents: list[str], threads: Mapping[str, frozenset[int]], index: IdentityIndex
) -> list[tuple[int, str]]:
    """Accounts of the stored messages this one answers (In-Reply-To first, then References)."""
    found: dict[int, str] = {}
    for message_id in parents:
        for account_id in sorted(threads.get(message_id, ())):
            name = index.account_names.get(account_id, f"account {account_id}")
            found.setdefault(account_id, f"answers {message_id}, which belongs to {name}")
    return list(found.items())
