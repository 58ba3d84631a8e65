"""Archive-then-purge of a ledger's sealed prefix: the bundle, the purge manifest, the one deletion path.

Specified in docs/ledger-format.md §7. A bundle is two files: `<name>.jsonl.gz` (the events' canonical
bytes, one per line, gzip) and `<name>.jsonl.gz.manifest.json` (range, hashes, covering checkpoint,
Ed25519 signature). The purge then records the manifest in `audit_purges` (write-once) and deletes
the events it covers, which is the only DELETE the ledger's write-once triggers let through.
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import os
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import orjson
from sqlalchemy import delete, func, insert, select, update
from sqlalchemy.engine import Connection, Engine

from gardien.audit.canonical import canonical_bytes
from gardien.audit.checkpoint import Checkpoint, Note, NoteSigner
from gardien.audit.manifest import BLOCK, BUNDLE_SCHEMA, kept_leaves, sign_manifest
from gardien.audit.merkle import CompactRange
from gardien.audit.models import CHECKPOINTS, EVENTS, HEADS, PURGES
from gardien.core.clock import rfc3339
from gardien.core.db import write_transaction

DELETE_BATCH = 10_000


class LedgerArchiveError(Exception):
    """The prefix does not hash to its checkpoint: archiving it would hide damage."""


@dataclass(frozen=True)
class PurgePlan:
    org_id: str
    from_seq: int
    to_seq: int
    checkpoint: str  # the signed note of size to_seq
    prefix: CompactRange  # the compact range of [0, from_seq)
    prefix_tail: dict[int, bytes]  # leaves kept by the previous manifest, by seq
    previous_sha256: str | None

    @property
    def count(self) -> int:
        return self.to_seq - self.from_seq


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def manifest_sha256(manifest: dict[str, Any]) -> str:
    """Hex SHA-256 of a manifest's RFC 8785 bytes, signature included: what the next bundle chains to."""
    return hashlib.sha256(canonical_bytes(manifest)).hexdigest()


def latest_purge(conn: Connection, org_id: str) -> Any:
    return conn.execute(
        select(PURGES).where(PURGES.c.org_id == org_id).order_by(PURGES.c.to_seq.desc()).limit(1)
    ).one_or_none()


def plan_purge(conn: Connection, org_id: str, before: datetime) -> PurgePlan | None:
    """The largest sealed prefix whose events were all recorded before `before`, or None.

    The prefix ends on a checkpoint, so the bundle carries a signed root of exactly its events.
    """
    previous = latest_purge(conn, org_id)
    from_seq = int(previous.to_seq) if previous is not None else 0
    boundary = conn.execute(
        select(func.min(EVENTS.c.seq)).where(
            EVENTS.c.org_id == org_id, EVENTS.c.seq >= from_seq, EVENTS.c.recorded_at >= before
        )
    ).scalar_one_or_none()
    if boundary is None:
        boundary = conn.execute(select(HEADS.c.size).where(HEADS.c.org_id == org_id)).scalar_one_or_none() or 0
    row = conn.execute(
        select(CHECKPOINTS.c.size, CHECKPOINTS.c.note)
        .where(CHECKPOINTS.c.org_id == org_id, CHECKPOINTS.c.size > from_seq, CHECKPOINTS.c.size <= boundary)
        .order_by(CHECKPOINTS.c.size.desc())
        .limit(1)
    ).one_or_none()
    if row is None:
        return None
    if previous is not None:
        old = orjson.loads(previous.manifest) if previous.manifest else {}
        prefix = CompactRange.from_bytes(from_seq, previous.frontier)
        return PurgePlan(org_id, from_seq, int(row.size), row.note, prefix, kept_leaves(old), manifest_sha256(old))
    return PurgePlan(org_id, 0, int(row.size), row.note, CompactRange(), {}, None)


def _events(conn: Connection, plan: PurgePlan) -> Iterator[tuple[int, bytes, bytes, bytes, str]]:
    stmt = (
        select(EVENTS.c.seq, EVENTS.c.canonical, EVENTS.c.leaf_hash, EVENTS.c.mac, EVENTS.c.hmac_kid)
        .where(EVENTS.c.org_id == plan.org_id, EVENTS.c.seq >= plan.from_seq, EVENTS.c.seq < plan.to_seq)
        .order_by(EVENTS.c.seq)
    )
    for row in conn.execution_options(stream_results=True, yield_per=5000).execute(stmt):
        yield int(row.seq), bytes(row.canonical), bytes(row.leaf_hash), bytes(row.mac), row.hmac_kid


