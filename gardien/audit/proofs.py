"""Inclusion and consistency proofs served from stored leaf hashes and tree nodes."""

from __future__ import annotations

import threading
from datetime import UTC, datetime
from typing import Any

import orjson
from sqlalchemy import select
from sqlalchemy.engine import Connection

from gardien.audit import merkle
from gardien.audit.manifest import kept_leaves
from gardien.audit.models import PURGES
from gardien.core.errors import Conflict, NotFound, Problem

CACHED_LEVEL = 2 * merkle.STRIDE  # nodes over 256 events and more
CACHE_BLOCK = 256  # nodes read together when one of them is not cached
CACHE_MAX_NODES = 1 << 18  # 8 MiB of hashes, the upper tree of about 64 million events


class NodeCache:
    """The stored tree nodes at levels >= CACHED_LEVEL that proofs have read, per organisation.

    A stored node is the hash of a perfect subtree of sealed events: the tree table is WORM and
    a purge keeps it, so a node once read never changes and is never wrong to serve again. The
    upper levels are few (one node per 256 events at level 8, sixteen times fewer above) and
    every proof needs some of them, so keeping them leaves a proof's round trip with the two
    lowest bands to read. A miss reads the aligned block of CACHE_BLOCK nodes around it, so that
    a large ledger's upper tree is loaded in a few reads. Absence is never cached: a node past the
    end of the tree when read may be stored later. When full, the cache starts again empty.
    """

    def __init__(self, max_nodes: int = CACHE_MAX_NODES) -> None:
        self.max_nodes = max_nodes
        self._levels: dict[tuple[str, int], dict[int, bytes]] = {}
        self._count = 0
        self._lock = threading.Lock()

    def get(self, org_id: str, level: int, start: int, end: int) -> list[bytes] | None:
        """The nodes start .. end - 1 at that level, or None unless all of them are cached."""
        nodes = self._levels.get((org_id, level))
        if nodes is None:
            return None
        try:
            return [nodes[i] for i in range(start, end)]
        except KeyError:
            return None

    def put(self, org_id: str, level: int, found: dict[int, bytes]) -> None:
        with self._lock:
            if self._count + len(found) > self.max_nodes:
                self._levels = {}
                self._count = 0
            nodes = self._levels.setdefault((org_id, level), {})
            before = len(nodes)
            nodes.update(found)
            self._count += len(nodes) - before

    def __len__(self) -> int:
        return self._count


def node_fetcher(
    conn: Connection,
    org_id: str,
    *,
    leaf_of: int | None = None,
    leaf_out: list[bytes] | None = None,
    cache: NodeCache | None = None,
) -> merkle.Fetch:
    """A merkle.Fetch reading every requested range in one round trip.

    Plain SQL: proofs must take well under a millisecond, and building an SQLAlchemy union for
    each proof cost more than running it. With `leaf_of`, the same round trip also reads that
    event's leaf hash into `leaf_out` (left empty when the event is not stored). With `cache`,
    upper nodes come from it when it holds them, and go into it when read.
    """
    marker = "?"
    leaves = (
        f"SELECT {{n}}, seq, leaf_hash FROM audit_events WHERE org_id = {marker} AND seq >= {marker} AND seq < {marker}"
    )
    nodes = (
        f"SELECT {{n}}, idx, hash FROM audit_tree_nodes WHERE org_id = {marker} AND level = {marker}"
        f" AND idx >= {marker} AND idx < {marker}"
    )

    kept: dict[int, bytes] | None = None

    def purged_leaves() -> dict[int, bytes]:
        nonlocal kept
        if kept is None:
            row = conn.execute(
                select(PURGES.c.manifest).where(PURGES.c.org_id == org_id).order_by(PURGES.c.to_seq.desc()).limit(1)
            ).scalar_one_or_none()
            kept = kept_leaves(orjson.loads(row)) if row else {}
        return kept

    def fetch(ranges: list[tuple[int, int, int]]) -> list[list[bytes]]:
        if not ranges:
            return []
        parts: list[str] = []
        params: list[Any] = []
        cached: list[list[bytes] | None] = [None] * len(ranges)
        found: list[dict[int, bytes]] = [{} for _ in ranges]
        for number, (level, start, end) in enumerate(ranges):
            if level == 0:
                parts.append(leaves.format(n=number))
                params += [org_id, start, end]
                continue
            if cache is not None and level >= CACHED_LEVEL:
                cached[number] = cache.get(org_id, level, start, end)
                if cached[number] is not None:
                    continue
                # The whole aligned block: its neighbours are what the next proofs will ask for.
                start -= start % CACHE_BLOCK
                end += -end % CACHE_BLOCK
            parts.append(nodes.format(n=number))
            params += [org_id, level, start, end]
        if leaf_of is not None:
            parts.append("SELECT -1, seq, leaf_hash FROM audit_events WHERE org_id = ? AND seq = ?")
            params += [org_id, leaf_of]
        if parts:
            for number, pos, digest in _raw(conn, " UNION ALL ".join(parts), params):
                if number == -1:
                    if leaf_out is not None:
                        leaf_out.append(bytes(digest))
                    continue
                found[number][pos] = bytes(digest)
        out: list[list[bytes]] = []
        for number, (level, start, end) in enumerate(ranges):
            hit = cached[number]
            if hit is not None:
                out.append(hit)
                continue
            hashes = found[number]
            if cache is not None and level >= CACHED_LEVEL and hashes:
                cache.put(org_id, level, hashes)
                hashes = {i: hashes[i] for i in range(start, end) if i in hashes}
            if len(hashes) != end - start and level == 0:
                # Leaves of purged events: the purge manifest kept those later proofs need.
                hashes.update({s: h for s, h in purged_leaves().items() if start <= s < end and s not in hashes})
            if len(hashes) != end - start:
                raise Problem(
                    409,
                    "ledger-damaged",
                    "Ledger damaged",
                    f"the ledger is missing tree data at level {level} [{start}, {end}); run `gardien audit verify`",
                )
            out.append([hashes[i] for i in range(start, end)])
        return out

    return fetch


