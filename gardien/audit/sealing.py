"""Appending to the ledger: canonical bytes, leaf hashes, the MAC chain, tree nodes, checkpoints.

All of one batch happens in one transaction that holds the organisation's head row (a row lock on
PostgreSQL, the write lock on SQLite), so concurrent writers, in one process or many, line up and
a crash leaves either the whole batch or none of it.
"""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from itertools import chain
from typing import Any, cast

import orjson
from sqlalchemy import bindparam, insert, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.engine import Connection

from gardien.audit.canonical import (
    CanonicalError,
    canonical_bytes,
    fast_form,
    first_without_form,
    is_plain,
    sorted_orjson,
)
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
from gardien.core.keyring import HmacKey, Keyring
from gardien.core.process import OneInFlight, short_switch_interval

SCHEMA = "gardien.audit/v1"
ZERO_MAC = bytes(32)


@dataclass(frozen=True)
class PreparedEvent:
    """An event validated and checked for size, waiting for its place in the ledger."""

    doc: dict[str, Any]
    occurred_at: datetime | None
    plain: bool
    # The event's canonical bytes cut where sealing puts id, occurred_at, org, recorded_at and
    # seq (see _TEMPLATE_SLOTS); None for the rare event only the reference canonicalizer writes.
    pieces: tuple[bytes, ...] | None = None


# The members sealing adds, in RFC 8785 (sorted) order. In an event's template each value is a
# NUL byte, which canonical JSON never holds raw (it writes U+0000 as \u0000), except the schema.
_SLOT = orjson.Fragment(b"\x00")
_TEMPLATE_SLOTS: dict[str, Any] = {
    "id": _SLOT,
    "occurred_at": _SLOT,
    "org": _SLOT,
    "recorded_at": _SLOT,
    "schema": SCHEMA,
    "seq": _SLOT,
}
# What the slots add to the template: each `"name":value` and its comma.
_SLOTS_BYTES = sum(
    len(orjson.dumps(name)) + 2 + (1 if value is _SLOT else len(orjson.dumps(value)))
    for name, value in _TEMPLATE_SLOTS.items()
)


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
INSERT_EVENTS = f"INSERT INTO {EVENTS.name} ({', '.join(EVENT_COLUMNS)}) VALUES "
ROW_PLACEHOLDERS = "(" + ", ".join(["?"] * len(EVENT_COLUMNS)) + ")"
COPY_EVENTS = f"COPY {EVENTS.name} ({', '.join(EVENT_COLUMNS)}) FROM STDIN (FORMAT BINARY)"


class _RowStream:
    """Sealed rows on their way into audit_events, written while the next ones are computed.

    Each write is one statement, run on the `inserter` thread while this one goes on (both
    drivers release the GIL while the database works); with no inserter it runs here. Either way
    the rows are part of the caller's transaction like any INSERT.
    - PostgreSQL: a binary COPY, which the server loads several times faster than a pipelined
      executemany(). One COPY per write, not one for the whole batch: the server keeps binary
      rows until the statement ends or a thousand are buffered, so a single COPY was loaded only
      at its end, with nothing left to overlap.
    - SQLite: a multi-row INSERT of up to a thousand rows, rather than executemany(), whose
      per-row GIL release and retake can wait on a busy event loop in the same process.
    """

    def __init__(self, conn: Connection, inserter: ThreadPoolExecutor | None = None) -> None:
        self._raw: Any = cast(Any, conn.connection.dbapi_connection)
        self._insert = self._insert_sqlite if is_sqlite(conn) else self._copy_postgres
        self._inserts = OneInFlight(inserter)

    def write(self, rows: list[tuple[Any, ...]]) -> None:
        for start in range(0, len(rows), ROWS_PER_INSERT):
            self._inserts.submit(self._insert, rows[start : start + ROWS_PER_INSERT])

    def _insert_sqlite(self, rows: list[tuple[Any, ...]]) -> None:
        params = tuple(chain.from_iterable(rows))
        self._raw.execute(INSERT_EVENTS + ", ".join([ROW_PLACEHOLDERS] * len(rows)), params)

    def _copy_postgres(self, rows: list[tuple[Any, ...]]) -> None:
        with self._raw.cursor() as cursor, cursor.copy(COPY_EVENTS) as copy:
            copy.set_types(EVENT_COPY_TYPES)
            write_row = copy.write_row
            for row in rows:
                write_row(row)

    def close(self) -> None:
        """Wait until every row is written; raises what writing them raised."""
        self._inserts.wait()

    def abort(self) -> None:
        """Stop writing: once this returns nothing runs on the connection; the caller rolls back."""
        self._inserts.abandon()


