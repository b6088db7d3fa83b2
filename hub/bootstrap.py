"""The one place that wires concrete pieces together; called at start-up, never at import."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import os
import secrets
from collections.abc import Hashable
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from cryptography.fernet import Fernet, InvalidToken
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from config.settings import ConfigError, Settings
from connectors.base import Connector, ConnectorContext
from connectors.registry import connector_class
from hub.model import Quarantined, RawItem, Skipped, Translated
from hub.translation import (
    POOL_THRESHOLD,
    multicore,
    received,
    spooled,
    started_pool,
    stop_early_workers,
    translate_and_pack,
    translate_sent,
    with_raws,
)
from matching.identities import FreeMail, default_free_mail
from matching.index import IdentityIndex
from storage import db
from storage.directory import load_directory
from storage.directory import version as directory_version
from storage.ingest import SqlInteractionStore
from storage.review import ignored_keys
from storage.tables import ConnectorRow


class SecretBox:
    """Encrypts connector secrets at rest with a key derived from the hub's secret key."""

    def __init__(self, secret_key: str) -> None:
        digest = hashlib.sha256(("crmhub-connector-secrets:" + secret_key).encode()).digest()
        self._fernet = Fernet(base64.urlsafe_b64encode(digest))

    def seal(self, values: dict[str, str]) -> str:
        return self._fernet.encrypt(json.dumps(values).encode()).decode() if values else ""

    def open(self, sealed: str) -> dict[str, str]:
        if not sealed:
            return {}
        try:
            return dict(json.loads(self._fernet.decrypt(sealed.encode())))
        except InvalidToken as e:
            raise ValueError(
                "stored connector secrets cannot be decrypted: CRMHUB_SECRET_KEY has changed"
            ) from e


def secret_key_for(settings: Settings) -> str:
    """The configured key, or one generated once beside the SQLite file (mode 0600).

    A shared database is used by several processes, often on several machines, which must all
    decrypt the same connector secrets: there the key has to be configured, not generated.
    """
    if settings.secret_key:
        return settings.secret_key
    if not settings.database_url.startswith("sqlite"):
        raise ConfigError(
            "CRMHUB_SECRET_KEY is not set: with a shared database every crmhub process must use "
            "the same key; generate one with `python3 -c 'import secrets; "
            "print(secrets.token_urlsafe(32))'` and set it everywhere"
        )
    path = settings.data_dir / "secret.key"
    if path.exists():
        return path.read_text(encoding="utf-8").strip()
    path.parent.mkdir(parents=True, exist_ok=True)
    key = secrets.token_urlsafe(32)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(key + "\n")
    return key


