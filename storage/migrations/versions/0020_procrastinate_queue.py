"""The job queue of scaled-out workers: procrastinate's schema on PostgreSQL, nothing on SQLite

Revision ID: 0020
Revises: 0019

- `crmhub worker` on PostgreSQL takes sync jobs from procrastinate's queue (hub.queue). Its
  tables, types and functions are those of the procrastinate release installed (its
  `schema.sql`), created in a PostgreSQL schema of their own, SCHEMA: they stay out of the
  models' comparison (alembic looks at the default schema only) and out of the way of another
  application's procrastinate in `public`; hub.queue's connections find them through their
  search_path.
- A database that holds them already (SCHEMA.procrastinate_jobs exists) is left alone.
- The schema's comment records the newest of procrastinate's own migrations that the schema
  includes. A procrastinate release that changes its schema ships a new file in
  `procrastinate/sql/migrations`; crmhub then gets a migration that applies the files after
  the recorded one (procrastinate's `pre` files before the new workers start, `post` files
  after the old ones stopped) and records the newest. tests/integration/test_queue.py knows
  the newest file crmhub has a migration for and fails for a release with a newer one.
- SQLite has no queue (`crmhub worker` runs the in-process scheduler there): nothing to do.
"""

from __future__ import annotations

from pathlib import Path

from alembic import op
from procrastinate.schema import SchemaManager

revision = "0020"
down_revision = "0019"
branch_labels = None
depends_on = None

SCHEMA = "procrastinate"  # hub.queue.SCHEMA


def newest_procrastinate_migration() -> str:
    """The newest of procrastinate's migration files, which its `schema.sql` includes."""
    files = Path(SchemaManager.get_migrations_path()).glob("*.sql")
    return max(path.name for path in files)


def upgrade() -> None:
    connection = op.get_bind()
    if connection.dialect.name != "postgresql":
        return
    found = connection.exec_driver_sql(f"SELECT to_regclass('{SCHEMA}.procrastinate_jobs')")
    if found.scalar() is not None:
        return
    connection.exec_driver_sql(f"CREATE SCHEMA IF NOT EXISTS {SCHEMA}")
    # For this transaction's statements only, and set back before the next migration runs.
    path = connection.exec_driver_sql("SELECT current_setting('search_path')").scalar()
    connection.exec_driver_sql(f"SELECT set_config('search_path', '{SCHEMA}', true)")
    # psycopg reads % as a placeholder when parameters are passed, even none: doubled here.
    connection.exec_driver_sql(SchemaManager.get_schema().replace("%", "%%"))
    connection.exec_driver_sql("SELECT set_config('search_path', %s, true)", (path,))
    # A literal: a utility statement takes no parameters. File names hold no quote, but still.
    newest = newest_procrastinate_migration().replace("'", "''")
    connection.exec_driver_sql(f"COMMENT ON SCHEMA {SCHEMA} IS 'procrastinate up to {newest}'")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(f"DROP SCHEMA IF EXISTS {SCHEMA} CASCADE")
