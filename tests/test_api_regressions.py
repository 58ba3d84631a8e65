"""Bugs found by fuzzing, kept as plain tests."""

from __future__ import annotations

from fastapi.testclient import TestClient

from gardien.audit.offline import verify_export
from gardien.audit.service import Ledger
from gardien.audit.signing import trusted_verifiers
from gardien.core.roles import Role
from gardien.core.runtime import Runtime
from tests.conftest import auth, sample_event


def test_a_large_double_survives_csv_and_json_exports(
    client: TestClient, runtime: Runtime, ledger: Ledger, tokens: dict[Role, str], org: str
) -> None:
    # RFC 8785 writes 1.0118270782382944e16 as 10118270782382944, which parses back as an integer.
    event = sample_event(fields={"big": 1.0118270782382944e16, "tiny": 5e-324})
    assert client.post("/api/v1/audit/events", json=event, headers=auth(tokens[Role.SERVICE])).status_code == 201
    for fmt in ("csv", "json", "jsonl"):
        created = client.post("/api/v1/audit/exports", json={"format": fmt}, headers=auth(tokens[Role.AUDITOR]))
        assert created.status_code == 201, created.text
        _manifest, payload = ledger.get_export(org, created.json()["id"])
        check = verify_export(
            payload, payload.with_name(payload.name + ".manifest.json"), trusted_verifiers(runtime.keyring)
        )
        assert check.ok, check.problems
