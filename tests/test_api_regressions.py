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


def test_a_listing_does_not_chase_its_own_read_events(
    client: TestClient, ledger: Ledger, tokens: dict[Role, str], org: str
) -> None:
    ledger.append_batch(org, [sample_event() for _ in range(3)])
    seen: list[int] = []
    params: dict[str, object] = {"limit": 1}
    for _ in range(20):
        page = client.get("/api/v1/audit/events", params=params, headers=auth(tokens[Role.AUDITOR])).json()
        seen += [e["seq"] for e in page["events"]]
        if page["next_cursor"] is None:
            break
        params = {"limit": 1, "cursor": page["next_cursor"]}
    assert seen == [0, 1, 2]
