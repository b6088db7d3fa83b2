"""Migrations must not lock big tables for long on a live PostgreSQL (docs/deployment.md, Upgrades).

`crmhub db upgrade` runs while web processes and workers use the database. A plain CREATE
INDEX holds a SHARE lock on its table for the whole build, so every sync that writes items
waits behind it, for minutes at a million items. From FIRST_CHECKED on, every index built on a
table that is not in SMALL_TABLES is built CONCURRENTLY (or the table is new in the same
migration, hence empty); the builds of earlier migrations are GRANDFATHERED and listed in the
deployment guide.

Method: each migration's upgrade() runs offline on the PostgreSQL dialect, and alembic's
`as_sql` mode renders every operation as the SQL PostgreSQL would be sent. Alembic's own
offline mode (`alembic upgrade --sql`) cannot run these migrations: eight of them read stored
rows through op.get_bind() to backfill (0002, 0005, 0006, 0008, 0012, 0015, 0016, 0019), and
offline that bind returns nothing to read (0002 fails with "'NoneType' object has no attribute
'all'"). Here the bind answers every read with no rows, as a fresh database does, and renders
every write. tests/integration/test_upgrade_lock.py checks on a real PostgreSQL that this walk
sees every index that a real upgrade builds.
"""

from __future__ import annotations

import io
import re
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from alembic.operations import Operations
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Select, TextClause
from sqlalchemy.engine import IteratorResult
from sqlalchemy.engine.result import SimpleResultMetaData

from storage import db
from storage.tables import Base

ROOT = Path(__file__).parents[2]
GUIDE = ROOT / "docs" / "deployment.md"

# Tables that stay small whatever the mail volume: their users, connectors, settings and
# review decisions. Every other table, present or future, counts as big.
SMALL_TABLES = frozenset(
    {
        "alembic_version",
        "blocklist",
        "calendar_feeds",
        "connectors",
        "directory_state",
        "erased_identities",
        "login_throttle",
        "review_ignored",
        "tokens",
        "users",
    }
)
# The first revision whose index builds must not block writes; the ones before it are below.
FIRST_CHECKED = "0020"
GRANDFATHERED = {
    "0002": {"ix_participants_rdomain"},
    "0006": {
        "ix_sources_owner",
        "ix_interactions_raw_blob_id",
        "ix_attachments_blob_id",
        "ix_quarantine_raw_blob_id",
        "ix_interactions_channel_occurred_at",
        "ix_audit_log_action",
    },
    "0007": {
        "ix_attributions_account_timeline",
        "ix_attributions_contact_timeline",
        "ix_participants_contact_timeline",
    },
    "0009": {"ix_sources_owner_timeline", "ix_review_items_open", "ix_review_items_queue"},
    "0010": {"ix_review_items_open"},
    "0011": {"ix_sources_item_access", "ix_attributions_item_present"},
    "0012": {"ix_accounts_owner"},
    "0013": {"ix_sources_connector_time"},
}


class OfflineWalkError(Exception):
    """A migration did something the offline walk cannot answer; the message says what."""


@dataclass(frozen=True)
class IndexBuild:
    """An index built by a migration in a way that blocks writes to an existing big table."""

    revision: str
    index: str
    table: str
    statement: str


def _no_rows() -> IteratorResult[Any]:
    return IteratorResult(SimpleResultMetaData(["value"]), iter(()))


class _FreshDatabase:
    """What op.get_bind() gives a migration in the walk: reads find no rows, as on a fresh
    database; writes are rendered into the output like every other operation. It has nothing
    else: alembic probes it for `in_transaction` and copes with the AttributeError."""

    def __init__(self, context: MigrationContext) -> None:
        self._context = context
        self.dialect = context.dialect

    def execute(self, statement: Any, parameters: Any = None) -> IteratorResult[Any]:
        if not _reads(statement):
            self._context.impl._exec(statement)  # once, whatever rows it was given
        return _no_rows()

    def exec_driver_sql(self, statement: str, parameters: Any = None) -> IteratorResult[Any]:
        if not _reads(statement):
            self._context.impl.static_output(f"{statement};")
        return _no_rows()


def _reads(statement: object) -> bool:
    if isinstance(statement, Select):
        return True
    sql = statement.text if isinstance(statement, TextClause) else str(statement)
    return sql.lstrip().upper().startswith(("SELECT", "WITH"))


def emitted_sql(migrations: Path) -> dict[str, str]:
    """Each revision's SQL for PostgreSQL, oldest first, as its upgrade() would send it."""
    scripts = ScriptDirectory(str(migrations))
    emitted: dict[str, str] = {}
    for script in reversed(list(scripts.walk_revisions("base", "heads"))):
        output = io.StringIO()
        context = MigrationContext.configure(
            dialect_name="postgresql", opts={"as_sql": True, "output_buffer": output}
        )
        context.impl.connection = _FreshDatabase(context)  # type: ignore[assignment]
        try:
            with Operations.context(context):
                script.module.upgrade()
        except Exception as e:  # the message must name the revision
            raise OfflineWalkError(
                f"revision {script.revision} cannot be walked offline: {e!r}; if it asks its "
                "connection for more than execute(), teach _FreshDatabase to answer that"
            ) from e
        emitted[script.revision] = output.getvalue()
    return emitted


