"""API tokens: bearer credentials for scripts and integrations, stored as SHA-256 only, so the
database never holds a usable one. They may expire, are revoked one by one or with their user
(storage.users), and every change is audited. The caller's transaction commits.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import bindparam, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql import ColumnElement

from storage import audit
from storage.tables import MAX_ID, TokenRow, UserRow
from storage.users import Caller, UserError, existing_user

# A token in use writes its last use at most this often: an API client making many requests a
# second must not turn every one of them into a write.
TOKEN_TOUCH_INTERVAL = timedelta(minutes=1)


class UnknownToken(UserError):
    def __init__(self, token_id: int) -> None:
        super().__init__(f"no token with id {token_id}")
        self.token_id = token_id


@dataclass(frozen=True)
class TokenInfo:
    """What may be shown of a token: never the token or its hash."""

    id: int
    user: str
    created_at: datetime
    expires_at: datetime | None
    last_used_at: datetime | None
    revoked_at: datetime | None
    state: str  # "active", "expired" or "revoked"


async def _token_and_user(
    session: AsyncSession, condition: ColumnElement[bool]
) -> tuple[TokenRow, UserRow] | None:
    query = select(TokenRow, UserRow).join(UserRow, UserRow.id == TokenRow.user_id)
    found = (await session.execute(query.where(condition))).one_or_none()
    return (found[0], found[1]) if found is not None else None


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


async def create_token(
    session: AsyncSession,
    user: UserRow,
    *,
    expires_in: timedelta | None = None,
    actor: str = "cli",
    now: datetime | None = None,
) -> str:
    """A new bearer token for the user, valid until revoked or, with `expires_in`, until then.

    The token is returned once and stored only as its SHA-256.
    """
    if user.disabled:
        raise UserError(f"user {user.email} is disabled")
    if expires_in is not None and expires_in <= timedelta(0):
        raise UserError(f"a token cannot expire {expires_in} from now: the time must be ahead")
    created = now or datetime.now(UTC)
    token = "crm_" + secrets.token_urlsafe(32)
    row = TokenRow(
        user_id=user.id,
        token_sha256=_digest(token),
        created_at=created,
        expires_at=created + expires_in if expires_in is not None else None,
    )
    session.add(row)
    await session.flush()
    audit.record(
        session,
        actor,
        "token.create",
        after={"token_id": row.id, "expires_at": _iso(row.expires_at)},
        target=user.email,
    )
    return token


def _iso(at: datetime | None) -> str | None:
    return at.isoformat() if at is not None else None


def token_state(row: TokenRow, now: datetime) -> str:
    """Whether the token opens the API at `now` ("active") or why not ("revoked", "expired")."""
    return _state(row.revoked_at, row.expires_at, now)


def _state(revoked_at: datetime | None, expires_at: datetime | None, now: datetime) -> str:
    if revoked_at is not None:
        return "revoked"
    if expires_at is not None and expires_at <= now:
        return "expired"
    return "active"


def _info(row: TokenRow, email: str, now: datetime) -> TokenInfo:
    return TokenInfo(
        row.id,
        email,
        row.created_at,
        row.expires_at,
        row.last_used_at,
        row.revoked_at,
        token_state(row, now),
    )


async def list_tokens(
    session: AsyncSession, email: str | None = None, now: datetime | None = None
) -> list[TokenInfo]:
    """Every token (of one user, with `email`) in the order created; UnknownUser for `email`."""
    query = select(TokenRow, UserRow.email).join(UserRow, UserRow.id == TokenRow.user_id)
    if email is not None:
        query = query.where(TokenRow.user_id == (await existing_user(session, email)).id)
    at = now or datetime.now(UTC)
    rows = await session.execute(query.order_by(TokenRow.id))
    return [_info(row, user, at) for row, user in rows]


async def revoke_token(
    session: AsyncSession, token_id: int, *, actor: str
) -> tuple[TokenInfo, bool]:
    """Revoke one token: its state afterwards, and whether this call revoked it (False when it
    was revoked already, which changes nothing)."""
    found = (
        await _token_and_user(session, TokenRow.id == token_id) if 0 < token_id <= MAX_ID else None
    )
    if found is None:
        raise UnknownToken(token_id)
    row, user = found
    email, now = user.email, datetime.now(UTC)
    if row.revoked_at is not None:
        return _info(row, email, now), False
    before = token_state(row, now)
    row.revoked_at = now
    audit.record(
        session,
        actor,
        "token.revoke",
        before={"token_id": row.id, "state": before},
        after={"token_id": row.id, "state": "revoked"},
        target=email,
    )
    return _info(row, email, now), True


async def user_by_token(
    session: AsyncSession, token: str, now: datetime | None = None
) -> UserRow | None:
    """The user a bearer token belongs to, or None when it is unknown, revoked or expired, or
    the user is disabled.

    Records the token's last use at most once per TOKEN_TOUCH_INTERVAL, in the caller's
    transaction: call it inside one that commits.
    """
    at = now or datetime.now(UTC)
    found = await active_token(session, token, at)
    if found is None:
        return None
    if found.touch_due:
        await touch_token(session, found.token_id, at)
    return await session.get(UserRow, found.caller.user_id)


@dataclass(frozen=True)
class ActiveToken:
    """Who an active token speaks for: what a request needs to judge it, no ORM row."""

    token_id: int
    caller: Caller
    touch_due: bool  # whether its use at this time is to be recorded (touch_token)


# Asked on every API request: built once, read as plain columns (storage.items says why).
_BY_DIGEST = (
    select(
        TokenRow.id,
        TokenRow.revoked_at,
        TokenRow.expires_at,
        TokenRow.last_used_at,
        UserRow.id,
        UserRow.email,
        UserRow.role,
        UserRow.disabled,
        UserRow.timezone,
    )
    .join(UserRow, UserRow.id == TokenRow.user_id)
    .where(TokenRow.token_sha256 == bindparam("digest"))
)


async def active_token(
    session: AsyncSession, token: str, now: datetime | None = None
) -> ActiveToken | None:
    """user_by_token without the write: for a read-only session (hub.Hub.reads); the caller
    records the use with touch_token, in a writing transaction, when `touch_due`."""
    at = now or datetime.now(UTC)
    rows = await (await session.connection()).execute(_BY_DIGEST, {"digest": _digest(token)})
    found = rows.first()
    if found is None:
        return None
    token_id, revoked_at, expires_at, last_used_at, user_id, email, role, disabled, zone = found
    if _state(revoked_at, expires_at, at) != "active" or disabled:
        return None
    due = last_used_at is None or at - last_used_at >= TOKEN_TOUCH_INTERVAL
    return ActiveToken(token_id, Caller(user_id, email, role, zone or ""), due)


async def touch_token(session: AsyncSession, token_id: int, at: datetime) -> None:
    """Record a token's use at `at`, in the caller's transaction."""
    await session.execute(update(TokenRow).where(TokenRow.id == token_id).values(last_used_at=at))
