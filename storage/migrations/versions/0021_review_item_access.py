"""Review rows keep their item's owner and attribution, kept current by the database

Revision ID: 0021
Revises: 0020

- review_items.item_owner: the item's one mailbox owner ('' for none; NULL for several, which
  the queue then probes as before). review_items.item_attributed: whether the item has an
  attribution that is not a tombstone. storage.review filters by them (storage.visibility
  .discloses_kept) instead of probing `sources` and `attributions` for every row it walks and
  counts: at 1,000,000 items the probes of one page of the queue were 8 ms of PostgreSQL's
  12 (1,400 rows counted, 1,661 walked to keep 108).
- Kept by triggers, not by the code that writes sources and attributions: ingest, re-matching,
  corrections, erasure, the blocklist, the admin's owner change and meeting revisions all
  change them, a later one would be forgotten, and a stale copy shows a salesperson another's
  mail. Every insert, delete and change of a source's owner or item, of an attribution's
  tombstone or item, and of a review row's item recomputes the copy for the items concerned.
  Before this migration's code runs, the old code writes on: the triggers keep its rows too.
- Backfilled in batches by id, each its own transaction on PostgreSQL, and resumable: a row
  not yet filled has item_attributed NULL (docs/deployment.md, Upgrades). NULL fails closed:
  such a row is neither attributed nor ownerless to the queue until it is filled.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0021"
down_revision = "0020"
branch_labels = None
depends_on = None

BATCH = 5000  # review rows filled per statement

# The access of item X, as storage.visibility probes it: its one owner ('' for none, NULL for
# several) and whether an attribution that is no tombstone names it.
_OWNER = (
    "(SELECT CASE count(DISTINCT owner) WHEN 0 THEN '' WHEN 1 THEN min(owner) END "
    "FROM sources WHERE interaction_id = {item} AND owner <> '')"
)
_ATTRIBUTED = "EXISTS (SELECT 1 FROM attributions WHERE interaction_id = {item} AND {present})"
_PRESENT = {"postgresql": "NOT removed", "sqlite": "removed = 0"}


def _access(dialect: str, item: str) -> tuple[str, str]:
    return _OWNER.format(item=item), _ATTRIBUTED.format(item=item, present=_PRESENT[dialect])


def _refresh(dialect: str, item: str, where: str | None = None) -> str:
    """The statement that sets the copy of the review rows of `item` (or of those `where`
    names) from their item's sources and attributions."""
    owner, attributed = _access(dialect, item)
    return (
        f"UPDATE review_items SET item_owner = {owner}, item_attributed = {attributed} "
        f"WHERE {where or f'interaction_id = {item}'}"
    )


# PostgreSQL's writers run side by side, each seeing only what was committed before its
# statement: two that change one item's sources, attributions or review rows at once would
# each compute the copy without the other's change, and the last to write would leave a stale
# one (an attribution tombstoned while the item's review row is inserted: still attributed).
# Each first locks the item's row, so that one waits for the other to commit; the statements
# after the lock see that commit (a volatile function's statement takes a new snapshot).
# FOR NO KEY UPDATE leaves the foreign-key checks of other writers (KEY SHARE) alone.
_LOCK = "PERFORM 1 FROM interactions WHERE id = {item} FOR NO KEY UPDATE;"


def _postgresql() -> list[str]:
    owner, attributed = _access("postgresql", "item")
    new_owner, new_attributed = _access("postgresql", "NEW.interaction_id")
    return [
        f"""
        CREATE FUNCTION crmhub_review_access(item bigint) RETURNS void
        LANGUAGE plpgsql AS $$
        BEGIN
            {_LOCK.format(item="item")}
            -- Most writes concern items without review rows: one probe of their index.
            IF EXISTS (SELECT 1 FROM review_items WHERE interaction_id = item) THEN
                UPDATE review_items SET item_owner = a.owner, item_attributed = a.attributed
                FROM (SELECT {owner} AS owner, {attributed} AS attributed) AS a
                WHERE interaction_id = item
                  AND (item_owner IS DISTINCT FROM a.owner
                       OR item_attributed IS DISTINCT FROM a.attributed);
            END IF;
        END $$
        """,
        """
        CREATE FUNCTION crmhub_review_access_changed() RETURNS trigger
        LANGUAGE plpgsql AS $$
        BEGIN
            IF TG_OP <> 'INSERT' THEN
                PERFORM crmhub_review_access(OLD.interaction_id);
            END IF;
            IF TG_OP = 'INSERT'
               OR (TG_OP = 'UPDATE' AND NEW.interaction_id IS DISTINCT FROM OLD.interaction_id)
            THEN
                PERFORM crmhub_review_access(NEW.interaction_id);
            END IF;
            RETURN NULL;
        END $$
        """,
        f"""
        CREATE FUNCTION crmhub_review_access_of_row() RETURNS trigger
        LANGUAGE plpgsql AS $$
        BEGIN
            {_LOCK.format(item="NEW.interaction_id")}
            NEW.item_owner := {new_owner};
            NEW.item_attributed := {new_attributed};
            RETURN NEW;
        END $$
        """,
        "CREATE TRIGGER review_access_of_sources AFTER INSERT OR DELETE "
        "OR UPDATE OF owner, interaction_id ON sources "
        "FOR EACH ROW EXECUTE FUNCTION crmhub_review_access_changed()",
        "CREATE TRIGGER review_access_of_attributions AFTER INSERT OR DELETE "
        "OR UPDATE OF removed, interaction_id ON attributions "
        "FOR EACH ROW EXECUTE FUNCTION crmhub_review_access_changed()",
        "CREATE TRIGGER review_access_of_rows BEFORE INSERT OR UPDATE OF interaction_id "
        "ON review_items FOR EACH ROW EXECUTE FUNCTION crmhub_review_access_of_row()",
    ]


