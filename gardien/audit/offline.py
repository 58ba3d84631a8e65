"""Offline verification of an export, with nothing but the payload, its manifest and public keys.

This is what an auditor runs on their own machine (``gardien audit verify-export``); it follows
docs/ledger-format.md §5 step by step and needs no database and no secret.
"""

from __future__ import annotations

import base64
import csv
import gzip
import hashlib
import itertools
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from gardien.audit.canonical import CanonicalError, recanonicalize
from gardien.audit.checkpoint import Checkpoint, Note, NoteError, NoteVerifier, check_note
from gardien.audit.manifest import (
    BLOCK,
    BUNDLE_SCHEMA,
    CSV_COLUMNS,
    MANIFEST_SCHEMA,
    iter_payload_events,
    manifest_signing_bytes,
    verifier_for,
)
from gardien.audit.merkle import CompactRange


@dataclass
class ExportCheck:
    ok: bool = True
    count: int = 0
    root_checked: bool = False
    passed: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    def good(self, message: str) -> None:
        self.passed.append(message)

    def bad(self, message: str) -> None:
        self.ok = False
        self.problems.append(message)

    def lines(self) -> list[str]:
        verdict = "VALID" if self.ok else "INVALID"
        return [verdict] + [f"  ok   {m}" for m in self.passed] + [f"  FAIL {m}" for m in self.problems]


def _sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _opened(
    payload: Path, manifest_path: Path, verifiers: list[NoteVerifier], schema: str, sha_of: Any
) -> tuple[ExportCheck, dict[str, Any] | None]:
    """The manifest read, its signature and the payload's SHA-256 checked; None when unreadable."""
    check = ExportCheck()
    try:
        manifest: dict[str, Any] = orjson.loads(manifest_path.read_bytes())
    except (OSError, orjson.JSONDecodeError) as exc:
        check.bad(f"manifest is not readable JSON: {exc}")
        return check, None
    if not isinstance(manifest, dict) or manifest.get("schema") != schema:
        check.bad(f"manifest schema is not {schema}")
        return check, None
    _check_signature(manifest, verifiers, check)
    actual = _sha256_file(payload)
    expected = sha_of(manifest)
    if actual == expected:
        check.good(f"payload SHA-256 {actual}")
    else:
        check.bad(f"payload SHA-256 is {actual}, the manifest says {expected}")
    return check, manifest


def verify_export(payload: Path, manifest_path: Path, verifiers: list[NoteVerifier]) -> ExportCheck:
    check, manifest = _opened(payload, manifest_path, verifiers, MANIFEST_SCHEMA, lambda m: m.get("payload_sha256"))
    if manifest is None:
        return check

    checkpoint = _check_checkpoint(manifest, verifiers, check)
    fmt = manifest.get("format")
    org = manifest.get("org")
    leaves: list[bytes] = []
    seqs: list[int] = []
    try:
        if fmt in ("json", "jsonl"):
            for data in iter_payload_events(payload, str(fmt)):
                event = orjson.loads(data)
                if recanonicalize(event) != data:
                    check.bad(f"event {event.get('seq')} is not in canonical form")
                if event.get("org") != org:
                    check.bad(f"event {event.get('seq')} belongs to another organisation")
                seqs.append(int(event["seq"]))
                leaves.append(hashlib.sha256(b"\x00" + data).digest())
        elif fmt == "csv":
            with payload.open(newline="", encoding="utf-8") as handle:
                rows = csv.reader(handle)
                if next(rows, None) != CSV_COLUMNS:
                    check.bad("CSV header differs from the documented columns")
                for row in rows:
                    seqs.append(int(row[0]))
                    leaves.append(bytes.fromhex(row[-1]))
        else:
            check.bad(f"unknown payload format {fmt!r}")
    except (ValueError, KeyError, TypeError, IndexError, OSError, CanonicalError) as exc:
        check.bad(f"payload is malformed: {exc}")
        return check

    check.count = len(seqs)
    if any(b <= a for a, b in itertools.pairwise(seqs)):
        check.bad("events are not in strictly increasing sequence order")
    expected = (manifest.get("count"), manifest.get("first_seq"), manifest.get("last_seq"))
    found = (len(seqs), seqs[0] if seqs else None, seqs[-1] if seqs else None)
    if expected == found:
        check.good(f"{len(seqs)} events, seq {found[1]}..{found[2]}, as the manifest says")
    else:
        check.bad(f"payload holds count/first/last {found}, the manifest says {expected}")

    if checkpoint is not None:
        if seqs and seqs[-1] >= checkpoint.size:
            check.bad(f"event {seqs[-1]} is beyond the covering checkpoint of size {checkpoint.size}")
        if seqs == list(range(checkpoint.size)):
            root = CompactRange()
            root.extend(leaves)
            if root.root() == checkpoint.root:
                check.root_checked = True
                check.good(f"tree root of all {checkpoint.size} events equals the signed checkpoint")
            else:
                check.bad("the events do not hash to the signed checkpoint root")
    return check


