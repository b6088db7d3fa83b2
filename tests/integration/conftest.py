"""Integration fixtures: real Dovecot servers shared by the session, fresh users for every test.

Starting Dovecot takes a fraction of a second, but the suite has many IMAP tests, so each
configuration starts once per session and every test gets a new generation of its mail store
(see `Dovecot.reset`). A missing Dovecot fails these tests instead of skipping them: a skipped
integration tier looks green while testing nothing.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable, Iterator

import httpx
import pytest

from hub.bootstrap import Hub
from hub.web.app import build_app
from storage.users import add_user
from tests.integration.dovecot import Dovecot, DovecotError, MailUser, start_dovecot
from tests.weblogin import login_async

DovecotFactory = Callable[..., Dovecot]
MailUserFactory = Callable[..., MailUser]


@pytest.fixture(scope="session")
def dovecot_servers() -> Iterator[DovecotFactory]:
    """Start a Dovecot per configuration on first use and keep it until the session ends."""
    with contextlib.ExitStack() as stack:
        servers: dict[bool, Dovecot] = {}

        def server(*, allow_plaintext: bool = True) -> Dovecot:
            if allow_plaintext not in servers:
                try:
                    started = start_dovecot(allow_plaintext=allow_plaintext)
                    servers[allow_plaintext] = stack.enter_context(started)
                except DovecotError as e:
                    pytest.fail(str(e), pytrace=False)
            return servers[allow_plaintext]

        yield server


@pytest.fixture
def dovecot_factory(dovecot_servers: DovecotFactory) -> DovecotFactory:
    """``dovecot_factory(allow_plaintext=False)``: a server with no users left by other tests.

    Each configuration is reset once per test, so calling it twice returns the same state.
    """
    fresh: set[bool] = set()

    def factory(*, allow_plaintext: bool = True) -> Dovecot:
        server = dovecot_servers(allow_plaintext=allow_plaintext)
        if allow_plaintext not in fresh:
            server.reset()
            fresh.add(allow_plaintext)
        return server

    return factory


@pytest.fixture
def dovecot(dovecot_factory: DovecotFactory) -> Dovecot:
    """The default server: plaintext LOGIN allowed (also before STARTTLS), no users yet."""
    return dovecot_factory()


@pytest.fixture
def mail_user(dovecot: Dovecot) -> MailUserFactory:
    """``mail_user(name, password=None, scheme="PLAIN")`` adds a login to the default server."""
    return dovecot.add_user


@pytest.fixture
def anna(mail_user: MailUserFactory) -> MailUser:
    return mail_user("anna@ourco.example")


@pytest.fixture
def tom(mail_user: MailUserFactory) -> MailUser:
    return mail_user("tom@ourco.example", scheme="SHA512-CRYPT")


@contextlib.asynccontextmanager
async def logged_in(hub: Hub, email: str, role: str = "sales") -> AsyncIterator[httpx.AsyncClient]:
    """A browser-like client of the web app, in process, logged in as a new user."""
    password = f"pw-{email}-1234"
    async with hub.sessions() as session, session.begin():
        await add_user(session, email, role, password)
    transport = httpx.ASGITransport(app=build_app(hub))
    async with httpx.AsyncClient(
        transport=transport, base_url="http://hub", follow_redirects=True
    ) as client:
        answer = await login_async(client, email, password)
        assert answer.status_code == 200, answer.text
        yield client
