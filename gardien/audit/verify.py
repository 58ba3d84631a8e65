"""Recompute an organisation's ledger from its rows and say whether it is intact.

The verdict is one of:
- ``ok``: every event, MAC, checkpoint signature and root agrees;
- ``tampered``: something disagrees; the first broken sequence number and why are given;
- ``unverifiable``: nothing disagrees, but some part could not be checked because a key is
  missing. A missing key is never reported as tampering.

Events are checked in chunks of ``CHUNK`` sequence numbers aligned on multiples of ``CHUNK``, so
that each full chunk is one perfect subtree of the Merkle tree. Chunks are independent (each MAC
is checked against the stored MAC before it), so large ledgers are verified by one process per
core; the parent then folds the chunks' subtree roots into the root of every checkpoint.
"""

from __future__ import annotations

import hashlib
import multiprocessing
import os
import threading
import time
from collections.abc import Iterable, Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import orjson
from sqlalchemy import Engine, create_engine, func, select
from sqlalchemy.engine import Connection
from sqlalchemy.pool import NullPool

from gardien.audit.checkpoint import Checkpoint, Note, NoteError, NoteVerifier, check_note
from gardien.audit.merkle import CompactRange, parent_level
from gardien.audit.models import CHECKPOINTS, EVENTS, HEADS, PURGES
from gardien.audit.schemas import Finding, VerifyReport
from gardien.audit.sealing import SCHEMA, ZERO_MAC
from gardien.audit.signing import log_origin
from gardien.core.db import fork_safe_threads
from gardien.core.keyring import HmacKey

CHUNK = 1 << 16
PARALLEL_FROM = 4 * CHUNK
MAX_FINDINGS = 50
ROW_SQL = (
    "SELECT seq, id, canonical, leaf_hash, mac, hmac_kid, module, action, crud, outcome, actor_type,"
    " actor_id, target_type, target_id, occurred_at, recorded_at FROM audit_events"
    " WHERE org_id = {p} AND seq >= {p} AND seq < {p} ORDER BY seq"
)
MAC_SQL = "SELECT mac FROM audit_events WHERE org_id = {p} AND seq = {p}"


@dataclass
class _Findings:
    tampered: list[Finding] = field(default_factory=list)
    unverifiable: list[Finding] = field(default_factory=list)

    def tamper(self, seq: int | None, kind: str, detail: str) -> None:
        if len(self.tampered) < MAX_FINDINGS:
            self.tampered.append(Finding(seq=seq, kind=kind, detail=detail))

    def cannot(self, seq: int | None, kind: str, detail: str) -> None:
        if len(self.unverifiable) < MAX_FINDINGS:
            self.unverifiable.append(Finding(seq=seq, kind=kind, detail=detail))


@dataclass(frozen=True)
class _SignedSize:
    size: int
    root: bytes
    source: str


@dataclass
class _ChunkTask:
    url: str
    org_id: str
    start: int
    end: int
    sizes: list[int]
    secrets: dict[str, bytes]
    anchor_mac: bytes | None  # the MAC before `start` when it is not in the table (start of the ledger)
    initial: tuple[int, bytes] | None  # a compact range to continue (an unaligned first chunk)
    chunk: int = CHUNK


@dataclass
class _ChunkResult:
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


def _same_time_sqlite(text: str, stored: Any) -> bool:
    # Gardien stores SQLite times as "YYYY-MM-DD HH:MM:SS.ffffff"; the event says "…T…Z".
    return bool(stored == text[:10] + " " + text[11:26])


def _same_time_postgres(text: str, stored: Any) -> bool:
    return bool(stored == datetime.fromisoformat(text[:26]))


def _rows(dbapi: Any, sqlite: bool, task: _ChunkTask) -> Iterator[tuple[Any, ...]]:
    marker = "?" if sqlite else "%s"
    sql = ROW_SQL.format(p=marker)
    params = (task.org_id, task.start, task.end)
    if sqlite:
        cursor = dbapi.cursor()
        cursor.arraysize = 4096
        cursor.execute(sql, params)
    else:
        # A server-side cursor streams the chunk instead of loading it whole.
        cursor = dbapi.cursor(name=f"gardien_verify_{task.start}")
        cursor.itersize = 4096
        cursor.execute(sql, params)
    try:
        while batch := cursor.fetchmany(4096):
            yield from batch
    finally:
        cursor.close()