_IDENTIFIER = r'"?[A-Za-z_][A-Za-z0-9_$]*"?'
_NAME = r'"?([A-Za-z_][A-Za-z0-9_$]*)"?'
_TABLE = rf"(?:{_IDENTIFIER}\.)?{_NAME}"  # the table's own name, with or without its schema
_CREATE_TABLE = re.compile(
    rf"\bCREATE\s+(?:UNLOGGED\s+)?TABLE\s+(?:IF\s+NOT\s+EXISTS\s+)?{_TABLE}", re.I
)
_CREATE_INDEX = re.compile(
    r"\bCREATE\s+(?:UNIQUE\s+)?INDEX\s+(CONCURRENTLY\s+)?(?:IF\s+NOT\s+EXISTS\s+)?"
    rf"{_NAME}\s+ON\s+(?:ONLY\s+)?{_TABLE}",
    re.I,
)
# A unique or primary-key constraint added to a table builds its index under ACCESS EXCLUSIVE;
# one added USING INDEX takes an index built CONCURRENTLY before.
_ADD_KEY = re.compile(
    rf"\bALTER\s+TABLE\s+(?:IF\s+EXISTS\s+)?(?:ONLY\s+)?{_TABLE}\s+ADD\s+"
    rf"(?:CONSTRAINT\s+{_NAME}\s+)?(?:UNIQUE|PRIMARY\s+KEY)\b(?!\s+USING\s+INDEX)",
    re.I,
)


def blocking_builds(revision: str, sql: str) -> list[IndexBuild]:
    """Index builds in one revision's SQL that block writes to a big table it did not create."""
    created = {m.group(1).lower() for m in _CREATE_TABLE.finditer(sql)}
    found = []
    for match in _CREATE_INDEX.finditer(sql):
        concurrently, index, table = match.group(1), match.group(2), match.group(3).lower()
        if not concurrently and _big(table, created):
            found.append(IndexBuild(revision, index, table, _statement_at(sql, match.start())))
    for match in _ADD_KEY.finditer(sql):
        table = match.group(1).lower()
        if _big(table, created):
            name = match.group(2) or f"(a key of {table})"
            found.append(IndexBuild(revision, name, table, _statement_at(sql, match.start())))
    return found


def _big(table: str, created: set[str]) -> bool:
    return table not in SMALL_TABLES and table not in created


def _statement_at(sql: str, start: int) -> str:
    return " ".join(sql[start:].split(";", 1)[0].split())


def all_blocking_builds(migrations: Path) -> Iterator[IndexBuild]:
    for revision, sql in emitted_sql(migrations).items():
        yield from blocking_builds(revision, sql)


def _by_revision(builds: list[IndexBuild]) -> dict[str, set[str]]:
    found: dict[str, set[str]] = {}
    for build in builds:
        found.setdefault(build.revision, set()).add(build.index)
    return found


def test_no_migration_from_first_checked_on_blocks_writes_to_a_big_table() -> None:
    builds = list(all_blocking_builds(db.MIGRATIONS))
    checked = [b for b in builds if b.revision >= FIRST_CHECKED]
    assert not checked, (
        "these migrations build an index on a big table without CONCURRENTLY, which blocks "
        "every write to it while it is built; follow docs/deployment.md, 'Writing a "
        "migration':\n" + "\n".join(f"{b.revision}: {b.statement}" for b in checked)
    )
    older = _by_revision([b for b in builds if b.revision < FIRST_CHECKED])
    assert older == GRANDFATHERED, "the grandfathered builds are the ones the guide lists"


def test_the_walk_renders_every_migration_for_postgresql() -> None:
    """The walk reaches the head, and renders what PostgreSQL alone gets (0008's GIN index)."""
    emitted = emitted_sql(db.MIGRATIONS)
    assert list(emitted)[-1] == ScriptDirectory(str(db.MIGRATIONS)).get_current_head()
    assert "CREATE TABLE interactions" in emitted["0001"]
    assert "USING gin (terms)" in emitted["0008"]


def test_the_guide_lists_every_grandfathered_build() -> None:
    section = GUIDE.read_text(encoding="utf-8").split("## Upgrades", 1)[1].split("\n## ", 1)[0]
    assert f"From migration {FIRST_CHECKED} on" in " ".join(section.split())
    for revision, indexes in GRANDFATHERED.items():
        row = next((line for line in section.splitlines() if line.startswith(f"| {revision} ")), "")
        assert row, f"the Upgrades section has no table row for migration {revision}"
        missing = [index for index in sorted(indexes) if index not in row]
        assert not missing, f"the row of {revision} does not name {missing}"


