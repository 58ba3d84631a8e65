"""Verifying one chunk of an organisation's ledger: the work each verify process does.

Kept apart from :mod:`gardien.audit.verify` so that it imports little (no web framework, no
models): where a fork server hands out the verify processes, it starts with this module loaded,
and that start is part of every first verification's time.
"""

from __future__ import annotations

import hashlib
import multiprocessing.util
import sqlite3
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from itertools import chain
from typing import Any

import msgspec
import orjson
from sqlalchemy import Engine, create_engine

from gardien.audit.merkle import CompactRange, parent_level
from gardien.core.keyring import HmacKey
from gardien.core.process import COLLECTOR_PAUSED

MAX_FINDINGS = 50
BATCH = 4096  # rows read at a time
# The filter columns, in the order of _sealed_columns.
COLUMNS = "id, module, action, crud, outcome, actor_type, actor_id, target_type, target_id, occurred_at, recorded_at"
ROW_SQL = (
    "SELECT seq, {sealed}, {columns} FROM audit_events WHERE org_id = {p} AND seq >= {p} AND seq < {p} ORDER BY seq"
)
# The four columns after seq that the hashes and the MAC chain check. SQLite lets any column hold
# a value of any type: there they are read as bytes whatever they hold (a text of invalid UTF-8
# would fail the read), and the column check compares their types (SQLITE_TYPES).
POSTGRES_SEALED = "canonical, leaf_hash, mac, hmac_kid"
SQLITE_SEALED = "CAST(canonical AS BLOB), CAST(leaf_hash AS BLOB), CAST(mac AS BLOB), CAST(hmac_kid AS BLOB)"
SQLITE_TYPES = "typeof(canonical), typeof(leaf_hash), typeof(mac), typeof(hmac_kid)"
SEALED_TYPES = ("blob", "blob", "blob", "text")
_LEAF_PREFIX = hashlib.sha256(b"\x00")  # copied per leaf: cheaper than concatenating the event
ONE_ROW_SQL = "SELECT {columns} FROM audit_events WHERE org_id = %s AND seq = %s"  # PostgreSQL
MAC_SQL = "SELECT {mac} FROM audit_events WHERE org_id = {p} AND seq = {p}"


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


class _Party(msgspec.Struct, gc=False):
    type: str
    id: str


class _Sealed(msgspec.Struct, gc=False):
    """The members of a sealed event that its row repeats. Decoding skips every other member
    (changes, free fields, displays…) without building it: about half the time of a full parse,
    the largest cost of checking a row. Types are strict (a seq of 5.0 or true is no int), so a
    member of another type fails the decoding and the row disagrees."""

    seq: int
    org: str
    schema: str
    id: str
    module: str
    action: str
    crud: str
    outcome: str
    actor: _Party
    occurred_at: str
    recorded_at: str
    target: _Party | None = None


_decode_sealed = msgspec.json.Decoder(_Sealed).decode


def _sqlite_time(text: str) -> str:
    # Gardien stores SQLite times as "YYYY-MM-DD HH:MM:SS.ffffff"; the event says "…T…Z".
    return text[:10] + " " + text[11:26]


def _postgres_time(text: str) -> datetime:
    return datetime.fromisoformat(text[:26])


def _sealed_columns(event: _Sealed, time: Callable[[str], Any]) -> tuple[Any, ...]:
    """What the filter columns must hold, in COLUMNS order, as the driver returns them."""
    actor = event.actor
    target = event.target
    return (
        event.id,
        event.module,
        event.action,
        event.crud,
        event.outcome,
        actor.type,
        actor.id,
        None if target is None else target.type,
        None if target is None else target.id,
        time(event.occurred_at),
        time(event.recorded_at),
    )


# Which columns a row check reads after the five sealed ones, and how it compares them with the
# event: a function of (row, event) -> agree. One per way of reading.
ColumnCheck = Callable[[tuple[Any, ...], _Sealed], bool]


def _plain_columns(row: tuple[Any, ...], event: _Sealed) -> bool:
    # Each text column as its bytes and its type (SQLITE_PLAIN_COLUMNS): nothing it holds can fail
    # the read, and a BLOB of the right bytes is still told apart from the text.
    expected: list[Any] = []
    for value in _sealed_columns(event, _sqlite_time):
        expected += (None, "null") if value is None else (value.encode(), "text")
    return list(row[5:]) == [*expected, *SEALED_TYPES]


SQLITE_PLAIN_COLUMNS = ", ".join(f"CAST({c} AS BLOB), typeof({c})" for c in COLUMNS.split(", ")) + f", {SQLITE_TYPES}"
SQLITE_JSON_COLUMNS = f"CAST(json_array({COLUMNS}, {SQLITE_TYPES}) AS BLOB)"


