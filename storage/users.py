"""Users, their passwords and sessions: who may sign in, and what ends their access (their
API tokens are storage.tokens).

Passwords are stored as scrypt hashes and checked in a worker thread: one check costs about
50 ms of CPU, which on the event loop would stall every other request. Tokens are stored as
SHA-256 only, so the database never holds a usable credential.

Access ends at once without a list of sessions: every session cookie carries the user's
`session_epoch` from its login, and disabling a user or changing their password raises it and
revokes all their tokens in the same transaction. Every change is audited with roles and states,
never a password or a hash. Changes happen in the caller's transaction; the caller commits.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import CursorResult, bindparam, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from storage import audit
from storage.tables import MAX_ID, TokenRow, UserRow

ROLES = ("admin", "manager", "sales", "callcenter")
_SCRYPT_N, _SCRYPT_R, _SCRYPT_P = 2**14, 8, 1
# The hash of a random password nobody knows, made with the parameters above: an unknown or
# disabled address is checked against it, so a refusal costs the same time whoever asks.
_DUMMY_HASH = (
    "scrypt$0cf3f627be9bf46e46809501211e6b4b$bdb94861bebef4c16a095af9db3287a5d2419cad3a4d2cb8"
    "2bae203fe8ef32417e3fe33b957e999d5d79435ed8fc1343bfe8297fbeab5129873f911672faae16"
)


class UserError(ValueError):
    """A user or token change cannot be made as asked; the message says why in one line."""


class UnknownUser(UserError):
    def __init__(self, email: str) -> None:
        super().__init__(f"no user {email}")
        self.email = email


class UserExists(UserError):
    def __init__(self, email: str) -> None:
        super().__init__(f"user {email} exists")
        self.email = email


class UnknownRole(UserError):
    def __init__(self, role: str) -> None:
        super().__init__(f"role {role!r} is not one of {', '.join(ROLES)}")
        self.role = role


def hash_password(password: str) -> str:
    """The scrypt hash to store. Blocks for about 50 ms: async code uses hash_password_async."""
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, n=_SCRYPT_N, r=_SCRYPT_R, p=_SCRYPT_P)
    return f"scrypt${salt.hex()}${digest.hex()}"


def check_password(password: str, stored: str) -> bool:
    """Whether `password` matches the stored hash; False for a malformed one. Blocks as above."""
    parsed = _parse_hash(stored)
    if parsed is None:
        return False
    salt, digest = parsed
    candidate = hashlib.scrypt(password.encode(), salt=salt, n=_SCRYPT_N, r=_SCRYPT_R, p=_SCRYPT_P)
    return hmac.compare_digest(candidate, digest)


def _parse_hash(stored: str) -> tuple[bytes, bytes] | None:
    scheme, _, rest = stored.partition("$")
    salt, _, digest = rest.partition("$")
    try:
        return (bytes.fromhex(salt), bytes.fromhex(digest)) if scheme == "scrypt" else None
    except ValueError:
        return None


async def hash_password_async(password: str) -> str:
    """hash_password in a worker thread, so the event loop keeps serving other requests."""
    return await asyncio.to_thread(hash_password, password)


async def authenticate(
    session: AsyncSession, email: str, password: str, now: datetime | None = None
) -> UserRow | None:
    """The user signing in with this address and password, or None.

    An unknown address, a disabled user and a user without a password are checked against a
    dummy hash: a refusal costs the same time, so timing tells nobody which addresses exist.
    A success records `last_login_at` in the caller's transaction.
    """
    user = await user_by_email(session, email)
    usable = user is not None and not user.disabled and _parse_hash(user.password_hash) is not None
    stored = user.password_hash if user is not None and usable else _DUMMY_HASH
    matches = await asyncio.to_thread(check_password, password, stored)
    if user is None or not usable or not matches:
        return None
    user.last_login_at = now or datetime.now(UTC)
    return user


@dataclass(frozen=True)
class Caller:
    """Who a request speaks for, as every request reads it: no ORM row (storage.items)."""

    user_id: int
    email: str
    role: str
    timezone: str = ""  # the user's own zone for pages; "" for the configured one


_FOR_SESSION = select(
    UserRow.email, UserRow.role, UserRow.disabled, UserRow.session_epoch, UserRow.timezone
).where(UserRow.id == bindparam("user_id"))


async def session_caller(session: AsyncSession, user_id: int, epoch: int) -> Caller | None:
    """Who a session cookie speaks for, or None when the user is gone, disabled or the epoch
    moved: one statement built once, as every signed-in request asks it."""
    if not 0 < user_id <= MAX_ID:
        return None
    rows = await (await session.connection()).execute(_FOR_SESSION, {"user_id": user_id})
    found = rows.first()
    if found is None or found.disabled or found.session_epoch != epoch:
        return None
    return Caller(user_id, found.email, found.role, found.timezone or "")


async def set_timezone(session: AsyncSession, user_id: int, zone: str) -> None:
    """The zone the user's pages show times in ("" for the configured one); checked by the
    caller against the zone database."""
    user = await session.get(UserRow, user_id)
    if user is None:
        raise UserError("no such user")
    user.timezone = zone


def user_address(email: str) -> str:
    """A user's address as stored: trimmed and lower-cased; UserError if it is not one."""
    address = email.strip().lower()
    local, at, domain = address.rpartition("@")
    if not (local and at and domain) or len(address) > 320:
        raise UserError(f"{email!r} is not an email address")
    if any(c.isspace() or not c.isprintable() for c in address):
        raise UserError(f"{email!r} is not an email address: it contains blanks or control codes")
    return address


