"""Everything a running Gardien shares: settings, database, keyring, caches."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from gardien.core.db import WalCheckpointer, make_engine, make_sessionmaker, sqlite_file
from gardien.core.keyring import Keyring
from gardien.core.settings import Settings

# (org_id, event fields) -> None. The ledger registers itself here so that the core can have its
# own changes (new keys, revocations) recorded without importing a capability.
AuditSink = Callable[[str, dict[str, Any]], None]


@dataclass
class Runtime:
    settings: Settings
    engine: Engine
    sessions: sessionmaker[Session]
    keyring: Keyring
    # Sessions that change data: on SQLite they open with BEGIN IMMEDIATE. A deferred transaction
    # that reads, then writes, fails at once ("database is locked") when another writer committed
    # in between, whatever the busy timeout; taking the write lock first makes it wait instead.
    writes: sessionmaker[Session]
    principal_cache: dict[str, tuple[Any, float]] = field(default_factory=dict)
    audit_sink: AuditSink | None = None
    # SQLite files only: checkpoints the write-ahead log off the committing threads.
    wal_checkpointer: WalCheckpointer | None = None
    _autocommit_engine: Engine | None = None

    @classmethod
    def start(cls, settings: Settings | None = None) -> Runtime:
        settings = settings or Settings()
        engine = make_engine(settings.database_url, sqlite_synchronous=settings.sqlite_synchronous)
        keyring = Keyring.open(settings.keys_dir, settings.instance_name)
        writes = make_sessionmaker(engine.execution_options(write_lock=True))
        runtime = cls(settings, engine, make_sessionmaker(engine), keyring, writes)
        path = sqlite_file(engine)
        if path is not None:
            runtime.wal_checkpointer = WalCheckpointer(path, synchronous=settings.sqlite_synchronous)
            runtime.wal_checkpointer.start()
        return runtime

    def record(self, org_id: str, event: dict[str, Any]) -> None:
        if self.audit_sink is not None:
            self.audit_sink(org_id, event)

    @property
    def autocommit_engine(self) -> Engine:
        """PostgreSQL: a second, smaller pool whose connections stay in autocommit, for short
        reads that need no snapshot (inclusion proofs), made on first use. SQLite: the engine."""
        if self.engine.dialect.name == "sqlite":
            return self.engine
        if self._autocommit_engine is None:
            self._autocommit_engine = make_engine(self.settings.database_url, autocommit=True)
        return self._autocommit_engine

    def close(self) -> None:
        if self.wal_checkpointer is not None:
            self.wal_checkpointer.stop()
        if self._autocommit_engine is not None:
            self._autocommit_engine.dispose()
        self.engine.dispose()
