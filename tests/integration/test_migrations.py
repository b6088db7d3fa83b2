"""Migrations: the models and the migration scripts describe the same schema, and upgrading a
database that holds data keeps it usable (SQLite, or PostgreSQL in CI)."""

from __future__ import annotations

import asyncio

import pytest
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import create_engine, text

from storage import db, fulltext
from storage.packing import unpack_text
from storage.tables import Base


def test_models_and_migrations_agree(database_url: str) -> None:
    db.upgrade(database_url)
    engine = create_engine(db.sync_url(database_url))
    with engine.connect() as connection:
        context = MigrationContext.configure(
            connection, opts={"compare_type": False, "include_name": fulltext.modelled}
        )
        differences = compare_metadata(context, Base.metadata)
    engine.dispose()
    assert differences == [], "a model change needs a migration (alembic revision --autogenerate)"


def test_head_is_the_newest_migration_and_is_current_knows_it(tmp_path: object) -> None:
    script = ScriptDirectory.from_config(_alembic_config())
    assert db.HEAD == script.get_current_head(), "storage.db.HEAD must name the newest migration"
    url = f"sqlite:///{tmp_path}/check.db"
    assert not db.is_current(url)
    db.upgrade(url, "0003")
    assert not db.is_current(url)
    db.upgrade(url)
    assert db.is_current(url)


def _alembic_config() -> Config:
    config = Config()
    config.set_main_option("script_location", str(db.MIGRATIONS))
    return config


def test_upgrade_from_0001_fills_rdomain_for_stored_participants(tmp_path: object) -> None:
    url = f"sqlite:///{tmp_path}/old.db"  # the data step needs a database at 0001
    db.upgrade(url, "0001")
    engine = create_engine(url)
    with engine.begin() as connection:
        connection.execute(
            text(
                "INSERT INTO interactions (id, dedupe_key, channel, direction, occurred_at,"
                ' subject, snippet, body_text, body_html, in_reply_to, "references", not_logged,'
                " extra) VALUES (1, 'mid:<a@b>', 'email', 'inbound', '2024-01-08 08:00:00', '',"
                " '', '', '', '[]', '[]', '', '{}')"
            )
        )
        connection.execute(
            text(
                "INSERT INTO participants (interaction_id, role, kind, address, normalized, name)"
                " VALUES (1, 'from', 'email', 'x@eu.acme.de', 'x@eu.acme.de', ''),"
                " (1, 'callee', 'phone', '+4940123', '+4940123', '')"
            )
        )
    db.upgrade(url)
    with engine.connect() as connection:
        rows = connection.execute(text("SELECT kind, rdomain FROM participants ORDER BY id")).all()
    engine.dispose()
    assert [tuple(r) for r in rows] == [("email", "de.acme.eu"), ("phone", None)]


def test_upgrade_to_0004_drops_the_html_and_keeps_every_row_that_refers_to_an_item(
    tmp_path: object,
) -> None:
    """A table copy on SQLite would drop `interactions`, and with foreign keys on that deletes
    every participant, source and attribution by cascade: the upgrade must not lose them."""
    url = f"sqlite:///{tmp_path}/old.db"
    db.upgrade(url, "0003")
    engine = create_engine(url)
    with engine.begin() as connection:
        connection.execute(text("PRAGMA foreign_keys=ON"))
        connection.execute(
            text(
                "INSERT INTO interactions (id, dedupe_key, channel, direction, occurred_at,"
                ' subject, snippet, body_text, body_html, in_reply_to, "references", not_logged,'
                " extra) VALUES (1, 'mid:<a@b>', 'email', 'inbound', '2024-01-08 08:00:00', 'Hi',"
                " '', 'text', '<p>html</p>', '[]', '[]', '', '{}')"
            )
        )
        connection.execute(
            text(
                "INSERT INTO participants (interaction_id, role, kind, address, normalized, name)"
                " VALUES (1, 'from', 'email', 'x@acme.de', 'x@acme.de', '')"
            )
        )
        connection.execute(
            text(
                "INSERT INTO sources (interaction_id, connector, external_id, content_sha256)"
                " VALUES (1, 'mail', 'm1', '')"
            )
        )
    db.upgrade(url)
    with engine.connect() as connection:
        columns = {row[1] for row in connection.execute(text("PRAGMA table_info(interactions)"))}
        counts = [
            connection.execute(text(f"SELECT count(*) FROM {table}")).scalar()
            for table in ("interactions", "participants", "sources")
        ]
        body = connection.execute(text("SELECT body FROM interactions")).scalar()
    engine.dispose()
    assert "body_html" not in columns and "body_text" not in columns
    assert counts == [1, 1, 1]
    assert unpack_text(body) == "text", "0005 packed the stored text"


def test_upgrade_to_0005_packs_every_stored_body_text(tmp_path: object) -> None:
    url = f"sqlite:///{tmp_path}/old.db"
    db.upgrade(url, "0004")
    engine = create_engine(url)
    texts = ["", "Grüße aus Köln\n" * 200, "x"]
    with engine.begin() as connection:
        for n, body in enumerate(texts, start=1):
            connection.execute(
                text(
                    "INSERT INTO interactions (id, dedupe_key, channel, direction, occurred_at,"
                    ' subject, snippet, body_text, in_reply_to, "references", not_logged, extra)'
                    " VALUES (:id, :key, 'email', 'inbound', '2024-01-08 08:00:00', '', '',"
                    " :body, '[]', '[]', '', '{}')"
                ),
                {"id": n, "key": f"mid:<{n}@b>", "body": body},
            )
    db.upgrade(url)
    with engine.connect() as connection:
        stored = connection.execute(text("SELECT body FROM interactions ORDER BY id")).scalars()
        bodies = list(stored)
    engine.dispose()
    assert [unpack_text(b) for b in bodies] == texts
    assert bodies[0] is None and len(bodies[1]) < len(texts[1].encode()) / 10


def test_a_new_sqlite_database_has_16_kib_pages_an_older_one_its_own_and_both_a_40_mb_wal(
    tmp_path: object,
) -> None:
    import sqlite3

    old = f"{tmp_path}/old.db"
    with sqlite3.connect(old) as connection:
        connection.execute("PRAGMA page_size=4096")
        connection.execute("CREATE TABLE t (x)")
    for path in (f"{tmp_path}/new.db", old):
        db.upgrade(f"sqlite:///{path}")
        size, pages, rows = asyncio.run(_page_settings(f"sqlite:///{path}"))
        assert size == (16384 if path.endswith("new.db") else 4096) and rows == 0
        assert pages * size == pytest.approx(40_000_000, rel=0.01), "the WAL stays near 40 MB"


async def _page_settings(url: str) -> tuple[int, int, int]:
    engine = db.create_engine_for(url)
    async with engine.connect() as connection:
        size = (await connection.execute(text("PRAGMA page_size"))).scalar_one()
        pages = (await connection.execute(text("PRAGMA wal_autocheckpoint"))).scalar_one()
        rows = (await connection.execute(text("SELECT count(*) FROM interactions"))).scalar_one()
    await engine.dispose()
    return size, pages, rows