def _previous_mac(dbapi: Any, sqlite: bool, task: _ChunkTask) -> bytes | None:
    if task.anchor_mac is not None:
        return task.anchor_mac
    cursor = dbapi.cursor()
    try:
        cursor.execute(MAC_SQL.format(p="?" if sqlite else "%s"), (task.org_id, task.start - 1))
        row = cursor.fetchone()
    finally:
        cursor.close()
    return bytes(row[0]) if row else None


def _verify_chunk_with(engine: Engine, task: _ChunkTask) -> _ChunkResult:
    sqlite = engine.dialect.name == "sqlite"
    same_time = _same_time_sqlite if sqlite else _same_time_postgres
    keys = {kid: HmacKey(kid, secret) for kid, secret in task.secrets.items()}
    result = _ChunkResult(task.start, task.end)
    sizes = set(task.sizes)
    leaves: list[bytes] = []
    org_id = task.org_id
    sha256 = hashlib.sha256
    loads = orjson.loads
    dbapi = engine.raw_connection()
    try:
        prev_mac = _previous_mac(dbapi, sqlite, task)
        expected = task.start
        for row in _rows(dbapi, sqlite, task):
            (seq, event_id, data, stored_leaf, mac, kid, module, action, crud, outcome, actor_type,
             actor_id, target_type, target_id, occurred, recorded) = row  # fmt: skip
            data = bytes(data)
            mac = bytes(mac)
            if seq != expected:
                result.tamper(expected, "missing_event", f"events {expected}..{seq - 1} are missing")
                result.tree_ok = False
                expected = seq
            expected += 1
            result.checked += 1
            leaf = sha256(b"\x00" + data).digest()
            try:
                doc = loads(data)
                actor = doc["actor"]
                target = doc.get("target") or {}
                agree = (
                    doc["seq"] == seq
                    and doc["org"] == org_id
                    and doc["schema"] == SCHEMA
                    and doc["id"] == event_id
                    and doc["module"] == module
                    and doc["action"] == action
                    and doc["crud"] == crud
                    and doc["outcome"] == outcome
                    and actor["type"] == actor_type
                    and actor["id"] == actor_id
                    and target.get("type") == target_type
                    and target.get("id") == target_id
                    and same_time(doc["occurred_at"], occurred)
                    and same_time(doc["recorded_at"], recorded)
                )
            except (ValueError, KeyError, TypeError, AttributeError):
                agree = False
            if not agree:
                result.tamper(seq, "content_mismatch", "the stored columns disagree with the sealed event")
            if bytes(stored_leaf) != leaf:
                result.tamper(seq, "leaf_mismatch", "the stored leaf hash is not the hash of the event")
            key = keys.get(kid)
            if key is None:
                result.missing_kids.setdefault(kid, seq)
            elif prev_mac is None or key.digest(prev_mac + leaf) != mac:
                result.tamper(seq, "mac_mismatch", f"the MAC chain breaks at event {seq}")
            prev_mac = mac
            leaves.append(leaf)
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


def _fold_chunk(task: _ChunkTask, leaves: list[bytes], sizes: set[int], result: _ChunkResult) -> None:
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


def _verify_chunk_in_worker(task: _ChunkTask) -> _ChunkResult:
    engine = _worker_engines.get(task.url)
    if engine is None:
        engine = _worker_engines[task.url] = create_engine(task.url, poolclass=NullPool)
    return _verify_chunk_with(engine, task)