def _sqlite_time(rfc3339_text: str) -> str:
    # The text form SQLAlchemy uses for SQLite DATETIME, so that ORM reads, range filters and
    # the verifier all see one spelling.
    return rfc3339_text[:10] + " " + rfc3339_text[11:26]


def _postgres_time(rfc3339_text: str) -> datetime:
    return datetime.fromisoformat(rfc3339_text[:26])


def prepare(event: EventIn, max_bytes: int, *, field: str = "") -> PreparedEvent:
    """Validate what pydantic cannot: a canonical form exists and fits the size limit."""
    # The dump in Python mode leaves the free-form members as they are, so whatever has no
    # canonical form is still there to be refused, by path, rather than turned into a string.
    doc = event.model_dump(exclude_none=True, exclude={"occurred_at"})
    return prepare_doc(doc, event.occurred_at, max_bytes, field=field)


def prepare_doc(doc: dict[str, Any], occurred_at: datetime | None, max_bytes: int, *, field: str = "") -> PreparedEvent:
    """prepare() for an event already validated and in the form of EventIn's dump without None
    members and without `occurred_at` (see gardien.audit.schemas.event_doc). Takes `doc` over."""
    # Only the free-form members can hold floats, odd keys, lone surrogates or (from Python
    # callers) values that are not JSON at all; the rest are validated strings.
    changes = doc.get("changes")
    plain = is_plain(doc.get("fields")) and (
        changes is None or (is_plain(changes.get("before")) and is_plain(changes.get("after")))
    )
    if not doc.get("data_categories"):
        doc.pop("data_categories", None)
    pieces = None
    try:
        form = fast_form(doc, plain=plain)
        if form is None:
            # Only the reference writes it (keys it orders by UTF-16), or nothing does.
            refuse_without_form(doc, field)
            size = len(canonical_bytes(doc, plain=False))
        else:
            template = sorted_orjson({**form, **_TEMPLATE_SLOTS})
            size = len(template) - _SLOTS_BYTES
            pieces = tuple(template.split(b"\x00"))
    except CanonicalError as exc:
        refuse_without_form(doc, field)  # names the member when it is a free-form one
        where = f"{field}." if field else ""
        raise InvalidInput(
            f"{where}event has no canonical JSON form: {exc}",
            [{"field": field or "body", "message": str(exc), "type": "canonical"}],
        ) from exc
    if size > max_bytes:
        where = f"{field}: " if field else ""
        raise TooLarge(f"{where}event is {size} bytes in canonical form; the limit is {max_bytes}")
    return PreparedEvent(doc=doc, occurred_at=occurred_at, plain=plain, pieces=pieces)


