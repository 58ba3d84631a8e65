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

import multiprocessing
import multiprocessing.forkserver
import os
import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from typing import TypeVar

import orjson
from sqlalchemy import Engine, func, select
from sqlalchemy.engine import Connection

from gardien.audit.checkpoint import Checkpoint, Note, NoteError, NoteVerifier, check_note
from gardien.audit.chunks import MAX_FINDINGS, ChunkResult, ChunkTask, verify_chunk, verify_chunk_in_worker
from gardien.audit.merkle import CompactRange
from gardien.audit.models import CHECKPOINTS, EVENTS, HEADS, PURGES
from gardien.audit.schemas import Finding, VerifyReport
from gardien.audit.sealing import SCHEMA, ZERO_MAC
from gardien.audit.signing import log_origin
from gardien.core.db import fork_safe_threads
from gardien.core.keyring import HmacKey

CHUNK = 1 << 16
PARALLEL_FROM = 4 * CHUNK
_T = TypeVar("_T")


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

    # Notes are parsed first (cheap) for the sizes the chunks must fold roots at; their
    # signatures are checked in this process while the workers verify the chunks.
    notes = _read_checkpoints(conn, org_id, origin)
    if trusted_checkpoint is not None:
        notes.append((None, _parse_note(trusted_checkpoint, origin, "the trusted checkpoint")))
    sizes = sorted(
        {p.checkpoint.size for _, p in notes if isinstance(p, _ParsedNote) and p.checkpoint.size > first_seq}
    )

    last = conn.execute(select(func.max(EVENTS.c.seq)).where(EVENTS.c.org_id == org_id)).scalar_one_or_none()
    end = first_seq if last is None else max(int(last) + 1, first_seq)
    tasks = _plan(conn, org_id, first_seq, end, chunk, sizes, hmac_keys, anchor_mac, initial_frontier)
    own_name = instance_name if keyring_complete else None
    results, signed = _run(
        conn.engine, tasks, workers, lambda: _check_checkpoints(notes, verifiers, findings, own_name)
    )
    signed.sort(key=lambda s: s.size)
    by_size: dict[int, list[_SignedSize]] = {}
    for point in signed:
        if point.size > first_seq:
            by_size.setdefault(point.size, []).append(point)

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
) -> list[ChunkTask]:
    url = conn.engine.url.render_as_string(hide_password=False)
    secrets = {kid: key.secret for kid, key in hmac_keys.items()}
    tasks: list[ChunkTask] = []
    start = first_seq
    while start < end:
        stop = min((start // chunk + 1) * chunk, end)
        first = start == first_seq
        tasks.append(
            ChunkTask(
                url=url,
                org_id=org_id,
                start=start,
                end=stop,
                sizes=[s for s in sizes if start < s <= stop],
                secrets=secrets,
                anchor_mac=anchor_mac if first else None,
                initial=(first_seq, initial_frontier) if first and first_seq % chunk else None,
                chunk=chunk,
                schema=SCHEMA,
            )
        )
        start = stop
    return tasks


def _run(
    engine: Engine, tasks: list[ChunkTask], workers: int | None, meanwhile: Callable[[], _T]
) -> tuple[list[ChunkResult], _T]:
    """The chunks' results, and what `meanwhile` returns, run in this process during the chunks."""
    events = sum(t.end - t.start for t in tasks)
    if workers is None:
        workers = min(os.cpu_count() or 1, 4) if events >= PARALLEL_FROM else 1
    in_memory = engine.dialect.name == "sqlite" and engine.url.database in (None, "", ":memory:")
    if workers <= 1 or len(tasks) <= 1 or in_memory:
        done = meanwhile()
        return [verify_chunk(engine, task) for task in tasks], done
    # A plain fork is fastest, but only safe without other threads: in the server (group commit,
    # uvicorn) a child would inherit their locks in whatever state they were. There a fork server,
    # started once with the chunk module imported, hands out clean children instead. The WAL
    # checkpointer's thread does not count: fork() waits for it to leave SQLite.
    if threading.active_count() - fork_safe_threads() == 1:
        with ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("fork")) as pool:
            pending = pool.map(verify_chunk_in_worker, tasks)
            done = meanwhile()
            return list(pending), done
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(["gardien.audit.chunks"])
    multiprocessing.forkserver.ensure_running()
    # The first fork server of a process takes a while to start: that is the time to check signatures.
    done = meanwhile()
    with ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
        return list(pool.map(verify_chunk_in_worker, tasks)), done


@dataclass(frozen=True)
class _ParsedNote:
    label: str
    note: Note
    checkpoint: Checkpoint


def _parse_note(text: str, origin: str, label: str) -> _ParsedNote | Finding:
    """The note and its checkpoint, or the finding that it is no checkpoint of this log."""
    try:
        note = Note.parse(text)
        checkpoint = Checkpoint.parse(note.body)
    except NoteError as exc:
        return Finding(seq=None, kind="checkpoint_malformed", detail=f"{label} is not a valid signed checkpoint: {exc}")
    if checkpoint.origin != origin:
        return Finding(
            seq=checkpoint.size, kind="checkpoint_origin", detail=f"{label} names another log: {checkpoint.origin}"
        )
    return _ParsedNote(label, note, checkpoint)


_StoredNote = tuple[tuple[int, bytes] | None, _ParsedNote | Finding]  # (stored size and root, note)


def _read_checkpoints(conn: Connection, org_id: str, origin: str) -> list[_StoredNote]:
    rows = conn.execute(
        select(CHECKPOINTS.c.size, CHECKPOINTS.c.root, CHECKPOINTS.c.note)
        .where(CHECKPOINTS.c.org_id == org_id)
        .order_by(CHECKPOINTS.c.size)
    )
    return [((row.size, row.root), _parse_note(row.note, origin, f"checkpoint {row.size}")) for row in rows]


def _check_checkpoints(
    notes: list[_StoredNote],
    verifiers: list[NoteVerifier],
    findings: _Findings,
    own_name: str | None,
) -> list[_SignedSize]:
    signed: list[_SignedSize] = []
    for stored, parsed in notes:
        point = _check_signature(parsed, verifiers, findings, own_name)
        if point is None:
            continue
        if stored is not None and (point.size, point.root) != stored:
            findings.tamper(
                stored[0],
                "checkpoint_mismatch",
                f"checkpoint {stored[0]}: stored columns disagree with its note",
            )
        signed.append(point)
    return signed


def _check_signature(
    parsed: _ParsedNote | Finding,
    verifiers: list[NoteVerifier],
    findings: _Findings,
    own_name: str | None,
) -> _SignedSize | None:
    if isinstance(parsed, Finding):
        findings.tamper(parsed.seq, parsed.kind, parsed.detail)
        return None
    label, note, checkpoint = parsed.label, parsed.note, parsed.checkpoint
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