def test_every_small_table_exists() -> None:
    """A misspelt name here would quietly make a big table's index builds unchecked."""
    assert SMALL_TABLES - {"alembic_version"} <= set(Base.metadata.tables)


def _guide_migration() -> str:
    """The example migration of the guide's 'Writing a migration', as a Python source."""
    text = GUIDE.read_text(encoding="utf-8")
    blocks = re.findall(r"```python\n(.*?)\n```", text, flags=re.S)
    examples = [block for block in blocks if "postgresql_concurrently=True" in block]
    assert len(examples) == 1, "the guide shows one example migration that builds an index"
    return examples[0]


def migration_source(body: str, revision: str, down_revision: str) -> str:
    """A migration file: the guide's example, or a test's own upgrade() body."""
    if body == "guide":
        source = _guide_migration()
        source = re.sub(r'^revision = "\w+"', f'revision = "{revision}"', source, flags=re.M)
        return re.sub(
            r'^down_revision = "\w+"', f'down_revision = "{down_revision}"', source, flags=re.M
        )
    indented = "\n".join(f"    {line}" for line in body.strip().splitlines())
    return (
        "import sqlalchemy as sa\nfrom alembic import op\n\n"
        f"revision = {revision!r}\ndown_revision = {down_revision!r}\n"
        "branch_labels = None\ndepends_on = None\n\n\n"
        f"def upgrade() -> None:\n{indented}\n\n\ndef downgrade() -> None:\n    pass\n"
    )


def with_new_migration(tmp_path: Path, body: str, revision: str = "9001") -> Path:
    """A copy of the migrations with one more on top of the head."""
    copy = tmp_path / "migrations"
    shutil.copytree(db.MIGRATIONS, copy, ignore=shutil.ignore_patterns("__pycache__"))
    head = ScriptDirectory(str(db.MIGRATIONS)).get_current_head()
    assert head is not None
    (copy / "versions" / f"{revision}_new.py").write_text(
        migration_source(body, revision, head), encoding="utf-8"
    )
    return copy


BLOCKING = {
    "plain index": 'op.create_index("ix_new", "interactions", ["subject"])',
    "unique index": 'op.create_index("ix_new", "participants", ["address"], unique=True)',
    "raw SQL": 'op.execute("CREATE INDEX ix_new ON sources (external_id)")',
    "raw SQL, schema named": 'op.execute("CREATE INDEX ix_new ON public.sources (external_id)")',
    "batch": (
        'with op.batch_alter_table("attributions") as batch:\n'
        '    batch.create_index("ix_new", ["rule"])'
    ),
    "unique constraint": 'op.create_unique_constraint("ix_new", "review_items", ["key"])',
    "any other table": 'op.create_index("ix_new", "meeting_replies", ["answer"])',
}


@pytest.mark.parametrize("body", BLOCKING.values(), ids=BLOCKING.keys())
def test_a_new_migration_that_blocks_writes_is_caught(tmp_path: Path, body: str) -> None:
    migrations = with_new_migration(tmp_path, body)
    caught = [b for b in all_blocking_builds(migrations) if b.revision == "9001"]
    assert [b.index for b in caught] == ["ix_new"]


HARMLESS = {
    "the guide's example": "guide",
    "a small table": 'op.create_index("ix_new", "users", ["email", "role"])',
    "a table of its own": (
        'op.create_table("notes", sa.Column("id", sa.Integer, primary_key=True),'
        ' sa.Column("item", sa.Integer))\n'
        'op.create_index("ix_notes_item", "notes", ["item"])'
    ),
    "a key on an index built before": (
        "with op.get_context().autocommit_block():\n"
        '    op.create_index("ix_new", "sources", ["external_id"], unique=True,'
        " postgresql_concurrently=True)\n"
        'op.execute("ALTER TABLE sources ADD CONSTRAINT uq_new UNIQUE USING INDEX ix_new")'
    ),
}


@pytest.mark.parametrize("body", HARMLESS.values(), ids=HARMLESS.keys())
def test_a_new_migration_that_does_not_block_writes_passes(tmp_path: Path, body: str) -> None:
    migrations = with_new_migration(tmp_path, body)
    assert [b for b in all_blocking_builds(migrations) if b.revision == "9001"] == []
    assert "9001" in emitted_sql(migrations), "the new migration was walked"


def test_a_migration_the_walk_cannot_run_is_named(tmp_path: Path) -> None:
    migrations = with_new_migration(tmp_path, "op.get_bind().connection.driver_connection")
    with pytest.raises(OfflineWalkError, match=r"revision 9001 .*'connection'"):
        emitted_sql(migrations)