def write_bundle(
    conn: Connection,
    plan: PurgePlan,
    *,
    bundle_id: str,
    directory: Path,
    signer: NoteSigner,
    now: datetime,
) -> tuple[dict[str, Any], Path, Path]:
    """Write the bundle's two files (complete or not at all) and return its signed manifest."""
    directory.mkdir(parents=True, exist_ok=True)
    name = f"ledger-{plan.org_id}-{plan.from_seq}-{plan.to_seq}-{bundle_id}.jsonl.gz"
    payload_path = directory / name
    partial = directory / (name + ".partial")
    frontier = plan.prefix.copy()
    tail_start = plan.to_seq - plan.to_seq % BLOCK
    tail: dict[int, bytes] = {s: h for s, h in plan.prefix_tail.items() if s >= tail_start}
    expected = plan.from_seq
    anchor = b""
    kid = ""
    content = hashlib.sha256()
    with partial.open("wb") as raw:
        # mtime 0 and no file name: the same events always give the same bytes.
        with gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0) as out:
            for seq, data, leaf, mac, event_kid in _events(conn, plan):
                if seq != expected:
                    raise LedgerArchiveError(f"event {expected} is missing: run `gardien audit verify`")
                if hashlib.sha256(b"\x00" + data).digest() != leaf:
                    raise LedgerArchiveError(f"event {seq} does not hash to its leaf: run `gardien audit verify`")
                out.write(data + b"\n")
                content.update(data + b"\n")
                frontier.append(leaf)
                if seq >= tail_start:
                    tail[seq] = leaf
                anchor, kid = mac, event_kid
                expected += 1
        raw.flush()
        os.fsync(raw.fileno())
    if expected != plan.to_seq:
        partial.unlink()
        raise LedgerArchiveError(f"events {expected}..{plan.to_seq - 1} are missing: run `gardien audit verify`")
    checkpoint = Checkpoint.parse(Note.parse(plan.checkpoint).body)
    if checkpoint.size != plan.to_seq or checkpoint.root != frontier.root():
        partial.unlink()
        raise LedgerArchiveError(f"events 0..{plan.to_seq - 1} do not hash to their signed checkpoint")
    payload_sha = hashlib.sha256(partial.read_bytes()).hexdigest()
    manifest: dict[str, Any] = {
        "schema": BUNDLE_SCHEMA,
        "bundle_id": bundle_id,
        "org": plan.org_id,
        "created_at": rfc3339(now),
        "from_seq": plan.from_seq,
        "to_seq": plan.to_seq,
        "count": plan.count,
        "payload": {"name": name, "sha256": payload_sha, "content_sha256": content.hexdigest()},
        "prefix_compact_range": [b64(h) for h in plan.prefix.hashes],
        "compact_range": [b64(h) for h in frontier.hashes],
        "tail_leaves": {"first_seq": tail_start, "hashes": [b64(tail[s]) for s in range(tail_start, plan.to_seq)]},
        "anchor_mac": {"kid": kid, "value": b64(anchor)},
        "checkpoint": plan.checkpoint,
        "previous_manifest_sha256": plan.previous_sha256,
    }
    manifest["signature"] = sign_manifest(manifest, signer)
    manifest_path = directory / (name + ".manifest.json")
    manifest_path.write_bytes(orjson.dumps(manifest, option=orjson.OPT_INDENT_2))
    os.replace(partial, payload_path)
    return manifest, payload_path, manifest_path


def record_purge(conn: Connection, manifest: dict[str, Any], now: datetime) -> None:
    """Inside the transaction that also seals the purge's audit event: the manifest row and min_seq."""
    org_id, to_seq = manifest["org"], int(manifest["to_seq"])
    frontier = b"".join(base64.b64decode(h) for h in manifest["compact_range"])
    conn.execute(
        insert(PURGES).values(
            org_id=org_id,
            to_seq=to_seq,
            from_seq=int(manifest["from_seq"]),
            anchor_mac=base64.b64decode(manifest["anchor_mac"]["value"]),
            frontier=frontier,
            manifest=orjson.dumps(manifest).decode(),
            created_at=now,
        )
    )
    conn.execute(update(HEADS).where(HEADS.c.org_id == org_id).values(min_seq=to_seq))


def delete_purged(engine: Engine, org_id: str, to_seq: int, batch: int = DELETE_BATCH) -> int:
    """Delete the events a recorded purge covers, a batch per transaction; how many were deleted."""
    deleted = 0
    while True:
        with write_transaction(engine) as conn:
            low = conn.execute(
                select(func.min(EVENTS.c.seq)).where(EVENTS.c.org_id == org_id, EVENTS.c.seq < to_seq)
            ).scalar_one_or_none()
            if low is None:
                return deleted
            high = min(int(low) + batch, to_seq)
            result = conn.execute(
                delete(EVENTS).where(EVENTS.c.org_id == org_id, EVENTS.c.seq >= low, EVENTS.c.seq < high)
            )
            deleted += int(result.rowcount)


def unpurged(conn: Connection, org_id: str) -> tuple[int, int] | None:
    """(to_seq, events left below it) when the latest recorded purge has not finished deleting."""
    previous = latest_purge(conn, org_id)
    if previous is None:
        return None
    left = conn.execute(
        select(func.count()).select_from(EVENTS).where(EVENTS.c.org_id == org_id, EVENTS.c.seq < previous.to_seq)
    ).scalar_one()
    return (int(previous.to_seq), int(left)) if left else None
