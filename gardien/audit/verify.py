"""Recompute an organisation's ledger from its rows and say whether it is intact.

The verdict is one of:
- ``ok``: every event, MAC, checkpoint signature and root agrees;
- ``tampered``: something disagrees; the first broken sequence number and why are given;
- ``unverifiable``: nothing disagrees, but some part could not be checked because a key is
  missing. A missing key is never reported as tampering.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime

import orjson
from sqlalchemy import select
from sqlalchemy.engine import Connection

from gardien.audit.checkpoint import Checkpoint, Note, NoteError, NoteVerifier, check_note
from gardien.audit.merkle import CompactRange
from gardien.audit.models import (
    CHECKPOINTS,
    EVENTS,
    HEADS,
    PURGES,
)
from gardien.audit.schemas import Finding, VerifyReport
from gardien.audit.sealing import SCHEMA, ZERO_MAC
from gardien.audit.signing import log_origin
from gardien.core.keyring import HmacKey

MAX_FINDINGS = 50


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


def _naive_utc(text: str) -> datetime:
    return datetime.fromisoformat(text).astimezone(UTC).replace(tzinfo=None)


def verify_org(
    conn: Connection,
    org_id: str,
    *,
    instance_name: str,
    hmac_keys: dict[str, HmacKey],
    verifiers: Iterable[NoteVerifier],
    trusted_checkpoint: str | None = None,
) -> VerifyReport:
    started = time.perf_counter()
    verifiers = list(verifiers)
    findings = _Findings()
    origin = log_origin(instance_name, org_id)

    purge = conn.execute(
        select(PURGES).where(PURGES.c.org_id == org_id).order_by(PURGES.c.to_seq.desc()).limit(1)
    ).one_or_none()
    if purge is None:
        first_seq, frontier, prev_mac = 0, CompactRange(), ZERO_MAC
    else:
        first_seq = purge.to_seq
        frontier = CompactRange.from_bytes(purge.to_seq, purge.frontier)
        prev_mac = purge.anchor_mac

    signed = _check_checkpoints(conn, org_id, origin, verifiers, findings)
    if trusted_checkpoint is not None:
        outside = _check_note(trusted_checkpoint, origin, verifiers, findings, "the trusted checkpoint")
        if outside is not None:
            signed.append(outside)
    signed.sort(key=lambda s: s.size)
    targets = [s for s in signed if s.size > first_seq]
    target_index = 0

    # Read columns unconverted: the verifier compares raw stored values, and skipping the
    # datetime type decorator keeps the loop cheap.
    stmt = (
        select(
            EVENTS.c.seq,
            EVENTS.c.id,
            EVENTS.c.canonical,
            EVENTS.c.leaf_hash,
            EVENTS.c.mac,
            EVENTS.c.hmac_kid,
            EVENTS.c.module,
            EVENTS.c.action,
            EVENTS.c.crud,
            EVENTS.c.outcome,
            EVENTS.c.actor_type,
            EVENTS.c.actor_id,
            EVENTS.c.target_type,
            EVENTS.c.target_id,
            EVENTS.c.occurred_at,
            EVENTS.c.recorded_at,
        )
        .where(EVENTS.c.org_id == org_id)
        .order_by(EVENTS.c.seq)
    )
    expected = first_seq
    checked = 0
    tree_ok = True
    missing_kids: set[str] = set()
    sha256 = hashlib.sha256
    loads = orjson.loads
    for row in conn.execution_options(stream_results=True, yield_per=5000).execute(stmt):
        seq = row.seq
        if seq != expected:
            if seq > expected:
                findings.tamper(expected, "missing_event", f"events {expected}..{seq - 1} are missing")
            else:
                findings.tamper(seq, "unexpected_event", f"event {seq} appears again after {expected - 1}")
            tree_ok = False
            expected = max(expected, seq + 1)
            prev_mac = row.mac
            continue
        expected += 1
        checked += 1
        data = row.canonical
        leaf = sha256(b"\x00" + data).digest()
        try:
            doc = loads(data)
            actor = doc["actor"]
            target = doc.get("target") or {}
            agree = (
                doc["seq"] == seq
                and doc["org"] == org_id
                and doc["schema"] == SCHEMA
                and doc["id"] == row.id
                and doc["module"] == row.module
                and doc["action"] == row.action
                and doc["crud"] == row.crud
                and doc["outcome"] == row.outcome
                and actor["type"] == row.actor_type
                and actor["id"] == row.actor_id
                and target.get("type") == row.target_type
                and target.get("id") == row.target_id
                and _naive_utc(doc["occurred_at"]) == row.occurred_at.replace(tzinfo=None)
                and _naive_utc(doc["recorded_at"]) == row.recorded_at.replace(tzinfo=None)
            )
        except (ValueError, KeyError, TypeError, AttributeError):
            agree = False
        if not agree:
            findings.tamper(seq, "content_mismatch", "the stored columns disagree with the sealed event")
        if row.leaf_hash != leaf:
            findings.tamper(seq, "leaf_mismatch", "the stored leaf hash is not the hash of the event")
        key = hmac_keys.get(row.hmac_kid)
        if key is None:
            if row.hmac_kid not in missing_kids:
                missing_kids.add(row.hmac_kid)
                findings.cannot(seq, "unknown_hmac_key", f"HMAC key {row.hmac_kid!r} is not in the keyring")
        elif key.digest(prev_mac + leaf) != row.mac:
            findings.tamper(seq, "mac_mismatch", f"the MAC chain breaks at event {seq}")
        prev_mac = row.mac
        frontier.append(leaf)
        while target_index < len(targets) and targets[target_index].size <= frontier.size:
            point = targets[target_index]
            target_index += 1
            if point.size == frontier.size and tree_ok and frontier.root() != point.root:
                findings.tamper(
                    seq,
                    "root_mismatch",
                    f"the tree of {point.size} events does not match {point.source}",
                )

    size = expected
    for point in targets[target_index:]:
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
        seconds=round(time.perf_counter() - started, 3),
    )


def _check_checkpoints(
    conn: Connection,
    org_id: str,
    origin: str,
    verifiers: list[NoteVerifier],
    findings: _Findings,
) -> list[_SignedSize]:
    signed: list[_SignedSize] = []
    rows = conn.execute(
        select(CHECKPOINTS.c.size, CHECKPOINTS.c.root, CHECKPOINTS.c.note)
        .where(CHECKPOINTS.c.org_id == org_id)
        .order_by(CHECKPOINTS.c.size)
    )
    for row in rows:
        point = _check_note(row.note, origin, verifiers, findings, f"checkpoint {row.size}")
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
    text: str, origin: str, verifiers: list[NoteVerifier], findings: _Findings, label: str
) -> _SignedSize | None:
    try:
        note = Note.parse(text)
        checkpoint = Checkpoint.parse(note.body)
    except NoteError as exc:
        findings.tamper(None, "checkpoint_malformed", f"{label} is not a valid signed checkpoint: {exc}")
        return None
    if checkpoint.origin != origin:
        findings.tamper(
            checkpoint.size, "checkpoint_origin", f"{label} names another log: {checkpoint.origin}"
        )
        return None
    verdict = check_note(note, verifiers)
    if verdict.status == "invalid":
        findings.tamper(checkpoint.size, "checkpoint_signature", f"{label}: {verdict.detail}")
        return None
    if verdict.status == "unknown_key":
        findings.cannot(checkpoint.size, "unknown_signing_key", f"{label}: {verdict.detail}")
        return None
    return _SignedSize(checkpoint.size, checkpoint.root, label)