@dataclass
class Hub:
    settings: Settings
    engine: AsyncEngine
    sessions: async_sessionmaker[AsyncSession]
    store: SqlInteractionStore
    context: ConnectorContext
    secret_box: SecretBox
    free_mail: FreeMail
    # The request path's reads (storage.db.create_reader_for): connections that may not
    # write; on SQLite they answer without a thread, on PostgreSQL without a transaction.
    reads: async_sessionmaker[AsyncSession]
    pool: ProcessPoolExecutor | None = None
    _pool_started: Future[int] = field(default_factory=Future, repr=False)
    _index: tuple[int, IdentityIndex] | None = field(default=None, repr=False)
    _rebuilding: asyncio.Lock = field(default_factory=asyncio.Lock, repr=False)
    # What is worked out from the current index and stored items alone (the review queue's
    # suggestions), emptied with every rebuild of the index: a stale entry cannot outlive it.
    from_index: dict[Hashable, Any] = field(default_factory=dict, repr=False)

    async def identity_index(self) -> IdentityIndex:
        """The directory as an index, rebuilt only when its version moved since the last call.

        Every directory change raises the version in its own transaction, whichever process
        made it, so the dropbox, the web and the workers share one cheap staleness check. One
        rebuild at a time: at 100,000 contacts a rebuild reads the directory for seconds, and
        twenty requests that each started their own held every pooled connection until the
        others timed out (bench/reads.py, PostgreSQL, 20 clients on the review queue).
        """
        async with self.reads() as session:
            current = await directory_version(session)
        if self._index is not None and self._index[0] == current:
            return self._index[1]
        async with self._rebuilding:
            if self._index is not None and self._index[0] >= current:
                return self._index[1]  # built while this request waited
            # The load through the writer's engine: on SQLite its own thread, where reading
            # the whole directory does not hold the event loop (the reads run inline).
            async with self.sessions() as session:
                accounts, contacts = await load_directory(session)
                ignored = await ignored_keys(session)
            index = IdentityIndex.build(
                accounts,
                contacts,
                internal_domains=self.settings.internal_domains,
                region=self.settings.default_region,
                free_mail=self.free_mail,
                ignored=ignored,
            )
            self._index = (current, index)
            self.from_index = {}
            return index

    def connector(self, row: ConnectorRow, *, with_secrets: bool = True) -> Connector:
        """The connector a stored row describes: the one place connectors are built.

        Its kind's class (a dotted path loads a third-party one) with the row's settings, the
        secrets decrypted, and the hub's context. `with_secrets=False` for what only translates
        (showing a stored mail again), which must work even when the secrets cannot be opened.
        Raises ConfigurationError for a kind that cannot be loaded or settings it refuses,
        ValueError for secrets sealed under another CRMHUB_SECRET_KEY.
        """
        opened = self.secret_box.open(row.secrets) if with_secrets else None
        return connector_class(row.kind)(row.name, row.settings or {}, opened, self.context)

    async def translate(
        self, connector: Connector, raws: list[RawItem]
    ) -> list[Translated | Quarantined | Skipped]:
        """Big batches go to worker processes (the other cores); small ones to a thread.

        The first big batch starts the workers and is translated in a thread meanwhile: a
        worker takes about half a second to start, which the first batches would otherwise
        wait for (measured: a tenth of a 10,000-mail sync).
        """
        args = (type(connector), connector.name, dict(connector.settings), connector.context)
        big = len(raws) >= POOL_THRESHOLD and multicore()
        if big and self.pool is None:
            self.pool, self._pool_started = started_pool()
        if big and self._pool_started.done():
            loop = asyncio.get_running_loop()
            with spooled(raws) as batch:
                sent = await loop.run_in_executor(self.pool, translate_sent, *args, batch)
            translated = received(sent)
        else:
            translated = await asyncio.to_thread(translate_and_pack, *args, raws)
        return with_raws(translated, raws)

    async def close(self) -> None:
        if self.pool is not None:
            self.pool.shutdown(wait=False, cancel_futures=True)
            self.pool = None
        stop_early_workers()
        reader = self.reads.kw["bind"]
        if reader is not self.engine:
            await reader.dispose()
        await self.engine.dispose()


def build_hub(settings: Settings, *, migrate: bool | None = None) -> Hub:
    """Wire the hub. The embedded SQLite database migrates itself; PostgreSQL only on request."""
    if migrate is None:
        migrate = db.parse_url(settings.database_url).get_backend_name() == "sqlite"
    if migrate and not db.is_current(settings.database_url):
        db.upgrade(settings.database_url)
    engine = db.create_engine_for(settings.database_url)
    sessions = db.sessionmaker_for(engine)
    context = ConnectorContext(
        region=settings.default_region,
        timezone=settings.timezone,
        internal_domains=tuple(settings.internal_domains),
        calendar_window_days=settings.calendar_window_days,
        max_header_bytes=settings.max_header_bytes,
        max_message_bytes=settings.max_message_bytes,
    )
    free_mail = (
        FreeMail(settings.free_mail_domains) if settings.free_mail_domains else default_free_mail()
    )
    return Hub(
        settings,
        engine,
        sessions,
        SqlInteractionStore(sessions),
        context,
        SecretBox(secret_key_for(settings)),
        free_mail,
        db.sessionmaker_for(db.create_reader_for(settings.database_url, engine)),
    )
