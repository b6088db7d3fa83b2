"""Users, password hashes (scrypt) and API tokens (stored as SHA-256 only)."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from datetime import UTC, datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from storage.tables import TokenRow, UserRow

ROLES = ("admin", "manager", "sales", "callcenter")


def hash_password(password: str) -> str:
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, n=2**14, r=8, p=1)
    return f"scrypt${salt.hex()}${digest.hex()}"


def check_password(password: str, stored: str) -> bool:
    try:
        _, salt, digest = stored.split("$")
    except ValueError:
        return False
    candidate = hashlib.scrypt(password.encode(), salt=bytes.fromhex(salt), n=2**14, r=8, p=1)
    return hmac.compare_digest(candidate.hex(), digest)


async def add_user(session: AsyncSession, email: str, role: str, password: str) -> UserRow:
    """Create the user, or update role and password of an existing one."""
    row = (
        await session.execute(select(UserRow).where(UserRow.email == email))
    ).scalar_one_or_none()
    if row is None:
        row = UserRow(email=email, role=role)
        session.add(row)
    row.role = role
    row.password_hash = hash_password(password)
    await session.flush()
    return row


async def user_by_email(session: AsyncSession, email: str) -> UserRow | None:
    return (
        await session.execute(select(UserRow).where(UserRow.email == email.strip().lower()))
    ).scalar_one_or_none()


async def create_token(session: AsyncSession, user: UserRow) -> str:
    token = "crm_" + secrets.token_urlsafe(32)
    session.add(
        TokenRow(
            user_id=user.id,
            token_sha256=hashlib.sha256(token.encode()).hexdigest(),
            created_at=datetime.now(UTC),
        )
    )
    await session.flush()
    return token


async def user_by_token(session: AsyncSession, token: str) -> UserRow | None:
    digest = hashlib.sha256(token.encode()).hexdigest()
    row = (
        await session.execute(select(TokenRow).where(TokenRow.token_sha256 == digest))
    ).scalar_one_or_none()
    return await session.get(UserRow, row.user_id) if row else None
