"""Alembic environment: the caller passes an open connection (see storage.db.upgrade)."""

from __future__ import annotations

from alembic import context

from storage.fulltext import modelled
from storage.tables import Base

connection = context.config.attributes["connection"]
context.configure(
    connection=connection,
    target_metadata=Base.metadata,
    render_as_batch=connection.dialect.name == "sqlite",
    include_name=modelled,
)
with context.begin_transaction():
    context.run_migrations()
