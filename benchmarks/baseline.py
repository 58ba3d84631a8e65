"""The no-integrity baseline in the database: a django-auditlog-like table and plain INSERTs."""

from __future__ import annotations

import time
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Engine

from benchmarks.workload import (
    BASELINE_TABLE,
    baseline_ddl,
    baseline_index_ddl,
    baseline_insert_sql,
    baseline_row,
    batches,
)

BATCHED = "plain INSERT, executemany of 1,000 rows per transaction (django-auditlog-like table, JSON as text)"


def create_table(engine: Engine, *, indexes: bool = True) -> None:
    """The baseline table; pass indexes=False to bulk-load first and call create_indexes after."""
    with engine.begin() as conn:
        for statement in baseline_ddl(engine.dialect.name):
            conn.exec_driver_sql(statement)
    if indexes:
        create_indexes(engine)


def create_indexes(engine: Engine) -> None:
    with engine.begin() as conn:
        for statement in baseline_index_ddl():
            conn.exec_driver_sql(statement)


def insert_batches(
    engine: Engine, pool: Sequence[dict[str, Any]], total: int, batch_size: int
) -> tuple[float, list[float]]:
    """Insert `total` events as baseline rows, one transaction per batch; (seconds, per-batch seconds).

    The time includes turning each event into its row (json.dumps of the JSON columns), just as
    Gardien's figure includes validating and sealing the event.
    """
    sqlite = engine.dialect.name == "sqlite"
    sql = baseline_insert_sql(engine.dialect.paramstyle)
    times: list[float] = []
    started = time.perf_counter()
    for batch in batches(pool, total, batch_size):
        t0 = time.perf_counter()
        now = datetime.now(UTC)
        rows = [baseline_row(event, now, sqlite=sqlite) for event in batch]
        with engine.begin() as conn:
            conn.exec_driver_sql(sql, rows)
        times.append(time.perf_counter() - t0)
    return time.perf_counter() - started, times


def count(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(conn.exec_driver_sql(f"SELECT count(*) FROM {BASELINE_TABLE}").scalar_one())


def scan(engine: Engine) -> tuple[float, int]:
    """Full scan of the baseline table in key order, straight from the driver: (seconds, rows).

    Every column of every row is fetched (PostgreSQL through a server-side cursor, as a large
    read must be); nothing is parsed or checked.
    """
    raw = engine.raw_connection()
    try:
        started = time.perf_counter()
        if engine.dialect.name == "sqlite":
            cursor = raw.cursor()
        else:
            cursor = raw.cursor(name="bench_baseline_scan")  # type: ignore[call-arg]
            cursor.itersize = 5_000
        cursor.execute(f"SELECT * FROM {BASELINE_TABLE} ORDER BY id")
        rows = 0
        while chunk := cursor.fetchmany(5_000):
            rows += len(chunk)
        cursor.close()
        elapsed = time.perf_counter() - started
        raw.rollback()
    finally:
        raw.close()
    return elapsed, rows


def fill(engine: Engine, pool: Sequence[dict[str, Any]], total: int, batch_size: int = 5_000) -> float:
    """Fill the baseline table fast (not a figure): rows are built once for the pool and reused.

    Call it between create_table(indexes=False) and create_indexes(): the table ends up the same,
    and building the indexes once is far cheaper than maintaining them row by row.
    """
    sqlite = engine.dialect.name == "sqlite"
    sql = baseline_insert_sql(engine.dialect.paramstyle)
    now = datetime.now(UTC)
    rows = [baseline_row(e, now + timedelta(milliseconds=i), sqlite=sqlite) for i, e in enumerate(pool)]
    started = time.perf_counter()
    done = 0
    while done < total:
        count = min(batch_size, total - done)
        chunk = [rows[(done + i) % len(rows)] for i in range(count)]
        with engine.begin() as conn:
            conn.exec_driver_sql(sql, chunk)
        done += count
    return time.perf_counter() - started