def _sqlite() -> list[str]:
    statements = []
    for table, columns in (("sources", "owner"), ("attributions", "removed")):
        statements += [
            f"CREATE TRIGGER review_access_{table}_added AFTER INSERT ON {table} "
            f"BEGIN {_refresh('sqlite', 'NEW.interaction_id')}; END",
            f"CREATE TRIGGER review_access_{table}_removed AFTER DELETE ON {table} "
            f"BEGIN {_refresh('sqlite', 'OLD.interaction_id')}; END",
            f"CREATE TRIGGER review_access_{table}_changed "
            f"AFTER UPDATE OF {columns}, interaction_id ON {table} "
            f"BEGIN {_refresh('sqlite', 'OLD.interaction_id')}; "
            f"{_refresh('sqlite', 'NEW.interaction_id')}; END",
        ]
    # SQLite cannot set NEW's columns: the new or moved row is updated after it is written.
    own_row = _refresh("sqlite", "NEW.interaction_id", "id = NEW.id")
    statements += [
        f"CREATE TRIGGER review_access_rows_added AFTER INSERT ON review_items "
        f"BEGIN {own_row}; END",
        f"CREATE TRIGGER review_access_rows_moved AFTER UPDATE OF interaction_id ON review_items "
        f"BEGIN {own_row}; END",
    ]
    return statements


def upgrade() -> None:
    dialect = op.get_bind().dialect.name
    # Nullable and without a default: added without rewriting the table.
    with op.batch_alter_table("review_items") as table:
        table.add_column(sa.Column("item_owner", sa.String(320), nullable=True))
        table.add_column(sa.Column("item_attributed", sa.Boolean(), nullable=True))
    for statement in _postgresql() if dialect == "postgresql" else _sqlite():
        op.execute(statement)
    fill = _refresh(dialect, "review_items.interaction_id", "item_attributed IS NULL")
    if dialect != "postgresql":
        op.execute(fill)
        return
    # Each batch its own transaction: the rows stay locked for a batch, not for the backfill.
    with op.get_context().autocommit_block():
        bind = op.get_bind()
        last = bind.execute(sa.text("SELECT coalesce(max(id), 0) FROM review_items")).scalar()
        for start in range(0, int(last or 0), BATCH):
            bind.execute(
                sa.text(f"{fill} AND id > :start AND id <= :end"),
                {"start": start, "end": start + BATCH},
            )


def downgrade() -> None:
    dialect = op.get_bind().dialect.name
    if dialect == "postgresql":
        op.execute("DROP TRIGGER review_access_of_rows ON review_items")
        op.execute("DROP TRIGGER review_access_of_attributions ON attributions")
        op.execute("DROP TRIGGER review_access_of_sources ON sources")
        for function in ("_of_row()", "_changed()", "(bigint)"):
            op.execute(f"DROP FUNCTION crmhub_review_access{function}")
    else:
        for name in ("sources", "attributions"):
            for event in ("added", "removed", "changed"):
                op.execute(f"DROP TRIGGER review_access_{name}_{event}")
        op.execute("DROP TRIGGER review_access_rows_added")
        op.execute("DROP TRIGGER review_access_rows_moved")
    with op.batch_alter_table("review_items") as table:
        table.drop_column("item_attributed")
        table.drop_column("item_owner")