def verify_org(
    conn: Connection,
    org_id: str,
    *,
    instance_name: str,
    hmac_keys: dict[str, HmacKey],
    verifiers: Iterable[NoteVerifier],
    trusted_checkpoint: str | None = None,
    workers: int | None = None,
    chunk: int = CHUNK,
    keyring_complete: bool = False,
) -> VerifyReport:
    """Verify one organisation's ledger. `workers` forces the process count (1 = in-process).

    `keyring_complete` says the verifiers are every key this instance ever signed with (the
    keyring never drops a public key): a signature under the instance's own key name by any other
    key is then a forgery, not merely a key we lack.
    """
    if chunk <= 0 or chunk & (chunk - 1):
        raise ValueError("chunk must be a power of two: full chunks are perfect subtrees")
    started = time.perf_counter()
    verifiers = list(verifiers)
    findings = _Findings()
    origin = log_origin(instance_name, org_id)

    purge = conn.execute(
        select(PURGES).where(PURGES.c.org_id == org_id).order_by(PURGES.c.to_seq.desc()).limit(1)
    ).one_or_none()
    first_seq = purge.to_seq if purge is not None else 0
    bundle = _bundle_name(purge.manifest) if purge is not None else None
    anchor_mac = purge.anchor_mac if purge is not None else ZERO_MAC
    initial_frontier = purge.frontier if purge is not None else b""

    own_name = instance_name if keyring_complete else None
    signed = _check_checkpoints(conn, org_id, origin, verifiers, findings, own_name)
    if trusted_checkpoint is not None:
        outside = _check_note(trusted_checkpoint, origin, verifiers, findings, "the trusted checkpoint", own_name)
        if outside is not None:
            signed.append(outside)
    signed.sort(key=lambda s: s.size)
    by_size: dict[int, list[_SignedSize]] = {}
    for point in signed:
        if point.size > first_seq:
            by_size.setdefault(point.size, []).append(point)

    last = conn.execute(select(func.max(EVENTS.c.seq)).where(EVENTS.c.org_id == org_id)).scalar_one_or_none()
    end = first_seq if last is None else max(int(last) + 1, first_seq)
    tasks = _plan(conn, org_id, first_seq, end, chunk, sorted(by_size), hmac_keys, anchor_mac, initial_frontier)
    results = _run(conn.engine, tasks, workers)

    checked = 0
    tree_ok = True
    # The tree above chunk level, one "leaf" per full chunk. A purge that ended on a chunk
    # boundary leaves a compact range made only of subtrees of chunk size or larger.
    upper = CompactRange()
    if first_seq % chunk == 0:
        upper = CompactRange.from_bytes(first_seq // chunk, initial_frontier)
    missing_kids: dict[str, int] = {}
    for task, result in zip(tasks, results, strict=True):
        checked += result.checked
        for seq, kind, detail in result.tampered:
            findings.tamper(seq, kind, detail)
        for kid, seq in result.missing_kids.items():
            missing_kids.setdefault(kid, seq)
        tree_ok = tree_ok and result.tree_ok
        if not tree_ok:
            continue  # after a gap every later root differs; the gap is the finding
        for size, (local_size, local_hashes) in sorted(result.frontiers.items()):
            if task.initial is not None:
                root = CompactRange.from_bytes(local_size, local_hashes).root()
            elif local_size == chunk:
                # A checkpoint on the chunk boundary: the chunk is one more subtree of the upper tree.
                whole = upper.copy()
                whole.append(local_hashes)
                root = whole.root()
            else:
                root = CompactRange.from_bytes(upper.size * chunk + local_size, upper.to_bytes() + local_hashes).root()
            for point in by_size.get(size, []):
                if root != point.root:
                    findings.tamper(
                        size - 1, "root_mismatch", f"the tree of {size} events does not match {point.source}"
                    )
        if task.initial is not None:
            if task.end % chunk == 0:
                upper = CompactRange.from_bytes(task.end // chunk, result.final[1])
        elif result.perfect is not None:
            upper.append(result.perfect)
    for kid, seq in sorted(missing_kids.items(), key=lambda item: item[1]):
        findings.cannot(seq, "unknown_hmac_key", f"HMAC key {kid!r} is not in the keyring")

    size = end
    for point in signed:
        if point.size > size:
            findings.tamper(
                size,
                "truncated",
                f"{point.source} covers {point.size} events but the ledger holds only {size}",
            )
    head = conn.execute(select(HEADS.c.size).where(HEADS.c.org_id == org_id)).scalar_one_or_none()
    if head is not None and head > size:
        findings.tamper(size, "truncated", f"the ledger head records {head} events but only {size} remain")

    findings.tampered.sort(key=lambda f: (f.seq is None, f.seq or 0))
    last_signed = max((s.size for s in signed), default=0)
    status = "tampered" if findings.tampered else "unverifiable" if findings.unverifiable else "ok"
    broken = next((f.seq for f in findings.tampered if f.seq is not None), None)
    return VerifyReport(
        org=org_id,
        status=status,
        events_checked=checked,
        checkpoints_checked=len(signed),
        first_seq=first_seq,
        size=size,
        first_broken_seq=broken,
        findings=findings.tampered + findings.unverifiable,
        unsealed_tail=max(0, size - last_signed),
        purged_before=first_seq,
        purge_bundle=bundle,
        seconds=round(time.perf_counter() - started, 3),
    )


def _bundle_name(manifest: str) -> str | None:
    try:
        name = orjson.loads(manifest).get("payload", {}).get("name")
    except (orjson.JSONDecodeError, AttributeError):
        return None
    return name if isinstance(name, str) else None


def _plan(
    conn: Connection,
    org_id: str,
    first_seq: int,
    end: int,
    chunk: int,
    sizes: list[int],
    hmac_keys: dict[str, HmacKey],
    anchor_mac: bytes,
    initial_frontier: bytes,
) -> list[_ChunkTask]:
    url = conn.engine.url.render_as_string(hide_password=False)
    secrets = {kid: key.secret for kid, key in hmac_keys.items()}
    tasks: list[_ChunkTask] = []
    start = first_seq
    while start < end:
        stop = min((start // chunk + 1) * chunk, end)
        first = start == first_seq
        tasks.append(
            _ChunkTask(
                url=url,
                org_id=org_id,
                start=start,
                end=stop,
                sizes=[s for s in sizes if start < s <= stop],
                secrets=secrets,
                anchor_mac=anchor_mac if first else None,
                initial=(first_seq, initial_frontier) if first and first_seq % chunk else None,
                chunk=chunk,
            )
        )
        start = stop
    return tasks


def _run(engine: Engine, tasks: list[_ChunkTask], workers: int | None) -> list[_ChunkResult]:
    events = sum(t.end - t.start for t in tasks)
    if workers is None:
        workers = min(os.cpu_count() or 1, 4) if events >= PARALLEL_FROM else 1
    in_memory = engine.dialect.name == "sqlite" and engine.url.database in (None, "", ":memory:")
    if workers <= 1 or len(tasks) <= 1 or in_memory:
        return [_verify_chunk_with(engine, task) for task in tasks]
    # A plain fork is fastest, but only safe without other threads: in the server (group commit,
    # uvicorn) a child would inherit their locks in whatever state they were. There a fork server,
    # started once with this module imported, hands out clean children instead. The WAL
    # checkpointer's thread does not count: fork() waits for it to leave SQLite.
    context: multiprocessing.context.BaseContext
    if threading.active_count() - fork_safe_threads() == 1:
        context = multiprocessing.get_context("fork")
    else:
        context = multiprocessing.get_context("forkserver")
        context.set_forkserver_preload([__name__])
    with ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
        return list(pool.map(_verify_chunk_in_worker, tasks))


def _check_checkpoints(
    conn: Connection,
    org_id: str,
    origin: str,
    verifiers: list[NoteVerifier],
    findings: _Findings,
    own_name: str | None,
) -> list[_SignedSize]:
    signed: list[_SignedSize] = []
    rows = conn.execute(
        select(CHECKPOINTS.c.size, CHECKPOINTS.c.root, CHECKPOINTS.c.note)
        .where(CHECKPOINTS.c.org_id == org_id)
        .order_by(CHECKPOINTS.c.size)
    )
    for row in rows:
        point = _check_note(row.note, origin, verifiers, findings, f"checkpoint {row.size}", own_name)
        if point is None:
            continue
        if point.size != row.size or point.root != row.root:
            findings.tamper(
                row.size,
                "checkpoint_mismatch",
                f"checkpoint {row.size}: stored columns disagree with its note",
            )
        signed.append(point)
    return signed


def _check_note(
    text: str,
    origin: str,
    verifiers: list[NoteVerifier],
    findings: _Findings,
    label: str,
    own_name: str | None = None,
) -> _SignedSize | None:
    try:
        note = Note.parse(text)
        checkpoint = Checkpoint.parse(note.body)
    except NoteError as exc:
        findings.tamper(None, "checkpoint_malformed", f"{label} is not a valid signed checkpoint: {exc}")
        return None
    if checkpoint.origin != origin:
        findings.tamper(checkpoint.size, "checkpoint_origin", f"{label} names another log: {checkpoint.origin}")
        return None
    verdict = check_note(note, verifiers)
    if verdict.status == "invalid":
        findings.tamper(checkpoint.size, "checkpoint_signature", f"{label}: {verdict.detail}")
        return None
    if verdict.status == "unknown_key" and any(sig.name == own_name for sig in note.signatures):
        findings.tamper(
            checkpoint.size,
            "checkpoint_signature",
            f"{label} is signed under this instance's name {own_name!r} by a key it never had",
        )
        return None
    if verdict.status == "unknown_key":
        findings.cannot(checkpoint.size, "unknown_signing_key", f"{label}: {verdict.detail}")
        return None
    return _SignedSize(checkpoint.size, checkpoint.root, label)