def refuse_without_form(doc: dict[str, Any], field: str) -> None:
    """422 naming the first member of `fields` or `changes` that has no RFC 8785 form, if any."""
    prefix = f"{field}." if field else ""
    found = first_without_form(doc.get("fields"), f"{prefix}fields")
    changes = doc.get("changes")
    if found is None and changes is not None:
        found = first_without_form(changes.get("before"), f"{prefix}changes.before") or first_without_form(
            changes.get("after"), f"{prefix}changes.after"
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

    def seal_stream(
        self, conn: Connection, org_id: str, chunks: Iterable[Sequence[PreparedEvent]], now: datetime
    ) -> list[Sealed]:
        """Seal events as they come, writing each chunk while the next one is prepared and sealed.

        For large batches in one call: the head row is locked first (its row lock on PostgreSQL;
        SQLite's write lock is already held), so that rows can be written before the head moves.
        If preparing a later chunk raises, nothing of the batch remains once the caller rolls back.
        """
        self._heads.pop(org_id, None)
        head = lock_head(conn, org_id)
        sealing = _Sealing.start(self, conn, head, now)
        with _inserter() as inserter:
            stream = _RowStream(conn, inserter)
            try:
                for events in chunks:
                    stream.write(sealing.seal(events))
                stream.close()
            except BaseException:
                stream.abort()
                raise
        batch = self._finish(sealing, now)
        self._save_head(conn, head)
        return self._write(conn, head, batch, rows_written=True)

    def _compute(self, conn: Connection, head: HeadState, events: Sequence[PreparedEvent], now: datetime) -> _Batch:
        """Sequence numbers, canonical bytes, leaves, the MAC chain and the tree nodes of a batch.

        Advances `head` (frontier, MAC, checkpoint) in memory; writes nothing.
        """
        sealing = _Sealing.start(self, conn, head, now)
        sealing.rows = sealing.seal(events)
        return self._finish(sealing, now)

    def _finish(self, sealing: _Sealing, now: datetime) -> _Batch:
        head = sealing.head
        checkpoint = self._sign_checkpoint(head, now) if self._checkpoint_due(head, now) else None
        return _Batch(sealing.rows, sealing.nodes, sealing.sealed, checkpoint)

    def _write(self, conn: Connection, head: HeadState, batch: _Batch, *, rows_written: bool = False) -> list[Sealed]:
        """The batch's rows, after its head row was written (and so locked)."""
        if not rows_written:
            stream = _RowStream(conn)
            stream.write(batch.rows)
            stream.close()
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


# While a batch streams, a thread that waits for the GIL (the inserter, back from the database
# with its rows written) gets it within this many seconds instead of Python's default 5 ms,
# which is as long as sealing a whole chunk and left the next chunk waiting for the previous one.
INSERTER_SWITCH_INTERVAL = 0.0005


_SHORT_SWITCH = short_switch_interval(INSERTER_SWITCH_INTERVAL)


@contextlib.contextmanager
def _inserter() -> Iterator[ThreadPoolExecutor]:
    """A thread of the call's own (not a lingering one: verify forks thread-free processes
    directly), and a short GIL switch interval while it runs."""
    with _SHORT_SWITCH, ThreadPoolExecutor(1, thread_name_prefix="gardien-ledger-insert") as inserter:
        yield inserter


@dataclass
class _Sealing:
    """One batch being sealed: the head it advances and what it produced so far."""

    head: HeadState
    key: HmacKey
    now: datetime
    recorded: str
    recorded_db: Any
    db_time: Callable[[str], Any]
    rows: list[tuple[Any, ...]] = field(default_factory=list)
    nodes: list[tuple[int, int, bytes]] = field(default_factory=list)
    sealed: list[Sealed] = field(default_factory=list)

    @classmethod
    def start(cls, sealer: Sealer, conn: Connection, head: HeadState, now: datetime) -> _Sealing:
        recorded = rfc3339(now)
        db_time = _sqlite_time if is_sqlite(conn) else _postgres_time
        return cls(head, sealer.keyring.hmac_key(), now, recorded, db_time(recorded), db_time)

    def seal(self, events: Sequence[PreparedEvent]) -> list[tuple[Any, ...]]:
        """The rows of `events`, next in the ledger: sequence numbers, canonical bytes, leaves,
        the MAC chain and tree nodes. Advances the head in memory; writes nothing."""
        head = self.head
        org_id = head.org_id
        key = self.key
        recorded = self.recorded
        recorded_db = self.recorded_db
        db_time = self.db_time
        now = self.now
        frontier = head.frontier
        mac = head.mac
        nodes = self.nodes
        sealed = self.sealed
        rows: list[tuple[Any, ...]] = []
        org_json = orjson.dumps(org_id)
        recorded_json = orjson.dumps(recorded)
        for event in events:
            seq = frontier.size
            event_id = new_id()
            doc = event.doc
            if event.occurred_at is None:
                occurred, occurred_db = recorded, recorded_db
            else:
                occurred = rfc3339(event.occurred_at)
                occurred_db = db_time(occurred)
            pieces = event.pieces
            if pieces is not None:
                # ids and times are ASCII without escapes: quoted as they are.
                data = b"".join(
                    (
                        pieces[0],
                        b'"' + event_id.encode() + b'"',
                        pieces[1],
                        b'"' + occurred.encode() + b'"',
                        pieces[2],
                        org_json,
                        pieces[3],
                        recorded_json,
                        pieces[4],
                        str(seq).encode(),
                        pieces[5],
                    )
                )
            else:
                full = dict(doc, schema=SCHEMA, id=event_id, org=org_id, seq=seq)
                full.update(recorded_at=recorded, occurred_at=occurred)
                data = canonical_bytes(full, plain=event.plain)
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
                    occurred_db,
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
        return rows


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