def _check_checkpoint(manifest: dict[str, Any], verifiers: list[NoteVerifier], check: ExportCheck) -> Checkpoint | None:
    try:
        note = Note.parse(str(manifest.get("checkpoint", "")))
        checkpoint = Checkpoint.parse(note.body)
    except NoteError as exc:
        check.bad(f"covering checkpoint is malformed: {exc}")
        return None
    if not checkpoint.origin.endswith(f"/audit/{manifest.get('org')}"):
        check.bad(f"covering checkpoint is for another log: {checkpoint.origin}")
        return None
    verdict = check_note(note, verifiers)
    if verdict.status != "verified":
        check.bad(f"covering checkpoint: {verdict.detail}")
        return None
    check.good(f"covering checkpoint of size {checkpoint.size} signed by a trusted key")
    return checkpoint


def verify_bundle(payload: Path, manifest_path: Path, verifiers: list[NoteVerifier]) -> ExportCheck:
    """Check an archive bundle (docs/ledger-format.md §7) with only public keys."""
    check, manifest = _opened(
        payload, manifest_path, verifiers, BUNDLE_SCHEMA, lambda m: (m.get("payload") or {}).get("sha256")
    )
    if manifest is None:
        return check
    checkpoint = _check_checkpoint(manifest, verifiers, check)
    try:
        from_seq, to_seq = int(manifest["from_seq"]), int(manifest["to_seq"])
        prefix = CompactRange(from_seq, [base64.b64decode(h) for h in manifest["prefix_compact_range"]])
        kept = manifest["tail_leaves"]
        tail_first = int(kept["first_seq"])
        tail = [base64.b64decode(h) for h in kept["hashes"]]
        frontier = [base64.b64decode(h) for h in manifest["compact_range"]]
    except (KeyError, TypeError, ValueError) as exc:
        check.bad(f"manifest is malformed: {exc}")
        return check
    org = manifest.get("org")
    expected = from_seq
    leaves: dict[int, bytes] = {}
    content = hashlib.sha256()
    try:
        with gzip.open(payload, "rb") as handle:
            for line in handle:
                content.update(line)
                if not line.endswith(b"\n"):
                    raise ValueError("the JSONL payload does not end with a newline")
                data = line[:-1]
                event = orjson.loads(data)
                if recanonicalize(event) != data:
                    check.bad(f"event {event.get('seq')} is not in canonical form")
                if event.get("org") != org:
                    check.bad(f"event {event.get('seq')} belongs to another organisation")
                if event.get("seq") != expected:
                    check.bad(f"event {expected} expected, found {event.get('seq')}")
                    return check
                leaf = hashlib.sha256(b"\x00" + data).digest()
                prefix.append(leaf)
                if expected >= tail_first:
                    leaves[expected] = leaf
                expected += 1
    except (OSError, EOFError, ValueError, KeyError, TypeError, orjson.JSONDecodeError, CanonicalError) as exc:
        check.bad(f"payload is malformed: {exc}")
        return check
    check.count = expected - from_seq
    if (expected, check.count) == (to_seq, manifest.get("count")):
        check.good(f"{check.count} events, seq {from_seq}..{to_seq - 1}, as the manifest says")
    else:
        check.bad(f"payload ends at seq {expected}, the manifest says {to_seq} ({manifest.get('count')} events)")
    if content.hexdigest() != (manifest.get("payload") or {}).get("content_sha256"):
        check.bad("the decompressed payload differs from the manifest's content SHA-256")
    if prefix.hashes == frontier:
        check.good("compact range of the purged prefix recomputed from the events")
    else:
        check.bad("the events do not give the manifest's compact range")
    if checkpoint is not None:
        if checkpoint.size == to_seq and checkpoint.root == prefix.root():
            check.root_checked = True
            check.good(f"tree root of events 0..{to_seq - 1} equals the signed checkpoint")
        else:
            check.bad("the events (after the earlier prefix) do not hash to the signed checkpoint root")
    if tail_first != to_seq - to_seq % BLOCK or len(tail) != to_seq - tail_first:
        check.bad(f"the kept leaf hashes do not cover the last partial block of {BLOCK}")
    elif any(leaves.get(s, tail[s - tail_first]) != tail[s - tail_first] for s in range(tail_first, to_seq)):
        check.bad("the kept leaf hashes differ from the events")
    else:
        check.good(f"{len(tail)} leaf hashes kept for later proofs match the events")
    return check


def _check_signature(manifest: dict[str, Any], verifiers: list[NoteVerifier], check: ExportCheck) -> None:
    verifier = verifier_for(manifest, verifiers)
    signature = manifest.get("signature") or {}
    if verifier is None:
        check.bad(f"manifest is signed by {signature.get('key_name')}+{signature.get('key_id')}, not a trusted key")
        return
    try:
        raw = base64.b64decode(signature.get("value", ""), validate=True)
        valid = verifier.verify_bytes(manifest_signing_bytes(manifest), raw)
    except (ValueError, CanonicalError):
        valid = False
    if valid:
        check.good(f"manifest signature by {verifier.vkey().split('+')[0]}+{verifier.key_id.hex()}")
    else:
        check.bad("manifest signature does not verify: the manifest was altered")