def _json_columns(row: tuple[Any, ...], event: _Sealed) -> bool:
    # SQLite hands the columns over as one JSON array (one value to convert instead of eleven),
    # followed by the types of the sealed columns.
    return _same_json_columns(row[5], (*_sealed_columns(event, _sqlite_time), *SEALED_TYPES))


def _same_json_columns(stored: bytes, sealed: tuple[Any, ...]) -> bool:
    # Equal texts are the fast answer; otherwise the array's values decide, exactly.
    return stored == orjson.dumps(sealed) or orjson.loads(stored) == list(sealed)


# PostgreSQL: the nine text columns come joined into one text by the server, each value after a
# MARK and a NULL as a lone NULL_MARK: one value for the driver to convert instead of nine (about
# 0.7 µs less per event here, for 0.3 µs more to build the text to compare). The concatenation is
# `OPERATOR(pg_catalog.||)`, the built-in one whatever the search path says. Equal columns give
# equal texts; equal texts prove equal columns when the event's own values hold no marker (the
# text then has exactly one marker per column, so no stored value can hold one either and the
# text splits back into the same values). Events whose values do hold one are compared column by
# column (_ExactColumns).
MARK, NULL_MARK = "\x1f", "\x1e"
_TEXT_COLUMNS = ("id", "module", "action", "crud", "outcome", "actor_type", "actor_id", "target_type", "target_id")
_NULLABLE = ("target_type", "target_id")


def _joined_sql() -> str:
    concat = " OPERATOR(pg_catalog.||) "
    pieces = []
    for column in _TEXT_COLUMNS:
        piece = f"E'\\x1f'{concat}{column}"
        pieces.append(f"COALESCE({piece}, E'\\x1e')" if column in _NULLABLE else piece)
    return concat.join(pieces)


POSTGRES_COLUMNS = f"{_joined_sql()}, occurred_at, recorded_at"


class _ExactColumns:
    """Reads the columns of one row as they are, on a connection of its own (the main one is busy
    with the pipelined slices); opened on the first event whose values hold a marker."""

    def __init__(self, engine: Engine, org_id: str) -> None:
        self._engine = engine
        self._org_id = org_id
        self._dbapi: Any = None

    def __call__(self, row: tuple[Any, ...], event: _Sealed) -> bool:
        if self._dbapi is None:
            self._dbapi = self._engine.raw_connection()
        cursor = self._dbapi.cursor(binary=True)
        try:
            cursor.execute(ONE_ROW_SQL.format(columns=COLUMNS), (self._org_id, row[0]))
            stored = cursor.fetchone()
        finally:
            cursor.close()
        return stored is not None and stored == _sealed_columns(event, _postgres_time)

    def close(self) -> None:
        if self._dbapi is not None:
            self._dbapi.close()


def _postgres_columns(exact: ColumnCheck) -> ColumnCheck:
    recorded: list[Any] = [None, None]  # the last recorded_at text and its value: a sealing batch shares it

    def check(row: tuple[Any, ...], event: _Sealed) -> bool:
        actor = event.actor
        target = event.target
        # The text the server must have joined from this event's row (see _joined_sql).
        joined = (
            f"\x1f{event.id}\x1f{event.module}\x1f{event.action}\x1f{event.crud}\x1f{event.outcome}"
            f"\x1f{actor.type}\x1f{actor.id}"
        ) + ("\x1e\x1e" if target is None else f"\x1f{target.type}\x1f{target.id}")
        if row[5] != joined:
            return False
        text = event.recorded_at
        if text != recorded[0]:
            recorded[:] = text, _postgres_time(text)
        if row[7] != recorded[1] or row[6] != _postgres_time(event.occurred_at):
            return False
        if joined.count(MARK) + joined.count(NULL_MARK) == len(_TEXT_COLUMNS):
            return True
        return exact(row, event)

    return check


def _batches(dbapi: Any, sqlite: bool, columns: str, task: ChunkTask) -> Iterator[list[tuple[Any, ...]]]:
    params = (task.org_id, task.start, task.end)
    if sqlite:
        cursor = dbapi.cursor()
        cursor.arraysize = BATCH
        cursor.execute(ROW_SQL.format(sealed=SQLITE_SEALED, columns=columns, p="?"), params)
        try:
            while batch := cursor.fetchmany(BATCH):
                yield batch
        finally:
            cursor.close()
        return
    # PostgreSQL: binary results (bytea as raw bytes, not hex text to encode and decode), read
    # in slices of BATCH sequence numbers with plain cursors: memory stays bounded, and a slice
    # costs one round trip instead of a server-side cursor's DECLARE and FETCH. Two slices are
    # in flight (pipeline mode): the server reads and sends the next slice while this process
    # checks the current one, so most of its rows wait in the socket buffers instead of waking
    # this process once per 8 KiB segment.
    sql = ROW_SQL.format(sealed=POSTGRES_SEALED, columns=columns, p="%s")
    slices = [(low, min(low + BATCH, task.end)) for low in range(task.start, task.end, BATCH)]
    with dbapi.driver_connection.pipeline():
        cursors = [dbapi.cursor(binary=True), dbapi.cursor(binary=True)]
        try:
            for index, (low, high) in enumerate(slices[:2]):
                cursors[index].execute(sql, (task.org_id, low, high))
            for index in range(len(slices)):
                cursor = cursors[index % 2]
                batch = cursor.fetchall()
                if index + 2 < len(slices):
                    low, high = slices[index + 2]
                    cursor.execute(sql, (task.org_id, low, high))
                yield batch
        finally:
            for cursor in cursors:
                cursor.close()


