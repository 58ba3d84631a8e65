"""Ledger retention: archive a sealed prefix to a signed bundle, purge it, and still verify everything.

The bundle verifies offline with the public key only; `gardien audit verify` reports the prefix as
purged per manifest and checks the rest; proofs of later events still work; the write-once
triggers refuse every other delete.
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import os
import subprocess
import sys
from datetime import timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import delete, func, select, update
from sqlalchemy.exc import DBAPIError

from gardien.audit.canonical import canonical_bytes
from gardien.audit.checkpoint import NoteVerifier
from gardien.audit.merkle import verify_consistency, verify_inclusion
from gardien.audit.models import EVENTS, PURGES
from gardien.audit.offline import verify_bundle
from gardien.audit.service import Ledger
from gardien.audit.signing import trusted_verifiers
from gardien.core.clock import utcnow
from gardien.core.runtime import Runtime
from gardien.datamap.service import DatamapService
from gardien.retention.jobs import Runner
from gardien.retention.schemas import HoldIn, PolicyIn
from gardien.retention.service import RetentionService
from tests.conftest import sample_event

ACTOR = {"type": "user", "id": "dpo-1", "display": "DPO"}
POLICY = {
    "name": "audit trail after six years",
    "target": {"kind": "store", "store": "ledger"},
    "period": "P6Y",
    "action": "archive",
    "legal_basis": "legal_obligation",
}


@pytest.fixture
def patient(runtime: Runtime, tmp_path: Path) -> Any:
    """A runtime that checkpoints only when told to: what is sealed stays exactly what the test sealed."""
    rt = Runtime.start(
        runtime.settings.model_copy(update={"checkpoint_every_seconds": 3600.0, "archive_dir": tmp_path / "archive"})
    )
    yield rt
    rt.close()


def _tools(rt: Runtime, years_later: int = 7) -> tuple[Ledger, RetentionService, Runner]:
    ledger = Ledger(rt)
    runner = Runner(rt, ledger, DatamapService(rt, ledger))
    # Seven years from now, every event written today is older than the six-year period.
    runner.clock = lambda: utcnow() + timedelta(days=366 * years_later)
    return ledger, RetentionService(rt, ledger), runner


def _seed(ledger: Ledger, org: str, batches: int, size: int) -> None:
    for b in range(batches):
        ledger.append_batch(org, [sample_event(fields={"b": b, "n": i}) for i in range(size)])
        ledger.checkpoint_now(org)


def _run(runner: Runner, service: RetentionService, org: str, policy_id: str, dry_run: bool) -> Any:
    row = service.policy_row(org, policy_id)
    return service.get_run(org, runner.run_policy(org, row, dry_run=dry_run, trigger="cli", actor=ACTOR))


def _events(rt: Runtime, org: str) -> tuple[int, int]:
    with rt.engine.connect() as conn:
        low, count = conn.execute(select(func.min(EVENTS.c.seq), func.count()).where(EVENTS.c.org_id == org)).one()
    return int(low), int(count)


def test_archive_then_purge_keeps_the_ledger_verifiable_and_the_bundle_verifies_offline(
    patient: Runtime, org: str, tmp_path: Path
) -> None:
    ledger, service, runner = _tools(patient)
    _seed(ledger, org, 3, 100)  # with the policy's event, 301 sealed: the boundary cuts a block of 16
    policy = service.create_policy(org, PolicyIn.model_validate(POLICY), ACTOR).id
    ledger.checkpoint_now(org)  # the policy's audit event is sealed too
    sealed = ledger.checkpoint(org).size
    assert sealed % 16, "the purge boundary must cut a block of 16 leaves for this test"

    dry = _run(runner, service, org, policy, dry_run=True)
    assert dry.counts["ledger"]["matched"] == sealed
    real = _run(runner, service, org, policy, dry_run=False)
    assert real.status == "completed", real.errors
    assert real.counts["ledger"] == {"matched": sealed, "archived": sealed}
    low, _ = _events(patient, org)
    assert low == sealed

    report = ledger.verify(org)
    assert (report.status, report.purged_before) == ("ok", sealed)
    assert report.events_checked > 0

    # Later events still get inclusion proofs, through the hashes the purge kept.
    ledger.append_batch(org, [sample_event(fields={"after": i}) for i in range(20)])
    ledger.checkpoint_now(org)
    head = ledger.checkpoint(org)
    for seq in (sealed, sealed + 5, head.size - 1):
        proof = ledger.inclusion_proof(org, seq)
        assert verify_inclusion(
            base64.b64decode(proof.leaf_hash),
            seq,
            proof.tree_size,
            [base64.b64decode(h) for h in proof.hashes],
            base64.b64decode(proof.checkpoint.root),
        )
    consistency = ledger.consistency_proof(org, sealed, head.size)
    old_root = base64.b64decode(ledger.checkpoint(org, sealed).root)
    new_root = base64.b64decode(head.root)
    assert verify_consistency(sealed, head.size, old_root, new_root, [base64.b64decode(h) for h in consistency.hashes])

    bundle = Path(real.samples["bundle"][0][0])
    manifest_path = Path(str(bundle) + ".manifest.json")
    keys = trusted_verifiers(patient.keyring)
    check = verify_bundle(bundle, manifest_path, keys)
    assert check.ok, check.lines()
    assert check.root_checked and check.count == sealed
    with gzip.open(bundle) as handle:
        plain = handle.read()
    lines = [orjson.loads(line) for line in plain.splitlines()]
    assert [e["seq"] for e in lines] == list(range(sealed))

    # Offline, with only the public key, through the command line.
    vkey = keys[0].vkey()
    env = {k: v for k, v in os.environ.items() if not k.startswith("GARDIEN_")}
    done = subprocess.run(
        [sys.executable, "-m", "gardien", "audit", "verify-bundle", str(bundle), "--public-key", vkey],
        env=env,
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "VALID" in done.stdout

    # A bundle altered in any byte, or checked against another key, does not verify.
    tampered = tmp_path / "tampered.jsonl.gz"
    events = plain.replace(b'"n":7', b'"n":8', 1)
    tampered.write_bytes(gzip.compress(events, mtime=0))
    assert not verify_bundle(tampered, manifest_path, keys).ok
    other_key = Ed25519PrivateKey.generate().public_key().public_bytes_raw()
    stranger = NoteVerifier.from_public_key(patient.keyring.instance_name, other_key)
    assert not verify_bundle(bundle, manifest_path, [stranger]).ok

    # A second archive continues from the first: its bundle chains to the first manifest.
    ledger.append_batch(org, [sample_event() for _ in range(5)])
    ledger.checkpoint_now(org)
    second = _run(runner, service, org, policy, dry_run=False)
    assert second.status == "completed"
    bundle2 = Path(second.samples["bundle"][0][0])
    assert verify_bundle(bundle2, Path(str(bundle2) + ".manifest.json"), keys).ok
    first, then = (orjson.loads(Path(str(b) + ".manifest.json").read_bytes()) for b in (bundle, bundle2))
    assert then["from_seq"] == first["to_seq"]
    assert then["prefix_compact_range"] == first["compact_range"]
    assert then["previous_manifest_sha256"] == hashlib.sha256(canonical_bytes(first)).hexdigest()
    assert ledger.verify(org).status == "ok"
    # The first purge's own event now lives in the second bundle; the second one's in the ledger.
    assert _actions(patient, org).count("retention.ledger.purged") == 1
    with gzip.open(bundle2) as handle:
        assert b'"action":"retention.ledger.purged"' in handle.read()


def _actions(rt: Runtime, org: str) -> list[str]:
    with rt.engine.connect() as conn:
        return list(conn.execute(select(EVENTS.c.action).where(EVENTS.c.org_id == org)).scalars())


def test_the_write_once_triggers_refuse_every_delete_a_manifest_does_not_cover(patient: Runtime, org: str) -> None:
    ledger, service, runner = _tools(patient)
    _seed(ledger, org, 2, 50)
    policy = service.create_policy(org, PolicyIn.model_validate(POLICY), ACTOR).id
    _run(runner, service, org, policy, dry_run=False)
    with patient.engine.connect() as conn:
        to_seq = conn.execute(select(func.max(PURGES.c.to_seq)).where(PURGES.c.org_id == org)).scalar_one()
    for statement in (
        delete(EVENTS).where(EVENTS.c.org_id == org, EVENTS.c.seq == to_seq),
        update(EVENTS).where(EVENTS.c.org_id == org, EVENTS.c.seq == to_seq).values(action="x.y"),
        delete(PURGES).where(PURGES.c.org_id == org),
    ):
        with pytest.raises(DBAPIError, match="append-only"), patient.engine.begin() as conn:
            conn.execute(statement)
    assert ledger.verify(org).status == "ok"


def test_a_hold_on_the_ledger_suspends_its_archiving(patient: Runtime, org: str) -> None:
    ledger, service, runner = _tools(patient)
    _seed(ledger, org, 1, 30)
    policy = service.create_policy(org, PolicyIn.model_validate(POLICY), ACTOR).id
    service.create_hold(org, HoldIn(scope="table", target="ledger", reason="ACPR inquiry", owner="Compliance"), ACTOR)
    run = _run(runner, service, org, policy, dry_run=False)
    assert run.status == "suspended"
    assert _events(patient, org)[0] == 0


def test_an_exports_policy_deletes_old_export_files_and_records(patient: Runtime, org: str) -> None:
    from gardien.audit.schemas import EventFilter

    ledger, service, runner = _tools(patient, years_later=1)
    _seed(ledger, org, 1, 10)
    made = [ledger.export(org, "jsonl", EventFilter(), actor=ACTOR) for _ in range(2)]
    assert all(m.payload_path.exists() and m.manifest_path.exists() for m in made)
    spec = {**POLICY, "name": "exports after 30 days", "target": {"kind": "store", "store": "exports"}}
    policy = service.create_policy(org, PolicyIn.model_validate({**spec, "period": "P30D", "action": "delete"}), ACTOR)
    dry = _run(runner, service, org, policy.id, dry_run=True)
    assert dry.counts["exports"]["matched"] == 2
    assert all(m.payload_path.exists() for m in made)
    real = _run(runner, service, org, policy.id, dry_run=False)
    assert real.counts["exports"] == {"matched": 2, "deleted": 2}
    assert not any(m.payload_path.exists() or m.manifest_path.exists() for m in made)
    assert ledger.exports_before(org, runner.clock()) == []
    assert _actions(patient, org).count("retention.exports.deleted") == 1
    assert ledger.verify(org).status == "ok"
