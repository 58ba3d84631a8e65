"""Appending to the ledger: canonical bytes, leaf hashes, the MAC chain, tree nodes, checkpoints.

All of one batch happens in one transaction that holds the organisation's head row (a row lock on
PostgreSQL, the write lock on SQLite), so concurrent writers, in one process or many, line up and
a crash leaves either the whole batch or none of it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, insert, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.engine import Connection

from gardien.audit.canonical import CanonicalError, canonical_bytes, first_without_form, is_plain
from gardien.audit.checkpoint import Checkpoint, sign_note
from gardien.audit.merkle import CompactRange
from gardien.audit.models import (
    CHECKPOINTS,
    EVENTS,
    HEADS,
    NODES,
)
from gardien.audit.schemas import EventIn
from gardien.audit.signing import checkpoint_signer, log_origin
from gardien.core.clock import rfc3339
from gardien.core.db import is_sqlite
from gardien.core.errors import InvalidInput, TooLarge
from gardien.core.ids import new_id
from gardien.core.keyring import Keyring

SCHEMA = "gardien.audit/v1"
ZERO_MAC = bytes(32)


@dataclass(frozen=True)
class PreparedEvent:
    """An event validated and checked for size, waiting for its place in the ledger."""

    doc: dict[str, Any]
    occurred_at: datetime | None
    plain: bool


@dataclass(frozen=True)
class Sealed:
    id: str
    seq: int
    recorded_at: datetime
    leaf_hash: bytes


@dataclass
class HeadState:
    org_id: str
    frontier: CompactRange
    mac: bytes
    min_seq: int
    checkpoint_size: int
    checkpoint_at: datetime | None


EVENT_COLUMNS = (
    "org_id",
    "seq",
    "id",
    "occurred_at",
    "recorded_at",
    "module",
    "action",
    "crud",
    "outcome",
    "actor_type",
    "actor_id",
    "target_type",
    "target_id",
    "canonical",
    "leaf_hash",
    "mac",
    "hmac_kid",
)


# PostgreSQL types of EVENT_COLUMNS for binary COPY (varchar and text share one binary form).
EVENT_COPY_TYPES = (
    ["text", "int8", "text", "timestamp", "timestamp"] + ["text"] * 8 + ["bytea", "bytea", "bytea", "text"]
)
assert len(EVENT_COPY_TYPES) == len(EVENT_COLUMNS)


# Rows per INSERT statement: 17 columns × 1,000 stays under SQLite's 32,766 bound variables.
ROWS_PER_INSERT = 1_000


def _insert_events(conn: Connection, rows: list[tuple[Any, ...]]) -> None:
    """Insert sealed rows straight through the driver.

    SQLite: one multi-row INSERT per thousand events. sqlite3's executemany() releases and retakes
    the GIL once per row, and with the event loop busy in the same process each retake can wait.
    PostgreSQL: binary COPY, which the server loads several times faster than even a pipelined
    executemany(), and which is part of the transaction like any INSERT.
    """
    columns = ", ".join(EVENT_COLUMNS)
    if conn.dialect.paramstyle != "qmark":
        cursor = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
        try:
            with cursor.copy(f"COPY {EVENTS.name} ({columns}) FROM STDIN (FORMAT BINARY)") as copy:
                copy.set_types(EVENT_COPY_TYPES)
                for row in rows:
                    copy.write_row(row)
        finally:
            cursor.close()
        return
    row_sql = "(" + ", ".join(["?"] * len(EVENT_COLUMNS)) + ")"
    head = f"INSERT INTO {EVENTS.name} ({columns}) VALUES "
    for start in range(0, len(rows), ROWS_PER_INSERT):
        chunk = rows[start : start + ROWS_PER_INSERT]
        params = tuple(value for row in chunk for value in row)
        conn.exec_driver_sql(head + ", ".join([row_sql] * len(chunk)), params)


def _sqlite_time(rfc3339_text: str) -> str:
    # The text form SQLAlchemy uses for SQLite DATETIME, so that ORM reads, range filters and
    # the verifier all see one spelling.
    return rfc3339_text[:10] + " " + rfc3339_text[11:26]


def _postgres_time(rfc3339_text: str) -> datetime:
    return datetime.fromisoformat(rfc3339_text[:26])


def prepare(event: EventIn, max_bytes: int, *, field: str = "") -> PreparedEvent:
    """Validate what pydantic cannot: a canonical form exists and fits the size limit."""
    # Only the free-form members can hold floats, odd keys or (from Python callers) values that
    # are not JSON at all; the rest are validated strings. Checked before the dump, which would
    # quietly turn a datetime or bytes into a string.
    changes = event.changes
    plain = is_plain(event.fields) and (changes is None or (is_plain(changes.before) and is_plain(changes.after)))
    if not plain:
        refuse_without_form(event, field)
    doc = event.model_dump(mode="json", exclude_none=True, exclude={"occurred_at"})
    if not doc.get("data_categories"):
        doc.pop("data_categories", None)
    try:
        size = len(canonical_bytes(doc, plain=plain))
    except CanonicalError as exc:
        where = f"{field}." if field else ""
        raise InvalidInput(
            f"{where}event has no canonical JSON form: {exc}",
            [{"field": field or "body", "message": str(exc), "type": "canonical"}],
        ) from exc
    if size > max_bytes:
        where = f"{field}: " if field else ""
        raise TooLarge(f"{where}event is {size} bytes in canonical form; the limit is {max_bytes}")
    return PreparedEvent(doc=doc, occurred_at=event.occurred_at, plain=plain)


def refuse_without_form(event: EventIn, field: str) -> None:
    """422 naming the first member of `fields` or `changes` that has no RFC 8785 form, if any."""
    prefix = f"{field}." if field else ""
    found = first_without_form(event.fields, f"{prefix}fields")
    if found is None and event.changes is not None:
        found = first_without_form(event.changes.before, f"{prefix}changes.before") or first_without_form(
            event.changes.after, f"{prefix}changes.after"
        )
    if found is not None:
        path, why = found
        raise InvalidInput(f"{path}: {why}", [{"field": path, "message": why, "type": "canonical"}])


# Built once: constructing and cache-keying a statement costs more than running it on this path.
SELECT_HEAD = select(HEADS).where(HEADS.c.org_id == bindparam("org"))
SELECT_HEAD_FOR_UPDATE = SELECT_HEAD.with_for_update()
INSERT_NODES = insert(NODES)
UPDATE_HEAD = (
    update(HEADS)
    .where(HEADS.c.org_id == bindparam("org"))
    .values(
        size=bindparam("h_size"),
        mac=bindparam("h_mac"),
        frontier=bindparam("h_frontier"),
        checkpoint_size=bindparam("h_checkpoint_size"),
        checkpoint_at=bindparam("h_checkpoint_at"),
    )
)


SWAP_HEAD = UPDATE_HEAD.where(
    HEADS.c.size == bindparam("w_size"),
    HEADS.c.mac == bindparam("w_mac"),
    HEADS.c.checkpoint_size == bindparam("w_checkpoint_size"),
    HEADS.c.min_seq == bindparam("w_min_seq"),
)
INSERT_CHECKPOINT = insert(CHECKPOINTS)


def lock_head(conn: Connection, org_id: str) -> HeadState:
    stmt = SELECT_HEAD if is_sqlite(conn) else SELECT_HEAD_FOR_UPDATE
    row = conn.execute(stmt, {"org": org_id}).one_or_none()
    if row is None:
        values = {
            "org_id": org_id,
            "size": 0,
            "min_seq": 0,
            "mac": ZERO_MAC,
            "frontier": b"",
            "checkpoint_size": 0,
            "checkpoint_at": None,
        }
        if is_sqlite(conn):
            conn.execute(insert(HEADS).values(**values))
        else:
            conn.execute(pg_insert(HEADS).values(**values).on_conflict_do_nothing())
        row = conn.execute(stmt, {"org": org_id}).one()
    return HeadState(
        org_id=org_id,
        frontier=CompactRange.from_bytes(row.size, row.frontier),
        mac=row.mac,
        min_seq=row.min_seq,
        checkpoint_size=row.checkpoint_size,
        checkpoint_at=row.checkpoint_at,
    )


class Sealer:
    """Seals prepared events into an organisation's ledger inside the caller's transaction.

    The sealer remembers each organisation's head as it left it, so that the next batch can be
    computed without reading the head first: the head row is then written with a compare-and-swap
    (an UPDATE whose WHERE names the size, MAC, checkpoint size and minimum sequence it was computed
    from). The UPDATE takes the same row lock as SELECT … FOR UPDATE and holds it to the commit,
    so sequence numbers still follow commit order. When the row moved (another process wrote, a
    transaction rolled back, a purge ran), nothing has been written yet: the sealer falls back to
    locking and reading the row, and computes the batch again from what it holds.
    """

    def __init__(
        self,
        keyring: Keyring,
        *,
        checkpoint_every_events: int = 1_000,
        checkpoint_every_seconds: float = 1.0,
    ) -> None:
        self.keyring = keyring
        self.checkpoint_every_events = checkpoint_every_events
        self.checkpoint_every_seconds = checkpoint_every_seconds
        self._heads: dict[str, HeadState] = {}

    def seal(self, conn: Connection, org_id: str, events: Sequence[PreparedEvent], now: datetime) -> list[Sealed]:
        head = self._heads.pop(org_id, None)
        if head is not None:
            expected = _swap_params(head)
            batch = self._compute(conn, head, events, now)
            if conn.execute(SWAP_HEAD, {**_head_values(head), **expected}).rowcount == 1:
                return self._write(conn, head, batch)
        head = lock_head(conn, org_id)
        batch = self._compute(conn, head, events, now)
        self._save_head(conn, head)
        return self._write(conn, head, batch)

    def _compute(self, conn: Connection, head: HeadState, events: Sequence[PreparedEvent], now: datetime) -> _Batch:
        """Sequence numbers, canonical bytes, leaves, the MAC chain and the tree nodes of a batch.

        Advances `head` (frontier, MAC, checkpoint) in memory; writes nothing.
        """
        org_id = head.org_id
        key = self.keyring.hmac_key()
        recorded = rfc3339(now)
        frontier = head.frontier
        mac = head.mac
        rows: list[tuple[Any, ...]] = []
        db_time = _sqlite_time if is_sqlite(conn) else _postgres_time
        recorded_db = db_time(recorded)
        nodes: list[tuple[int, int, bytes]] = []
        sealed: list[Sealed] = []
        for event in events:
            seq = frontier.size
            event_id = new_id()
            occurred = event.occurred_at or now
            doc = dict(event.doc)
            doc["schema"] = SCHEMA
            doc["id"] = event_id
            doc["org"] = org_id
            doc["seq"] = seq
            doc["recorded_at"] = recorded
            doc["occurred_at"] = rfc3339(occurred)
            data = canonical_bytes(doc, plain=event.plain)
            leaf = hashlib.sha256(b"\x00" + data).digest()
            mac = key.digest(mac + leaf)
            frontier.append(leaf, nodes)
            actor = doc["actor"]
            target = doc.get("target") or {}
            rows.append(
                (
                    org_id,
                    seq,
                    event_id,
                    db_time(doc["occurred_at"]),
                    recorded_db,
                    doc["module"],
                    doc["action"],
                    doc["crud"],
                    doc["outcome"],
                    actor["type"],
                    actor["id"],
                    target.get("type"),
                    target.get("id"),
                    data,
                    leaf,
                    mac,
                    key.kid,
                )
            )
            sealed.append(Sealed(event_id, seq, now, leaf))
        head.mac = mac
        checkpoint = self._sign_checkpoint(head, now) if self._checkpoint_due(head, now) else None
        return _Batch(rows, nodes, sealed, checkpoint)

    def _write(self, conn: Connection, head: HeadState, batch: _Batch) -> list[Sealed]:
        """The batch's rows, after its head row was written (and so locked)."""
        # Straight to the driver: SQLAlchemy's per-row parameter processing costs as much as the
        # insert itself on this path.
        _insert_events(conn, batch.rows)
        if batch.nodes:
            conn.execute(
                INSERT_NODES,
                [{"org_id": head.org_id, "level": lv, "idx": ix, "hash": h} for lv, ix, h in batch.nodes],
            )
        if batch.checkpoint is not None:
            conn.execute(INSERT_CHECKPOINT, batch.checkpoint)
        # If the transaction fails after this, the next swap finds the row unchanged and misses.
        self._heads[head.org_id] = head
        return batch.sealed

    def checkpoint(self, conn: Connection, org_id: str, now: datetime) -> int | None:
        """Sign the current tree if anything was added since the last checkpoint."""
        self._heads.pop(org_id, None)
        head = lock_head(conn, org_id)
        if head.frontier.size == head.checkpoint_size:
            return None
        checkpoint = self._sign_checkpoint(head, now)
        self._save_head(conn, head)
        conn.execute(INSERT_CHECKPOINT, checkpoint)
        self._heads[org_id] = head
        return head.frontier.size

    def _checkpoint_due(self, head: HeadState, now: datetime) -> bool:
        pending = head.frontier.size - head.checkpoint_size
        if pending >= self.checkpoint_every_events:
            return True
        if head.checkpoint_at is None:
            return pending > 0
        return pending > 0 and (now - head.checkpoint_at).total_seconds() >= self.checkpoint_every_seconds

    def _sign_checkpoint(self, head: HeadState, now: datetime) -> dict[str, Any]:
        """The signed note of the tree as `head` holds it; advances the head's checkpoint."""
        size = head.frontier.size
        root = head.frontier.root()
        body = Checkpoint(
            origin=log_origin(self.keyring.instance_name, head.org_id),
            size=size,
            root=root,
            extensions=(f"time {rfc3339(now)}",),
        ).body()
        note = sign_note(body, [checkpoint_signer(self.keyring)])
        head.checkpoint_size = size
        head.checkpoint_at = now
        return {"org_id": head.org_id, "size": size, "root": root, "note": note.text(), "created_at": now}

    @staticmethod
    def _save_head(conn: Connection, head: HeadState) -> None:
        conn.execute(UPDATE_HEAD, _head_values(head))


@dataclass
class _Batch:
    rows: list[tuple[Any, ...]]
    nodes: list[tuple[int, int, bytes]]
    sealed: list[Sealed]
    checkpoint: dict[str, Any] | None


def _swap_params(head: HeadState) -> dict[str, Any]:
    """The head row as it must still be for a swap computed from `head` (taken before it advances)."""
    return {
        "w_size": head.frontier.size,
        "w_mac": head.mac,
        "w_checkpoint_size": head.checkpoint_size,
        "w_min_seq": head.min_seq,
    }


def _head_values(head: HeadState) -> dict[str, Any]:
    return {
        "org": head.org_id,
        "h_size": head.frontier.size,
        "h_mac": head.mac,
        "h_frontier": head.frontier.to_bytes(),
        "h_checkpoint_size": head.checkpoint_size,
        "h_checkpoint_at": head.checkpoint_at,
    }
