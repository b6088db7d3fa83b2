"""Shared fixtures: a fresh hub per test on SQLite, or on PostgreSQL when CI asks for it.

Set CRMHUB_TEST_DATABASE_URL=postgresql+psycopg://root@127.0.0.1:5432/test to run the storage
tests against PostgreSQL; each test run works in a database of its own, created and dropped here.
"""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from config.settings import Settings
from hub.bootstrap import Hub, build_hub
from storage import db
from storage.tables import Base

PG_URL = os.environ.get("CRMHUB_TEST_DATABASE_URL", "")


@contextlib.contextmanager
def empty_pg_database(prefix: str) -> Iterator[str]:
    """An empty PostgreSQL database of its own on the CI server, dropped afterwards."""
    admin_url = make_url(PG_URL).set(drivername="postgresql+psycopg")
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield admin_url.set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@contextlib.contextmanager
def private_pg_database(prefix: str) -> Iterator[str]:
    """A migrated PostgreSQL database of its own on the CI server, dropped afterwards."""
    with empty_pg_database(prefix) as url:
        db.upgrade(url)
        yield url


@pytest.fixture(scope="session")
def pg_database() -> Iterator[str | None]:
    """A private PostgreSQL database for this test run, migrated once."""
    if not PG_URL:
        yield None
        return
    with private_pg_database("crmhub_t") as url:
        yield url


@pytest.fixture
def database_url(tmp_path: Path, pg_database: str | None) -> str:
    if pg_database is None:
        return f"sqlite:///{tmp_path / 'test.db'}"
    engine = create_engine(pg_database)
    with engine.begin() as conn:
        names = ", ".join(f'"{t.name}"' for t in Base.metadata.sorted_tables)
        conn.execute(text(f"TRUNCATE {names} RESTART IDENTITY CASCADE"))
    engine.dispose()
    return pg_database


@pytest.fixture
def settings(database_url: str, tmp_path: Path) -> Settings:
    return Settings(
        database_url=database_url,
        internal_domains=["ourco.example"],
        default_region="DE",
        timezone="Europe/Berlin",
        secret_key="test-secret-key-0123456789abcdef",
    )


@pytest.fixture
async def hub(settings: Settings) -> AsyncIterator[Hub]:
    built = build_hub(settings, migrate=True)
    yield built
    await built.close()
