"""Verifying one chunk of an organisation's ledger: the work each verify process does.

Kept apart from :mod:`gardien.audit.verify` so that it imports little (no web framework, no
models): where a fork server hands out the verify processes, it starts with this module loaded,
and that start is part of every first verification's time.
"""

from __future__ import annotations

import hashlib
import sqlite3
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from itertools import chain
from typing import Any

import orjson
from sqlalchemy import Engine, create_engine
from sqlalchemy.pool import NullPool

from gardien.audit.merkle import CompactRange, parent_level
from gardien.core.keyring import HmacKey

MAX_FINDINGS = 50
BATCH = 8192  # rows read at a time
# The filter columns, in the order of _sealed_columns.
COLUMNS = "id, module, action, crud, outcome, actor_type, actor_id, target_type, target_id, occurred_at, recorded_at"
ROW_SQL = (
    "SELECT seq, canonical, leaf_hash, mac, hmac_kid, {columns} FROM audit_events"
    " WHERE org_id = {p} AND seq >= {p} AND seq < {p} ORDER BY seq"
)
MAC_SQL = "SELECT mac FROM audit_events WHERE org_id = {p} AND seq = {p}"


@dataclass
class ChunkTask:
    url: str
    org_id: str
    start: int
    end: int
    sizes: list[int]
    secrets: dict[str, bytes]
    anchor_mac: bytes | None  # the MAC before `start` when it is not in the table (start of the ledger)
    initial: tuple[int, bytes] | None  # a compact range to continue (an unaligned first chunk)
    chunk: int
    schema: str  # the event schema every sealed event names


@dataclass
class ChunkResult:
    start: int
    end: int
    checked: int = 0
    tree_ok: bool = True
    tampered: list[tuple[int, str, str]] = field(default_factory=list)
    missing_kids: dict[str, int] = field(default_factory=dict)
    perfect: bytes | None = None
    frontiers: dict[int, tuple[int, bytes]] = field(default_factory=dict)
    final: tuple[int, bytes] = (0, b"")

    def tamper(self, seq: int, kind: str, detail: str) -> None:
        if len(self.tampered) < MAX_FINDINGS:
            self.tampered.append((seq, kind, detail))


def _sqlite_time(text: str) -> str:
    # Gardien stores SQLite times as "YYYY-MM-DD HH:MM:SS.ffffff"; the event says "…T…Z".
    return text[:10] + " " + text[11:26]


def _postgres_time(text: str) -> datetime:
    return datetime.fromisoformat(text[:26])


def _sealed_columns(doc: dict[str, Any], time: Callable[[str], Any]) -> list[Any]:
    """What the filter columns must hold, in COLUMNS order, as the driver returns them."""
    actor = doc["actor"]
    target = doc.get("target") or {}
    return [
        doc["id"],
        doc["module"],
        doc["action"],
        doc["crud"],
        doc["outcome"],
        actor["type"],
        actor["id"],
        target.get("type"),
        target.get("id"),
        time(doc["occurred_at"]),
        time(doc["recorded_at"]),
    ]


def _same_columns(stored: list[Any], sealed: list[Any]) -> bool:
    return stored == sealed


def _same_json_columns(stored: list[bytes], sealed: list[Any]) -> bool:
    # SQLite hands the columns over as one JSON array (one value to convert instead of eleven).
    # Equal texts are the fast answer; otherwise the array's values decide, exactly.
    return stored[0] == orjson.dumps(sealed) or orjson.loads(stored[0]) == sealed


def _batches(dbapi: Any, sqlite: bool, json_columns: bool, task: ChunkTask) -> Iterator[list[tuple[Any, ...]]]:
    params = (task.org_id, task.start, task.end)
    if sqlite:
        # json_array refuses a BLOB, which only tampering puts in a text column: the caller
        # then reads the chunk again column by column.
        columns = f"CAST(json_array({COLUMNS}) AS BLOB)" if json_columns else COLUMNS
        cursor = dbapi.cursor()
        cursor.arraysize = BATCH
        cursor.execute(ROW_SQL.format(columns=columns, p="?"), params)
        try:
            while batch := cursor.fetchmany(BATCH):
                yield batch
        finally:
            cursor.close()
        return
    # PostgreSQL: binary results (bytea as raw bytes, not hex text to encode and decode), read
    # in slices of BATCH sequence numbers with a plain cursor: memory stays bounded, and a slice
    # costs one round trip instead of a server-side cursor's DECLARE and FETCH.
    cursor = dbapi.cursor(binary=True)
    sql = ROW_SQL.format(columns=COLUMNS, p="%s")
    try:
        for low in range(task.start, task.end, BATCH):
            cursor.execute(sql, (task.org_id, low, min(low + BATCH, task.end)))
            yield cursor.fetchall()
    finally:
        cursor.close()


