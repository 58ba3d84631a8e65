"""/api/v1/datamaps: roles, organisations, problem answers."""

from __future__ import annotations

import uuid

from fastapi.testclient import TestClient

from gardien.core import service
from gardien.core.roles import Role
from gardien.core.runtime import Runtime
from tests.conftest import auth, make_key
from tests.datamap_samples import Host, sqlite_host_fixture  # noqa: F401


def test_register_read_and_validate_a_map(client: TestClient, tokens: dict[Role, str], sqlite_host: Host) -> None:
    body = {"document": sqlite_host.map_yaml()}
    for role in (Role.OPERATOR, Role.AUDITOR, Role.SERVICE):
        assert client.put("/api/v1/datamaps/shop", json=body, headers=auth(tokens[role])).status_code == 403
    answer = client.put("/api/v1/datamaps/shop", json=body, headers=auth(tokens[Role.DPO]))
    assert answer.status_code == 200, answer.text
    assert answer.json()["version"] == 1 and answer.json()["document"] is None

    listed = client.get("/api/v1/datamaps", headers=auth(tokens[Role.AUDITOR])).json()["maps"]
    assert [(m["key"], m["tables"][0]) for m in listed] == [("shop", "crm.tickets")]
    got = client.get("/api/v1/datamaps/shop", headers=auth(tokens[Role.OPERATOR])).json()
    assert got["document"] == body["document"] and got["identities"] == ["email"]

    report = client.post("/api/v1/datamaps/shop/validate", headers=auth(tokens[Role.OPERATOR])).json()
    assert report == {"key": "shop", "version": 1, "valid": True, "issues": []}
    with sqlite_host.crm.begin() as conn:
        conn.exec_driver_sql("DROP TABLE ticket_locks")
        conn.exec_driver_sql("ALTER TABLE tickets RENAME TO old_tickets")
    report = client.post("/api/v1/datamaps/shop/validate", headers=auth(tokens[Role.OPERATOR])).json()
    assert report["valid"] is False
    assert report["issues"][0]["message"].startswith("crm.tickets: store 'crm': no table 'tickets'")


def test_a_broken_map_answers_422_with_every_path(client: TestClient, tokens: dict[Role, str]) -> None:
    document = "dataset:\n  - fides_key: app\n    collections: [{name: users, fields: [{name: id}]}]\n"
    answer = client.put("/api/v1/datamaps/app", json={"document": document}, headers=auth(tokens[Role.ADMIN]))
    assert answer.status_code == 422
    assert answer.headers["content-type"] == "application/problem+json"
    assert [e["field"] for e in answer.json()["errors"]] == ["document.dataset.0", "document.dataset"]
    assert client.get("/api/v1/datamaps/app", headers=auth(tokens[Role.ADMIN])).status_code == 404


def test_another_organisations_map_is_not_found(
    client: TestClient, tokens: dict[Role, str], sqlite_host: Host, runtime: Runtime
) -> None:
    client.put("/api/v1/datamaps/shop", json={"document": sqlite_host.map_yaml()}, headers=auth(tokens[Role.DPO]))
    with runtime.writes.begin() as session:
        other = service.create_org(session, slug=f"o-{uuid.uuid4().hex[:12]}", name="Other").id
    stranger = make_key(runtime, other, Role.ADMIN)
    assert client.get("/api/v1/datamaps/shop", headers=auth(stranger)).status_code == 404
    assert client.post("/api/v1/datamaps/shop/validate", headers=auth(stranger)).status_code == 404
    assert client.get("/api/v1/datamaps", headers=auth(stranger)).json() == {"maps": []}
