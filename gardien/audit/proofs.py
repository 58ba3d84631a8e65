"""Inclusion and consistency proofs served from stored leaf hashes and tree nodes."""

from __future__ import annotations

from typing import Any

from sqlalchemy import and_, literal, select, union_all
from sqlalchemy.engine import Connection

from gardien.audit import merkle
from gardien.audit.models import CHECKPOINTS, EVENTS, NODES
from gardien.core.errors import Conflict, NotFound, Problem


def node_fetcher(conn: Connection, org_id: str) -> merkle.Fetch:
    """A merkle.Fetch reading every requested range in one round trip."""

    def fetch(ranges: list[tuple[int, int, int]]) -> list[list[bytes]]:
        if not ranges:
            return []
        parts = []
        for number, (level, start, end) in enumerate(ranges):
            if level == 0:
                parts.append(
                    select(EVENTS.c.seq.label("pos"), EVENTS.c.leaf_hash.label("hash"))
                    .add_columns(*_tag(number))
                    .where(and_(EVENTS.c.org_id == org_id, EVENTS.c.seq >= start, EVENTS.c.seq < end))
                )
            else:
                parts.append(
                    select(NODES.c.idx.label("pos"), NODES.c.hash.label("hash"))
                    .add_columns(*_tag(number))
                    .where(
                        and_(
                            NODES.c.org_id == org_id,
                            NODES.c.level == level,
                            NODES.c.idx >= start,
                            NODES.c.idx < end,
                        )
                    )
                )
        found: list[dict[int, bytes]] = [{} for _ in ranges]
        for pos, digest, number in conn.execute(union_all(*parts)):
            found[number][pos] = digest
        out: list[list[bytes]] = []
        for (level, start, end), hashes in zip(ranges, found, strict=True):
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


def _tag(number: int) -> list[Any]:
    return [literal(number).label("part")]


def checkpoint_row(conn: Connection, org_id: str, size: int | None = None) -> tuple[int, bytes, str, object]:
    """The checkpoint of that size, or the latest one."""
    stmt = select(CHECKPOINTS.c.size, CHECKPOINTS.c.root, CHECKPOINTS.c.note, CHECKPOINTS.c.created_at).where(
        CHECKPOINTS.c.org_id == org_id
    )
    stmt = stmt.order_by(CHECKPOINTS.c.size.desc()).limit(1) if size is None else stmt.where(CHECKPOINTS.c.size == size)
    row = conn.execute(stmt).one_or_none()
    if row is None:
        if size is None:
            raise NotFound("a checkpoint (the ledger is empty or not yet sealed)")
        raise NotFound(f"checkpoint of size {size}")
    return row.size, row.root, row.note, row.created_at


def inclusion(conn: Connection, org_id: str, seq: int, size: int | None) -> tuple[bytes, list[bytes], int]:
    """Leaf hash and audit path of event `seq` in the checkpointed tree of `size` (default: latest)."""
    tree_size = checkpoint_row(conn, org_id, size)[0]
    if seq >= tree_size:
        raise Problem(
            409,
            "not-yet-sealed",
            "Not yet sealed",
            f"event {seq} is not covered by checkpoint {tree_size} yet; checkpoints follow within a second",
        )
    leaf = conn.execute(
        select(EVENTS.c.leaf_hash).where(EVENTS.c.org_id == org_id, EVENTS.c.seq == seq)
    ).scalar_one_or_none()
    if leaf is None:
        raise NotFound(f"event {seq}")
    return leaf, merkle.inclusion_proof(seq, tree_size, node_fetcher(conn, org_id)), tree_size


def consistency(conn: Connection, org_id: str, old_size: int, new_size: int) -> list[bytes]:
    if old_size > new_size:
        raise Conflict("the old checkpoint must not be larger than the new one")
    checkpoint_row(conn, org_id, old_size)
    checkpoint_row(conn, org_id, new_size)
    return merkle.consistency_proof(old_size, new_size, node_fetcher(conn, org_id))
