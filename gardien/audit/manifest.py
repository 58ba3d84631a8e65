"""The export file formats and manifest signature: pure, so offline verifiers need no database code.

Specified in docs/ledger-format.md §5.
"""

from __future__ import annotations

import base64
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson

from gardien.audit.canonical import canonical_bytes, recanonicalize
from gardien.audit.checkpoint import NoteSigner, NoteVerifier
from gardien.audit.merkle import STRIDE

MANIFEST_SCHEMA = "gardien.audit.export/1"
BUNDLE_SCHEMA = "gardien.audit.bundle/1"
# Gardien stores tree nodes every STRIDE levels: proofs of later events may need the leaves of the
# block of 2^STRIDE leaves that a purge boundary cuts, so an archive bundle's manifest keeps them.
BLOCK = 1 << STRIDE
CSV_COLUMNS = [
    "seq",
    "id",
    "occurred_at",
    "recorded_at",
    "module",
    "action",
    "crud",
    "outcome",
    "reason",
    "actor_type",
    "actor_id",
    "actor_display",
    "target_type",
    "target_id",
    "target_display",
    "source_ip",
    "source_user_agent",
    "request_id",
    "legal_basis",
    "data_categories",
    "changes",
    "fields",
    "leaf_hash",
]


def kept_leaves(manifest: dict[str, Any]) -> dict[int, bytes]:
    """An archive manifest's `tail_leaves`, by sequence number."""
    tail = manifest.get("tail_leaves") or {}
    first = int(tail.get("first_seq", 0))
    return {first + i: base64.b64decode(h) for i, h in enumerate(tail.get("hashes", []))}


def manifest_signing_bytes(manifest: dict[str, Any]) -> bytes:
    return canonical_bytes({k: v for k, v in manifest.items() if k != "signature"})


def sign_manifest(manifest: dict[str, Any], signer: NoteSigner) -> dict[str, str]:
    signature = signer.sign_bytes(manifest_signing_bytes(manifest))
    return {
        "alg": "Ed25519",
        "key_name": signer.name,
        "key_id": signer.key_id.hex(),
        "value": base64.b64encode(signature).decode(),
    }


def iter_payload_events(path: Path, fmt: str) -> Iterator[bytes]:
    """Yield the canonical bytes of each event in a JSON or JSONL payload, streaming."""
    if fmt == "jsonl":
        with path.open("rb") as handle:
            for line in handle:
                if not line.endswith(b"\n"):
                    raise ValueError("the JSONL payload does not end with a newline")
                yield line[:-1]
        return
    events = orjson.loads(path.read_bytes())
    if not isinstance(events, list):
        raise ValueError("the JSON payload is not an array")
    for event in events:
        yield recanonicalize(event)


def verifier_for(manifest: dict[str, Any], verifiers: list[NoteVerifier]) -> NoteVerifier | None:
    signature = manifest.get("signature") or {}
    for verifier in verifiers:
        if verifier.name == signature.get("key_name") and verifier.key_id.hex() == signature.get("key_id"):
            return verifier
    return None