def _previous_mac(dbapi: Any, sqlite: bool, task: ChunkTask) -> bytes | None:
    if task.anchor_mac is not None:
        return task.anchor_mac
    cursor = dbapi.cursor()
    try:
        sql = MAC_SQL.format(mac="CAST(mac AS BLOB)", p="?") if sqlite else MAC_SQL.format(mac="mac", p="%s")
        cursor.execute(sql, (task.org_id, task.start - 1))
        row = cursor.fetchone()
    finally:
        cursor.close()
    return bytes(row[0]) if row else None


def verify_chunk(engine: Engine, task: ChunkTask) -> ChunkResult:
    # Each batch's rows are containers that the cyclic collector would walk again and again
    # while they live (about 4 % of the time); nothing the check makes forms a cycle.
    with COLLECTOR_PAUSED:
        if engine.dialect.name != "sqlite":
            exact = _ExactColumns(engine, task.org_id)
            try:
                return _verify_rows(engine, task, POSTGRES_COLUMNS, _postgres_columns(exact))
            finally:
                exact.close()
        try:
            return _verify_rows(engine, task, SQLITE_JSON_COLUMNS, _json_columns)
        except sqlite3.OperationalError:
            # json_array refuses a BLOB, which only tampering puts in a text column: the chunk
            # is then read again column by column.
            return _verify_rows(engine, task, SQLITE_PLAIN_COLUMNS, _plain_columns)


def _verify_rows(engine: Engine, task: ChunkTask, columns_sql: str, columns: ColumnCheck) -> ChunkResult:
    """Check each row of the chunk: `columns_sql` says what is read after the five sealed columns,
    `columns` compares that with the event."""
    sqlite = engine.dialect.name == "sqlite"
    # SQLite reads key ids as bytes (SQLITE_SEALED).
    macs = {kid.encode() if sqlite else kid: HmacKey(kid, secret).digest for kid, secret in task.secrets.items()}
    result = ChunkResult(task.start, task.end)
    sizes = set(task.sizes)
    leaves: list[bytes] = []
    append = leaves.append
    org_id = task.org_id
    schema = task.schema
    hash_leaf = _LEAF_PREFIX.copy
    decode = _decode_sealed
    dbapi = engine.raw_connection()
    try:
        prev_mac = _previous_mac(dbapi, sqlite, task)
        expected = task.start
        # Both drivers return bytes for the binary columns; a stored value of another type
        # compares unequal, or fails the hash.
        rows = chain.from_iterable(_batches(dbapi, sqlite, columns_sql, task))
        for row in rows:
            seq, data, stored_leaf, mac, kid = row[:5]
            if seq != expected:
                result.tamper(expected, "missing_event", f"events {expected}..{seq - 1} are missing")
                result.tree_ok = False
                expected = seq
            expected += 1
            leaf_hash = hash_leaf()
            try:
                leaf_hash.update(data)
            except TypeError:  # NULL: only tampering (dropping NOT NULL) stores one
                data = b""
            leaf = leaf_hash.digest()
            try:
                event = decode(data)
                agree = event.seq == seq and event.org == org_id and event.schema == schema and columns(row, event)
            except (msgspec.DecodeError, ValueError, TypeError):
                agree = False
            if not agree:
                result.tamper(seq, "content_mismatch", "the stored columns disagree with the sealed event")
            if stored_leaf != leaf:
                result.tamper(seq, "leaf_mismatch", "the stored leaf hash is not the hash of the event")
            mac_of = macs.get(kid)
            if mac_of is None:
                name = kid.decode("utf-8", "replace") if isinstance(kid, bytes) else str(kid)
                result.missing_kids.setdefault(name, seq)
            elif prev_mac is None or mac_of(prev_mac + leaf) != mac:
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
        # One connection for all the chunks this process verifies (and one more for _ExactColumns):
        # each new PostgreSQL connection costs the server a process and a few ms of CPU. They
        # are closed when the process ends, by multiprocessing's exit handlers.
        engine = _worker_engines[task.url] = create_engine(task.url, pool_size=1, max_overflow=1)
        multiprocessing.util.Finalize(engine, engine.dispose, exitpriority=10)
    return verify_chunk(engine, task)
