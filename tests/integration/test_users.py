"""Users, sessions and tokens in the database: what ends access, and what a login costs.

Runs on SQLite, and on PostgreSQL when CRMHUB_TEST_DATABASE_URL is set. Each step commits, as
the CLI and the web view do, and the next reads afresh, so the tests see what another process
would see.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any, TypeVar

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from hub.bootstrap import Hub
from storage import users
from storage.tables import MAX_ID, AuditRow, TokenRow, UserRow
from storage.tokens import UnknownToken, create_token, list_tokens, revoke_token, user_by_token
from storage.users import (
    UnknownRole,
    UnknownUser,
    UserError,
    UserExists,
    add_user,
    authenticate,
    disable_user,
    enable_user,
    hash_password_async,
    list_users,
    session_caller,
    set_password,
    set_role,
    user_by_email,
)

T = TypeVar("T")
ANNA, PASSWORD = "anna@ourco.example", "correct horse 42"


async def step(hub: Hub, work: Callable[[AsyncSession], Awaitable[T]]) -> T:
    """One committed transaction, as one CLI command or one request makes it."""
    async with hub.sessions() as session, session.begin():
        return await work(session)


async def anna(hub: Hub, role: str = "sales") -> UserRow:
    return await step(hub, lambda s: add_user(s, ANNA, role, PASSWORD, actor="cli"))


async def token_for(hub: Hub, email: str = ANNA, **options: Any) -> str:
    async def work(session: AsyncSession) -> str:
        user = await user_by_email(session, email)
        assert user is not None
        return await create_token(session, user, **options)

    return await step(hub, work)


async def audit_entries(hub: Hub) -> list[tuple[str, str, str, dict[str, Any], dict[str, Any]]]:
    async with hub.sessions() as session:
        rows = (await session.execute(select(AuditRow).order_by(AuditRow.id))).scalars()
        return [(r.actor, r.action, r.target, r.before, r.after) for r in rows]


async def test_adding_an_existing_user_is_an_error_and_keeps_the_password(hub: Hub) -> None:
    await anna(hub)
    with pytest.raises(UserExists) as raised:
        await step(hub, lambda s: add_user(s, " ANNA@ourco.example", "admin", "other", actor="x"))
    assert raised.value.email == ANNA
    assert await step(hub, lambda s: authenticate(s, ANNA, PASSWORD)) is not None
    assert await step(hub, lambda s: authenticate(s, ANNA, "other")) is None
    assert [(u.email, u.role) for u in await step(hub, list_users)] == [(ANNA, "sales")]
    assert await audit_entries(hub) == [
        ("cli", "user.add", ANNA, {}, {"role": "sales", "state": "active"})
    ]


async def test_bad_roles_addresses_and_passwords_are_refused(hub: Hub) -> None:
    with pytest.raises(UnknownRole, match="'boss' is not one of admin, manager"):
        await step(hub, lambda s: add_user(s, ANNA, "boss", PASSWORD))
    with pytest.raises(UserError, match="not an email address"):
        await step(hub, lambda s: add_user(s, "anna", "sales", PASSWORD))
    with pytest.raises(UserError, match=r"password .* is empty"):
        await step(hub, lambda s: add_user(s, ANNA, "sales", ""))
    await anna(hub)
    with pytest.raises(UnknownRole):
        await step(hub, lambda s: set_role(s, ANNA, "root", actor="cli"))
    for change in (
        lambda s: disable_user(s, "nobody@ourco.example", actor="cli"),
        lambda s: enable_user(s, "nobody@ourco.example", actor="cli"),
        lambda s: set_role(s, "nobody@ourco.example", "admin", actor="cli"),
        lambda s: set_password(s, "nobody@ourco.example", "pw", actor="cli"),
        lambda s: list_tokens(s, "nobody@ourco.example"),
    ):
        with pytest.raises(UnknownUser, match=r"no user nobody@ourco\.example"):
            await step(hub, change)
    for token_id in (0, 999, MAX_ID + 1):
        with pytest.raises(UnknownToken):
            await step(hub, partial(revoke_token, token_id=token_id, actor="cli"))


async def test_disabling_ends_sessions_and_tokens_and_enabling_revives_neither(
    hub: Hub,
) -> None:
    user = await anna(hub)
    first, second = await token_for(hub), await token_for(hub)
    epoch = user.session_epoch
    assert await step(hub, lambda s: session_caller(s, user.id, epoch)) is not None
    assert await step(hub, lambda s: user_by_token(s, first)) is not None

    assert await step(hub, lambda s: disable_user(s, ANNA, actor="cli")) == 2
    assert await step(hub, lambda s: disable_user(s, ANNA, actor="cli")) is None
    assert await step(hub, lambda s: session_caller(s, user.id, epoch)) is None
    assert await step(hub, lambda s: user_by_token(s, first)) is None
    assert await step(hub, lambda s: authenticate(s, ANNA, PASSWORD)) is None
    with pytest.raises(UserError, match="is disabled"):
        await token_for(hub)

    assert await step(hub, lambda s: enable_user(s, ANNA, actor="cli")) is True
    assert await step(hub, lambda s: enable_user(s, ANNA, actor="cli")) is False
    for token in (first, second):
        assert await step(hub, partial(user_by_token, token=token)) is None
    assert await step(hub, lambda s: session_caller(s, user.id, epoch)) is None
    assert await step(hub, lambda s: session_caller(s, user.id, epoch + 1)) is not None
    assert await step(hub, lambda s: authenticate(s, ANNA, PASSWORD)) is not None
    assert [t.state for t in await step(hub, list_tokens)] == ["revoked", "revoked"]

    actions = [(action, before, after) for _, action, _, before, after in await audit_entries(hub)]
    assert actions[-2:] == [
        ("user.disable", {"state": "active"}, {"state": "disabled", "tokens_revoked": 2}),
        ("user.enable", {"state": "disabled"}, {"state": "active"}),
    ]


async def test_a_new_password_ends_sessions_and_tokens_and_is_never_audited(hub: Hub) -> None:
    user = await anna(hub)
    token = await token_for(hub)
    assert await step(hub, lambda s: set_password(s, ANNA, "new secret 7", actor="cli")) == 1
    assert await step(hub, lambda s: user_by_token(s, token)) is None
    assert await step(hub, lambda s: session_caller(s, user.id, user.session_epoch)) is None
    assert await step(hub, lambda s: authenticate(s, ANNA, PASSWORD)) is None
    signed_in = await step(hub, lambda s: authenticate(s, ANNA, "new secret 7"))
    assert signed_in is not None
    assert await step(hub, lambda s: session_caller(s, user.id, signed_in.session_epoch))
    entries = await audit_entries(hub)
    assert entries[-1] == ("cli", "user.password", ANNA, {}, {"tokens_revoked": 1})
    assert not [e for e in entries if "secret" in repr(e) or "scrypt" in repr(e)]


async def test_a_role_change_keeps_sessions_and_tokens(hub: Hub) -> None:
    user = await anna(hub)
    token = await token_for(hub)
    assert await step(hub, lambda s: set_role(s, ANNA, "manager", actor="lead@ourco.example"))
    assert await step(hub, lambda s: set_role(s, ANNA, "manager", actor="cli")) == "manager"
    seen = await step(hub, lambda s: user_by_token(s, token))
    assert seen is not None and seen.role == "manager"
    assert await step(hub, lambda s: session_caller(s, user.id, user.session_epoch))
    assert (await audit_entries(hub))[-2:] == [
        ("cli", "token.create", ANNA, {}, {"token_id": 1, "expires_at": None}),
        ("lead@ourco.example", "user.role", ANNA, {"role": "sales"}, {"role": "manager"}),
    ]


async def test_sessions_of_unknown_users_and_moved_epochs_are_refused(hub: Hub) -> None:
    user = await anna(hub)
    for user_id, epoch in ((user.id + 1, 0), (0, 0), (-1, 0), (MAX_ID + 1, 0), (user.id, 1)):
        assert await step(hub, partial(session_caller, user_id=user_id, epoch=epoch)) is None
    assert await step(hub, lambda s: session_caller(s, user.id, 0)) is not None


async def test_tokens_expire_and_revoke_and_list_without_secrets(hub: Hub) -> None:
    await anna(hub)
    await step(hub, lambda s: add_user(s, "tom@ourco.example", "callcenter", "pw tom 1"))
    created = datetime(2025, 3, 1, 9, 0, tzinfo=UTC)
    expiring = await token_for(hub, expires_in=timedelta(days=7), now=created)
    lasting = await token_for(hub)
    toms = await token_for(hub, "tom@ourco.example")
    expiry = created + timedelta(days=7)
    before, after = expiry - timedelta(seconds=1), expiry + timedelta(seconds=1)
    assert await step(hub, lambda s: user_by_token(s, expiring, before)) is not None
    assert await step(hub, lambda s: user_by_token(s, expiring, expiry)) is None
    assert await step(hub, lambda s: user_by_token(s, expiring, after)) is None
    assert await step(hub, lambda s: user_by_token(s, lasting, after + timedelta(days=999)))
    assert await step(hub, lambda s: user_by_token(s, "crm_" + expiring[4:-1] + "x")) is None

    info, revoked = await step(hub, lambda s: revoke_token(s, 2, actor="cli"))
    assert (info.id, info.user, info.state, revoked) == (2, ANNA, "revoked", True)
    assert await step(hub, lambda s: user_by_token(s, lasting)) is None
    assert await step(hub, lambda s: user_by_token(s, toms)) is not None
    again, revoked = await step(hub, lambda s: revoke_token(s, 2, actor="cli"))
    assert (again.revoked_at, revoked) == (info.revoked_at, False)

    listed = await step(hub, list_tokens)
    assert [(t.id, t.user, t.state) for t in listed] == [
        (1, ANNA, "expired"),
        (2, ANNA, "revoked"),
        (3, "tom@ourco.example", "active"),
    ]
    assert listed[0].expires_at == expiry and listed[0].created_at == created
    assert [t.id for t in await step(hub, lambda s: list_tokens(s, "TOM@ourco.example"))] == [3]
    assert not any(secret in repr(listed) for secret in (expiring, lasting, toms))
    revokes = [e for e in await audit_entries(hub) if e[1] == "token.revoke"]
    assert revokes == [
        (
            "cli",
            "token.revoke",
            ANNA,
            {"token_id": 2, "state": "active"},
            {"token_id": 2, "state": "revoked"},
        )
    ]
    with pytest.raises(UserError, match="must be ahead"):
        await token_for(hub, expires_in=timedelta(0))


async def test_token_use_is_recorded_at_most_once_a_minute(hub: Hub) -> None:
    await anna(hub)
    token = await token_for(hub)
    start = datetime.now(UTC)

    async def last_used() -> datetime | None:
        async with hub.sessions() as session:
            return (await session.execute(select(TokenRow.last_used_at))).scalar_one()

    seen = []
    for seconds in (0, 30, 59, 60, 61, 125):
        at = start + timedelta(seconds=seconds)
        assert await step(hub, partial(user_by_token, token=token, now=at)) is not None
        seen.append(await last_used())
    assert seen == [
        start,
        start,
        start,
        start + timedelta(seconds=60),
        start + timedelta(seconds=60),
        start + timedelta(seconds=125),
    ]


async def test_a_login_records_its_time_and_refuses_a_wrong_password(hub: Hub) -> None:
    await anna(hub)
    at = datetime(2025, 3, 1, 9, 30, tzinfo=UTC)
    assert await step(hub, lambda s: authenticate(s, " Anna@OURCO.example", PASSWORD, at))
    stored = await step(hub, lambda s: user_by_email(s, ANNA))
    assert stored is not None and stored.last_login_at == at
    assert await step(hub, lambda s: authenticate(s, ANNA, PASSWORD + "x")) is None
    assert await step(hub, lambda s: authenticate(s, "nobody@ourco.example", PASSWORD)) is None


async def test_an_unknown_address_costs_a_full_password_check(
    hub: Hub, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Timing must not tell which addresses exist: every refusal checks one scrypt hash."""
    await anna(hub)
    await step(hub, lambda s: disable_user(s, ANNA, actor="cli"))
    await step(hub, lambda s: add_user(s, "tom@ourco.example", "sales", "pw tom 1"))
    checked: list[str] = []
    real_check = users.check_password

    def counting(password: str, stored: str) -> bool:
        checked.append(stored)
        return real_check(password, stored)

    monkeypatch.setattr(users, "check_password", counting)
    for email in ("nobody@ourco.example", ANNA, "tom@ourco.example"):
        assert await step(hub, partial(authenticate, email=email, password=PASSWORD)) is None
    assert len(checked) == 3
    assert checked[:2] == [users._DUMMY_HASH] * 2  # unknown, disabled
    assert checked[2].startswith("scrypt$") and checked[2] != users._DUMMY_HASH


async def ticks_during(work: Awaitable[Any]) -> int:
    """How often the event loop ran another task while `work` ran."""
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            await asyncio.sleep(0.002)
            ticks += 1

    task = asyncio.create_task(ticker())
    await asyncio.sleep(0)
    started = time.perf_counter()
    await work
    elapsed = time.perf_counter() - started
    task.cancel()
    assert elapsed > 0.01, "scrypt took too little time for the test to mean anything"
    return ticks


async def test_password_hashing_and_checking_leave_the_event_loop_free(hub: Hub) -> None:
    await anna(hub)
    assert await ticks_during(hash_password_async(PASSWORD)) >= 2
    async with hub.sessions() as session:
        assert await ticks_during(authenticate(session, ANNA, PASSWORD)) >= 2
