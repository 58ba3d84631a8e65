"""Database engine and sessions for SQLite (embedded default) and PostgreSQL."""

from __future__ import annotations

import logging
import os
import sqlite3
import threading
import time
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import DateTime, Engine, MetaData, TypeDecorator, create_engine, event
from sqlalchemy.engine import Connection, make_url
from sqlalchemy.orm import DeclarativeBase, Session, sessionmaker

log = logging.getLogger(__name__)

# Pages of write-ahead log after which a committing connection copies the log into the database
# file itself (SQLite's own default is 1,000). A WalCheckpointer keeps the log far below it; the
# bound is there for processes that run none, or while one is held up.
AUTOCHECKPOINT_PAGES = 8_000

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


class UTCDateTime(TypeDecorator[datetime]):
    """Stores UTC without zone (both engines compare it the same way) and returns aware datetimes."""

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC)


def normalise_url(url: str) -> str:
    """Accept plain ``postgresql://`` URLs and route them to psycopg 3."""
    parsed = make_url(url)
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed.render_as_string(hide_password=False)


def is_sqlite(engine: Engine | Connection) -> bool:
    return engine.dialect.name == "sqlite"


def make_engine(url: str, *, sqlite_synchronous: str = "FULL", autocommit: bool = False) -> Engine:
    """The engine for `url`; with `autocommit` (PostgreSQL only), a pool of connections that
    always run in autocommit, for reads that need no common snapshot."""
    url = normalise_url(url)
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        database = parsed.database
        if database and database != ":memory:":
            Path(database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"timeout": 30}, pool_size=8, max_overflow=8)
        _configure_sqlite(engine, sqlite_synchronous)
        return engine
    # No pre-ping: it costs a round trip on every checkout, a third of a proof's time. Recycling
    # connections after 30 minutes covers servers and proxies that drop idle ones.
    if autocommit:
        # Set once per connection, not on each checkout and return as an execution option would.
        return create_engine(url, pool_size=4, max_overflow=8, pool_recycle=1800, isolation_level="AUTOCOMMIT")
    return create_engine(url, pool_size=8, max_overflow=8, pool_recycle=1800)


def _configure_sqlite(engine: Engine, synchronous: str) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Take transaction control away from the sqlite3 module so that writers can open with
        # BEGIN IMMEDIATE: a deferred transaction that upgrades to a write lock fails at once
        # under WAL when another writer committed in between, whatever the busy timeout says.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA synchronous={synchronous}")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA cache_size=-65536")
        cursor.execute(f"PRAGMA wal_autocheckpoint={AUTOCHECKPOINT_PAGES}")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        immediate = conn.get_execution_options().get("write_lock", False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")


def make_sessionmaker(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(engine, expire_on_commit=False)


@contextmanager
def write_transaction(engine: Engine) -> Iterator[Connection]:
    """A transaction that holds the database's write lock from its first statement on SQLite."""
    with engine.connect() as conn:
        conn = conn.execution_options(write_lock=True)
        with conn.begin():
            yield conn


def sqlite_file(engine: Engine) -> str | None:
    """The database file of a SQLite engine; None for PostgreSQL and in-memory databases."""
    if not is_sqlite(engine):
        return None
    database = engine.url.database
    return database if database and database != ":memory:" and not database.startswith("file:") else None


class WalCheckpointer:
    """Copies SQLite's write-ahead log into the database file from a thread of its own.

    Left to itself, SQLite checkpoints inside a commit: every thousand pages or so, the writer that
    commits also copies the log into the database and syncs the file, and on the ledger's batched
    appends that was half of the commit time. Here a thread with its own connection runs a PASSIVE
    checkpoint every `interval` seconds instead: it never blocks writers or readers, SQLite
    releases the GIL while it works, so it runs on the other core while the writer goes on. The
    connection runs with the engine's `synchronous` setting, so a checkpoint syncs as a
    committing writer would have, and a crash at any point leaves what SQLite guarantees anyway.

    The thread must not be inside SQLite when the process forks (a child would inherit SQLite's
    locks held): fork() waits for the current checkpoint to end, and the child has no checkpointer.
    """

    def __init__(self, path: str, *, synchronous: str = "FULL", interval: float = 0.05) -> None:
        self.path = path
        self.synchronous = synchronous
        self.interval = interval
        self._busy = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self) -> None:
        if self._thread is not None:
            return
        self._thread = threading.Thread(target=self._run, name="gardien-wal-checkpointer", daemon=True)
        _RUNNING.add(self)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        _RUNNING.discard(self)
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def _run(self) -> None:
        conn: sqlite3.Connection | None = None
        warned = 0.0
        while not self._stop.wait(self.interval):
            try:
                if conn is None:
                    conn = sqlite3.connect(self.path, timeout=30, isolation_level=None, check_same_thread=False)
                    conn.execute(f"PRAGMA synchronous={self.synchronous}")
                with self._busy:
                    if not self._stop.is_set():
                        conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
            except sqlite3.Error:
                if time.monotonic() - warned > 60:  # once a minute while it keeps failing
                    warned = time.monotonic()
                    log.warning("WAL checkpoint of %s failed; SQLite's own ones stand in", self.path, exc_info=True)
                if conn is not None:
                    conn.close()
                    conn = None
        if conn is not None:
            conn.close()


# Checkpointers whose thread runs, and the locks fork() took from them.
_RUNNING: weakref.WeakSet[WalCheckpointer] = weakref.WeakSet()
_HELD: list[WalCheckpointer] = []


def _before_fork() -> None:
    _HELD[:] = list(_RUNNING)
    for checkpointer in _HELD:
        checkpointer._busy.acquire()


def _after_fork_in_parent() -> None:
    for checkpointer in _HELD:
        checkpointer._busy.release()
    _HELD.clear()


def _after_fork_in_child() -> None:
    # The child has none of the threads; the locks it inherited are held. Nothing there may use them.
    for checkpointer in _HELD:
        checkpointer._busy = threading.Lock()
        checkpointer._stop.set()
        checkpointer._thread = None
    _HELD.clear()
    _RUNNING.clear()


os.register_at_fork(before=_before_fork, after_in_parent=_after_fork_in_parent, after_in_child=_after_fork_in_child)


def fork_safe_threads() -> int:
    """Threads of this module running now: a fork waits for them to leave SQLite (see above)."""
    return sum(1 for checkpointer in list(_RUNNING) if checkpointer.running)
