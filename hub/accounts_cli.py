"""`crmhub users ...` and `crmhub tokens ...`: who may sign in, with which role, and the API's
bearer tokens (hub.cli registers them; errors end there as one line)."""

from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import sys
from datetime import UTC, datetime, timedelta

from hub.bootstrap import Hub
from hub.cli_support import UsageError, when, with_hub
from storage.tables import MAX_ID
from storage.tokens import create_token, list_tokens, revoke_token
from storage.users import (
    ROLES,
    UnknownUser,
    UserError,
    UserExists,
    add_user,
    disable_user,
    enable_user,
    list_users,
    set_password,
    set_role,
    user_by_email,
)

MAX_TOKEN_DAYS = 36_500


def _new_password(args: argparse.Namespace) -> tuple[str, bool]:
    """The password named by --password-env, or a generated one (True: print it once)."""
    if not args.password_env:
        return secrets.token_urlsafe(12), True
    password = os.environ.get(args.password_env, "")
    if not password:
        raise UsageError(f"--password-env {args.password_env}: the variable is not set")
    return password, False


def user_error(e: UserError) -> str:
    """The storage message, plus what to type next, which only the command line knows."""
    if isinstance(e, UserExists):
        return (
            f"user {e.email} exists; change the role with `crmhub users set-role`, "
            "the password with `crmhub users password`"
        )
    if isinstance(e, UnknownUser):
        return f"{e}; `crmhub users list` shows the users, `crmhub users add` adds one"
    return str(e)


def cmd_users_add(args: argparse.Namespace) -> int:
    password, generated = _new_password(args)

    async def work(hub: Hub) -> int:
        async with hub.sessions() as session, session.begin():
            await add_user(session, args.email, args.role, password, actor="cli")
        print(f"user {args.email} ({args.role}) saved")
        if generated:
            print(f"password: {password}")
        return 0

    return asyncio.run(with_hub(work))


def cmd_users_list(args: argparse.Namespace) -> int:
    async def work(hub: Hub) -> int:
        async with hub.sessions() as session:
            users = await list_users(session)
        print("EMAIL\tROLE\tSTATE\tLAST LOGIN")
        for user in users:
            state = "disabled" if user.disabled else "active"
            print(f"{user.email}\t{user.role}\t{state}\t{when(user.last_login_at)}")
        return 0

    return asyncio.run(with_hub(work))


def cmd_users_disable(args: argparse.Namespace) -> int:
    async def work(hub: Hub) -> int:
        async with hub.sessions() as session, session.begin():
            revoked = await disable_user(session, args.email, actor="cli")
        email = args.email.strip().lower()
        if revoked is None:
            print(f"user {email} was disabled already")
        else:
            print(f"user {email} disabled; their sessions ended and {revoked} token(s) revoked")
        return 0

    return asyncio.run(with_hub(work))


def cmd_users_enable(args: argparse.Namespace) -> int:
    async def work(hub: Hub) -> int:
        async with hub.sessions() as session, session.begin():
            changed = await enable_user(session, args.email, actor="cli")
        email = args.email.strip().lower()
        print(
            f"user {email} enabled; revoked tokens stay revoked (`crmhub tokens create` for new)"
            if changed
            else f"user {email} was enabled already"
        )
        return 0

    return asyncio.run(with_hub(work))


def cmd_users_set_role(args: argparse.Namespace) -> int:
    async def work(hub: Hub) -> int:
        async with hub.sessions() as session, session.begin():
            before = await set_role(session, args.email, args.role, actor="cli")
        email = args.email.strip().lower()
        print(
            f"user {email}: role {before} -> {args.role}"
            if before != args.role
            else f"user {email} has the role {before} already"
        )
        return 0

    return asyncio.run(with_hub(work))


def cmd_users_password(args: argparse.Namespace) -> int:
    password, generated = _new_password(args)

    async def work(hub: Hub) -> int:
        async with hub.sessions() as session, session.begin():
            revoked = await set_password(session, args.email, password, actor="cli")
        email = args.email.strip().lower()
        print(f"password of {email} changed; their sessions ended and {revoked} token(s) revoked")
        if generated:
            print(f"password: {password}")
        return 0

    return asyncio.run(with_hub(work))


