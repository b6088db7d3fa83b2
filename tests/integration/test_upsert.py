"""Bulk INSERTs of storage.upsert against the real backends (SQLite, and PostgreSQL in CI)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

from sqlalchemy import select

from hub.bootstrap import Hub
from storage.tables import BlobRow, InteractionRow
from storage.upsert import insert_new

COLUMNS = (
    "dedupe_key", "channel", "direction", "occurred_at", "subject", "snippet", "in_reply_to",
    "references", "not_logged", "extra",
)  # fmt: skip


def _row(key: str, at: datetime) -> tuple[object, ...]:
    extra = {"folder": "Gesendete Objekte ü"}
    return (key, "email", "inbound", at, "Angebot (", "", [], ["<a@x>"], "", extra)


async def test_insert_new_skips_rows_stored_meanwhile_and_returns_their_ids(hub: Hub) -> None:
    """A row another transaction stored between the caller's look-up and the INSERT is not
    inserted again, yet its id comes back; the rest are stored with the columns' conversions
    (UTC instants, JSON), the way an ORM insert would have stored them."""
    at = datetime(2024, 3, 1, 9, 0, tzinfo=timezone(timedelta(hours=1)))
    async with hub.sessions() as session, session.begin():
        first, _ = await insert_new(
            session, InteractionRow.__table__, COLUMNS, [_row("k1", at)], "dedupe_key"
        )
    async with hub.sessions() as session, session.begin():
        ids, inserted = await insert_new(
            session,
            InteractionRow.__table__,
            COLUMNS,
            [_row(f"k{n}", at) for n in range(1, 2001)],
            "dedupe_key",
        )
    assert ids["k1"] == first["k1"]
    assert inserted == {f"k{n}" for n in range(2, 2001)}
    assert len(set(ids.values())) == 2000
    async with hub.sessions() as session:
        row = (
            await session.execute(select(InteractionRow).where(InteractionRow.dedupe_key == "k7"))
        ).scalar_one()
    assert row.id == ids["k7"]
    assert row.occurred_at == datetime(2024, 3, 1, 8, 0, tzinfo=UTC)
    assert row.references == ["<a@x>"]
    assert row.extra == {"folder": "Gesendete Objekte ü"}


async def test_insert_new_splits_statements_by_the_parameter_limit(hub: Hub) -> None:
    """More parameters than one statement may carry: every row still lands, once."""
    rows = [(f"{n:064x}", n, b"x" * (n % 7)) for n in range(12_000)]  # 36,000 parameters
    async with hub.sessions() as session, session.begin():
        ids, inserted = await insert_new(
            session, BlobRow.__table__, ("sha256", "size", "data"), rows, "sha256"
        )
    assert len(ids) == len(inserted) == 12_000
    async with hub.sessions() as session:
        stored = (await session.execute(select(BlobRow.size, BlobRow.data))).all()
    assert sorted(stored) == [(n, b"x" * (n % 7)) for n in range(12_000)]
