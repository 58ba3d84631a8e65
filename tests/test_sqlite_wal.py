"""The WAL checkpointer: SQLite's log is copied into the database file off the committing thread."""

from __future__ import annotations

import multiprocessing
import os
import sqlite3
import time
from pathlib import Path

from gardien.core.db import AUTOCHECKPOINT_PAGES, WalCheckpointer, fork_safe_threads
from gardien.core.runtime import Runtime
from gardien.core.settings import Settings

PAYLOAD = 2 * 1024 * 1024  # far below AUTOCHECKPOINT_PAGES: SQLite alone would not checkpoint it


def _open(tmp_path: Path) -> Runtime:
    return Runtime.start(
        Settings(database_url=f"sqlite:///{tmp_path / 'g.db'}", keys_dir=tmp_path / "keys", exports_dir=tmp_path / "x")
    )


def _write(runtime: Runtime) -> None:
    with runtime.engine.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE IF NOT EXISTS blobs (b BLOB)")
        conn.exec_driver_sql("INSERT INTO blobs VALUES (?)", [(os.urandom(4096),) for _ in range(PAYLOAD // 4096)])


def _database_bytes(tmp_path: Path) -> int:
    return (tmp_path / "g.db").stat().st_size


def test_the_settings_leave_checkpoints_of_two_megabytes_to_the_checkpointer() -> None:
    assert AUTOCHECKPOINT_PAGES * 4096 > 4 * PAYLOAD


def test_commits_reach_the_database_file_without_sqlites_own_checkpoint(tmp_path: Path) -> None:
    runtime = _open(tmp_path)
    try:
        assert runtime.wal_checkpointer is not None and runtime.wal_checkpointer.running
        _write(runtime)
        deadline = time.monotonic() + 10
        while _database_bytes(tmp_path) < PAYLOAD and time.monotonic() < deadline:
            time.sleep(0.02)
        assert _database_bytes(tmp_path) >= PAYLOAD
    finally:
        runtime.close()
    assert runtime.wal_checkpointer is not None and not runtime.wal_checkpointer.running


def test_without_the_checkpointer_the_commits_stay_in_the_log(tmp_path: Path) -> None:
    # The control of the test above: it would pass without a checkpointer if SQLite checkpointed.
    runtime = _open(tmp_path)
    try:
        assert runtime.wal_checkpointer is not None
        runtime.wal_checkpointer.stop()
        _write(runtime)
        time.sleep(0.3)  # six of the checkpointer's intervals
        assert _database_bytes(tmp_path) < PAYLOAD
        assert (tmp_path / "g.db-wal").stat().st_size >= PAYLOAD
    finally:
        runtime.close()


def _child(path: str, out: multiprocessing.queues.Queue[object]) -> None:
    conn = sqlite3.connect(path)
    out.put((conn.execute("SELECT count(*) FROM blobs").fetchone()[0], fork_safe_threads()))


def test_a_fork_waits_for_the_checkpoint_and_the_child_uses_sqlite(tmp_path: Path) -> None:
    runtime = _open(tmp_path)
    try:
        _write(runtime)
        assert fork_safe_threads() >= 1
        context = multiprocessing.get_context("fork")
        for _ in range(5):  # forks at random points of the thread's loop
            out = context.Queue()
            child = context.Process(target=_child, args=(str(tmp_path / "g.db"), out))
            child.start()
            child.join(20)
            assert child.exitcode == 0
            assert out.get(timeout=5) == (PAYLOAD // 4096, 0)
    finally:
        runtime.close()


def test_a_checkpointer_on_a_missing_folder_logs_and_does_not_raise(tmp_path: Path) -> None:
    checkpointer = WalCheckpointer(str(tmp_path / "absent" / "g.db"), interval=0.01)
    checkpointer.start()
    time.sleep(0.05)
    assert checkpointer.running
    checkpointer.stop()
    assert not checkpointer.running