def _check_role(role: str) -> None:
    if role not in ROLES:
        raise UnknownRole(role)


async def user_by_email(session: AsyncSession, email: str) -> UserRow | None:
    return (
        await session.execute(select(UserRow).where(UserRow.email == email.strip().lower()))
    ).scalar_one_or_none()


async def existing_user(session: AsyncSession, email: str) -> UserRow:
    user = await user_by_email(session, email)
    if user is None:
        raise UnknownUser(email.strip().lower())
    return user


async def add_user(
    session: AsyncSession, email: str, role: str, password: str, *, actor: str = "cli"
) -> UserRow:
    """Create a user; UserExists for a known address (a password is reset on purpose only)."""
    address = user_address(email)
    _check_role(role)
    if not password:
        raise UserError(f"the password for {address} is empty")
    if await user_by_email(session, address) is not None:
        raise UserExists(address)
    row = UserRow(email=address, role=role, password_hash=await hash_password_async(password))
    session.add(row)
    try:
        await session.flush()
    except IntegrityError as e:  # added by a concurrent transaction since the check above
        raise UserExists(address) from e
    audit.record(
        session, actor, "user.add", after={"role": role, "state": "active"}, target=address
    )
    return row


async def list_users(session: AsyncSession) -> list[UserRow]:
    return list((await session.execute(select(UserRow).order_by(UserRow.email))).scalars())


async def _end_access(session: AsyncSession, user: UserRow, now: datetime) -> int:
    """End every session (by the epoch) and revoke every live token; the number revoked."""
    user.session_epoch += 1
    result = await session.execute(
        update(TokenRow)
        .where(TokenRow.user_id == user.id, TokenRow.revoked_at.is_(None))
        .values(revoked_at=now)
        .execution_options(synchronize_session=False)
    )
    return int(result.rowcount) if isinstance(result, CursorResult) else 0


async def disable_user(session: AsyncSession, email: str, *, actor: str) -> int | None:
    """Disable the user, ending their sessions and tokens at once.

    The number of tokens revoked, or None when the user was disabled already (nothing changes).
    """
    user = await existing_user(session, email)
    if user.disabled:
        return None
    user.disabled = True
    revoked = await _end_access(session, user, datetime.now(UTC))
    audit.record(
        session,
        actor,
        "user.disable",
        before={"state": "active"},
        after={"state": "disabled", "tokens_revoked": revoked},
        target=user.email,
    )
    return revoked


async def enable_user(session: AsyncSession, email: str, *, actor: str) -> bool:
    """Enable the user again; whether that changed anything. Revoked tokens stay revoked."""
    user = await existing_user(session, email)
    if not user.disabled:
        return False
    user.disabled = False
    audit.record(
        session,
        actor,
        "user.enable",
        before={"state": "disabled"},
        after={"state": "active"},
        target=user.email,
    )
    return True


async def set_role(session: AsyncSession, email: str, role: str, *, actor: str) -> str:
    """Give the user `role`; the role they had (equal to `role` when nothing changed).

    Sessions and tokens stay: every request reads the role afresh.
    """
    _check_role(role)
    user = await existing_user(session, email)
    before = user.role
    if before != role:
        user.role = role
        audit.record(
            session,
            actor,
            "user.role",
            before={"role": before},
            after={"role": role},
            target=user.email,
        )
    return before


async def set_password(session: AsyncSession, email: str, password: str, *, actor: str) -> int:
    """Replace the user's password, ending their sessions and tokens; the number revoked."""
    if not password:
        raise UserError("the new password is empty")
    user = await existing_user(session, email)
    user.password_hash = await hash_password_async(password)
    revoked = await _end_access(session, user, datetime.now(UTC))
    audit.record(
        session, actor, "user.password", after={"tokens_revoked": revoked}, target=user.email
    )
    return revoked