def _previous_mac(dbapi: Any, sqlite: bool, task: ChunkTask) -> bytes | None:
    if task.anchor_mac is not None:
        return task.anchor_mac
    cursor = dbapi.cursor()
    try:
        cursor.execute(MAC_SQL.format(p="?" if sqlite else "%s"), (task.org_id, task.start - 1))
        row = cursor.fetchone()
    finally:
        cursor.close()
    return bytes(row[0]) if row else None


def verify_chunk(engine: Engine, task: ChunkTask) -> ChunkResult:
    if engine.dialect.name != "sqlite":
        return _verify_rows(engine, task, sqlite=False, json_columns=False)
    try:
        return _verify_rows(engine, task, sqlite=True, json_columns=True)
    except sqlite3.OperationalError:
        return _verify_rows(engine, task, sqlite=True, json_columns=False)


def _verify_rows(engine: Engine, task: ChunkTask, *, sqlite: bool, json_columns: bool) -> ChunkResult:
    time = _sqlite_time if sqlite else _postgres_time
    same_columns = _same_json_columns if json_columns else _same_columns
    keys = {kid: HmacKey(kid, secret) for kid, secret in task.secrets.items()}
    result = ChunkResult(task.start, task.end)
    sizes = set(task.sizes)
    leaves: list[bytes] = []
    append = leaves.append
    org_id = task.org_id
    schema = task.schema
    sha256 = hashlib.sha256
    loads = orjson.loads
    dbapi = engine.raw_connection()
    try:
        prev_mac = _previous_mac(dbapi, sqlite, task)
        expected = task.start
        # Both drivers return bytes for the binary columns; a stored value of another type
        # compares unequal, or fails the hash.
        rows = chain.from_iterable(_batches(dbapi, sqlite, json_columns, task))
        for seq, data, stored_leaf, mac, kid, *columns in rows:
            if seq != expected:
                result.tamper(expected, "missing_event", f"events {expected}..{seq - 1} are missing")
                result.tree_ok = False
                expected = seq
            expected += 1
            leaf = sha256(b"\x00" + data).digest()
            try:
                doc = loads(data)
                agree = (
                    doc["seq"] == seq
                    and doc["org"] == org_id
                    and doc["schema"] == schema
                    and same_columns(columns, _sealed_columns(doc, time))
                )
            except (ValueError, KeyError, TypeError, AttributeError):
                agree = False
            if not agree:
                result.tamper(seq, "content_mismatch", "the stored columns disagree with the sealed event")
            if stored_leaf != leaf:
                result.tamper(seq, "leaf_mismatch", "the stored leaf hash is not the hash of the event")
            key = keys.get(kid)
            if key is None:
                result.missing_kids.setdefault(kid, seq)
            elif prev_mac is None or key.digest(prev_mac + leaf) != mac:
                result.tamper(seq, "mac_mismatch", f"the MAC chain breaks at event {seq}")
            prev_mac = mac
            append(leaf)
        result.checked = len(leaves)
        if expected < task.end:
            result.tamper(expected, "missing_event", f"events {expected}..{task.end - 1} are missing")
            result.tree_ok = False
    finally:
        dbapi.close()
    if result.tree_ok:
        _fold_chunk(task, leaves, sizes, result)
    return result


def _levels(leaves: list[bytes]) -> list[list[bytes]]:
    """All complete perfect-subtree hashes of a leaf list, level by level (one hash per node)."""
    levels = [leaves]
    while len(levels[-1]) > 1:
        levels.append(parent_level(levels[-1]))
    return levels


def _local_frontier(levels: list[list[bytes]], size: int) -> bytes:
    """The compact range of the first `size` leaves: for each set bit L of size, node (L, (size >> L) - 1)."""
    return b"".join(levels[bit][(size >> bit) - 1] for bit in range(size.bit_length() - 1, -1, -1) if size >> bit & 1)


def _fold_chunk(task: ChunkTask, leaves: list[bytes], sizes: set[int], result: ChunkResult) -> None:
    if task.initial is not None:
        # An unaligned first chunk (after a purge) continues the purged prefix's compact range.
        frontier = CompactRange.from_bytes(*task.initial)
        for leaf in leaves:
            frontier.append(leaf)
            if frontier.size in sizes:
                result.frontiers[frontier.size] = (frontier.size, frontier.to_bytes())
        result.final = (frontier.size, frontier.to_bytes())
        return
    levels = _levels(leaves)
    for size in sizes:
        local = size - task.start
        result.frontiers[size] = (local, _local_frontier(levels, local))
    if len(leaves) == task.chunk:
        result.perfect = levels[-1][0]
    result.final = (len(leaves), _local_frontier(levels, len(leaves)))


_worker_engines: dict[str, Engine] = {}


def verify_chunk_in_worker(task: ChunkTask) -> ChunkResult:
    engine = _worker_engines.get(task.url)
    if engine is None:
        engine = _worker_engines[task.url] = create_engine(task.url, poolclass=NullPool)
    return verify_chunk(engine, task)
