"""Offline verification of an export, with nothing but the payload, its manifest and public keys.

This is what an auditor runs on their own machine (``gardien audit verify-export``); it follows
docs/ledger-format.md §5 step by step and needs no database and no secret.
"""

from __future__ import annotations

import base64
import csv
import hashlib
import itertools
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from gardien.audit.canonical import CanonicalError, recanonicalize
from gardien.audit.checkpoint import Checkpoint, Note, NoteError, NoteVerifier, check_note
from gardien.audit.manifest import (
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


def verify_export(payload: Path, manifest_path: Path, verifiers: list[NoteVerifier]) -> ExportCheck:
    check = ExportCheck()
    try:
        manifest: dict[str, Any] = orjson.loads(manifest_path.read_bytes())
    except (OSError, orjson.JSONDecodeError) as exc:
        check.bad(f"manifest is not readable JSON: {exc}")
        return check
    if not isinstance(manifest, dict) or manifest.get("schema") != MANIFEST_SCHEMA:
        check.bad(f"manifest schema is not {MANIFEST_SCHEMA}")
        return check

    verifier = verifier_for(manifest, verifiers)
    signature = manifest.get("signature") or {}
    if verifier is None:
        check.bad(f"manifest is signed by {signature.get('key_name')}+{signature.get('key_id')}, not a trusted key")
    else:
        try:
            raw = base64.b64decode(signature.get("value", ""), validate=True)
            valid = verifier.verify_bytes(manifest_signing_bytes(manifest), raw)
        except (ValueError, CanonicalError):
            valid = False
        if valid:
            check.good(f"manifest signature by {verifier.vkey().split('+')[0]}+{verifier.key_id.hex()}")
        else:
            check.bad("manifest signature does not verify: the manifest was altered")

    actual = _sha256_file(payload)
    if actual == manifest.get("payload_sha256"):
        check.good(f"payload SHA-256 {actual}")
    else:
        check.bad(f"payload SHA-256 is {actual}, the manifest says {manifest.get('payload_sha256')}")

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