def _expiry(value: str | None) -> timedelta | None:
    if value is None:
        return None
    digits = value.isascii() and value.isdigit() and len(value) <= len(str(MAX_TOKEN_DAYS))
    if not (digits and 1 <= int(value) <= MAX_TOKEN_DAYS):
        raise UsageError(
            f"--expires {value!r}: expected a whole number of days from 1 to {MAX_TOKEN_DAYS}"
        )
    return timedelta(days=int(value))


def cmd_tokens_create(args: argparse.Namespace) -> int:
    """The token alone on stdout, for scripts; the expiry, if any, on stderr."""
    expires_in, now = _expiry(args.expires), datetime.now(UTC)

    async def work(hub: Hub) -> int:
        async with hub.sessions() as session, session.begin():
            user = await user_by_email(session, args.email)
            if user is None:
                raise UnknownUser(args.email.strip().lower())
            token = await create_token(session, user, expires_in=expires_in, actor="cli", now=now)
        print(token)
        if expires_in is not None:
            print(f"expires {when(now + expires_in)}", file=sys.stderr)
        return 0

    return asyncio.run(with_hub(work))


def cmd_tokens_list(args: argparse.Namespace) -> int:
    async def work(hub: Hub) -> int:
        async with hub.sessions() as session:
            tokens = await list_tokens(session, args.email)
        print("ID\tUSER\tCREATED\tEXPIRES\tLAST USED\tSTATE")
        for t in tokens:
            print(
                f"{t.id}\t{t.user}\t{when(t.created_at)}\t{when(t.expires_at)}\t"
                f"{when(t.last_used_at)}\t{t.state}"
            )
        return 0

    return asyncio.run(with_hub(work))


def cmd_tokens_revoke(args: argparse.Namespace) -> int:
    value = args.id
    if not (value.isascii() and value.isdigit() and len(value) <= len(str(MAX_ID))):
        raise UsageError(f"token id {value!r}: expected an ID that `crmhub tokens list` shows")

    async def work(hub: Hub) -> int:
        async with hub.sessions() as session, session.begin():
            token, revoked = await revoke_token(session, int(value), actor="cli")
        print(
            f"token {token.id} of {token.user} revoked"
            if revoked
            else f"token {token.id} of {token.user} was revoked already"
        )
        return 0

    return asyncio.run(with_hub(work))


def add_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    users = sub.add_parser(
        "users", help="people who sign in to the web view and the API"
    ).add_subparsers(dest="users", required=True)
    password_help = "read the password from this variable (default: generate and print one)"
    uadd = users.add_parser("add", help="add a user (an existing address is an error)")
    uadd.add_argument("email")
    uadd.add_argument("--role", choices=ROLES, required=True)
    uadd.add_argument("--password-env", metavar="ENV_VAR", help=password_help)
    uadd.set_defaults(run=cmd_users_add)
    users.add_parser("list", help="every user: role, state, last login").set_defaults(
        run=cmd_users_list
    )
    for verb, run, what in (
        ("disable", cmd_users_disable, "refuse their login; end their sessions and tokens"),
        ("enable", cmd_users_enable, "allow a disabled user to sign in again"),
    ):
        one = users.add_parser(verb, help=what)
        one.add_argument("email")
        one.set_defaults(run=run)
    urole = users.add_parser("set-role", help="change a user's role")
    urole.add_argument("email")
    urole.add_argument("role", metavar="ROLE", help=" | ".join(ROLES))
    urole.set_defaults(run=cmd_users_set_role)
    upw = users.add_parser(
        "password", help="set a new password; ends the user's sessions and tokens"
    )
    upw.add_argument("email")
    upw.add_argument("--password-env", metavar="ENV_VAR", help=password_help)
    upw.set_defaults(run=cmd_users_password)

    tokens = sub.add_parser("tokens", help="bearer tokens for the API").add_subparsers(
        dest="tokens", required=True
    )
    tcreate = tokens.add_parser("create", help="print a new token for a user")
    tcreate.add_argument("email")
    tcreate.add_argument(
        "--expires", metavar="DAYS", help="valid for this many days (default: until revoked)"
    )
    tcreate.set_defaults(run=cmd_tokens_create)
    tlist = tokens.add_parser("list", help="tokens (of one user): dates and state, never the token")
    tlist.add_argument("email", nargs="?")
    tlist.set_defaults(run=cmd_tokens_list)
    trevoke = tokens.add_parser("revoke", help="end a token at once")
    trevoke.add_argument("id", metavar="ID", help="as `crmhub tokens list` shows it")
    trevoke.set_defaults(run=cmd_tokens_revoke)