def _raw(conn: Connection, sql: str, params: list[Any]) -> list[tuple[Any, ...]]:
    """Run on the driver's own cursor: SQLAlchemy's result layer costs more than these tiny queries."""
    if conn.dialect.paramstyle != "qmark":
        sql = sql.replace("?", "%s")
    cursor = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
    try:
        cursor.execute(sql, tuple(params))
        return list(cursor.fetchall())
    finally:
        cursor.close()


def checkpoint_row(conn: Connection, org_id: str, size: int | None = None) -> tuple[int, bytes, str, Any]:
    """The checkpoint of that size, or the latest one."""
    return _checkpoint_of(_select_checkpoint(conn, org_id, size))


def _checkpoint_of(row: tuple[Any, ...]) -> tuple[int, bytes, str, Any]:
    return int(row[0]), bytes(row[1]), str(row[2]), _as_utc(row[3])


def _select_checkpoint(
    conn: Connection, org_id: str, size: int | None, *, with_leaf_of: int | None = None
) -> tuple[Any, ...]:
    """The raw checkpoint row; with `with_leaf_of`, also that event's leaf hash (None if absent)
    in the same round trip: on PostgreSQL each one is a large part of a proof's time."""
    sql = "SELECT c.size, c.root, c.note, c.created_at"
    params: list[Any] = []
    if with_leaf_of is None:
        sql += " FROM audit_checkpoints c"
    else:
        sql += ", e.leaf_hash FROM audit_checkpoints c LEFT JOIN audit_events e ON e.org_id = c.org_id AND e.seq = ?"
        params.append(with_leaf_of)
    sql += " WHERE c.org_id = ?"
    params.append(org_id)
    if size is None:
        sql += " ORDER BY c.size DESC LIMIT 1"
    else:
        sql += " AND c.size = ?"
        params.append(size)
    rows = _raw(conn, sql, params)
    if not rows:
        if size is None:
            raise NotFound("a checkpoint (the ledger is empty or not yet sealed)")
        raise NotFound(f"checkpoint of size {size}")
    return rows[0]


def _as_utc(value: Any) -> datetime:
    # Raw rows: SQLite gives the stored text, PostgreSQL a naive datetime, both in UTC.
    moment = datetime.fromisoformat(value) if isinstance(value, str) else value
    return moment.replace(tzinfo=UTC)


Checkpoint = tuple[int, bytes, str, Any]


def inclusion(
    conn: Connection,
    org_id: str,
    seq: int,
    size: int | None,
    *,
    known: Checkpoint | None = None,
    cache: NodeCache | None = None,
) -> tuple[bytes, list[bytes], Checkpoint]:
    """Leaf hash and audit path of event `seq` in the checkpointed tree of `size` (default: latest),
    with that checkpoint's row.

    `known` is a checkpoint the caller read lately: when no size is asked for and it covers the
    event, the proof is against it and takes one round trip (leaf and nodes in one union) instead
    of two. A checkpoint never changes once written, so a proof against a second-old one is as
    good as against the newest; an event it does not cover takes the two-trip path."""
    if size is None and known is not None and known[0] > 1 and 0 <= seq < known[0]:
        # (A tree of one leaf has an empty path: merkle would not call the fetcher at all.)
        found: list[bytes] = []
        path = merkle.inclusion_proof(
            seq, known[0], node_fetcher(conn, org_id, leaf_of=seq, leaf_out=found, cache=cache)
        )
        if not found:
            raise NotFound(f"event {seq}")
        return found[0], path, known
    row = _select_checkpoint(conn, org_id, size, with_leaf_of=seq)
    checkpoint, leaf = _checkpoint_of(row), row[4]
    tree_size = checkpoint[0]
    if seq >= tree_size:
        raise Problem(
            409,
            "not-yet-sealed",
            "Not yet sealed",
            f"event {seq} is not covered by checkpoint {tree_size} yet; checkpoints follow within a second",
        )
    if leaf is None:
        raise NotFound(f"event {seq}")
    return bytes(leaf), merkle.inclusion_proof(seq, tree_size, node_fetcher(conn, org_id, cache=cache)), checkpoint


def consistency(
    conn: Connection, org_id: str, old_size: int, new_size: int, *, cache: NodeCache | None = None
) -> list[bytes]:
    if old_size > new_size:
        raise Conflict("the old checkpoint must not be larger than the new one")
    checkpoint_row(conn, org_id, old_size)
    checkpoint_row(conn, org_id, new_size)
    return merkle.consistency_proof(old_size, new_size, node_fetcher(conn, org_id, cache=cache))
