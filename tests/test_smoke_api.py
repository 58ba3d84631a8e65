from __future__ import annotations

from fastapi.testclient import TestClient

from gardien.core.roles import Role
from tests.conftest import auth, sample_event


def test_append_then_read_back(client: TestClient, tokens: dict[Role, str]) -> None:
    created = client.post("/api/v1/audit/events", json=sample_event(), headers=auth(tokens[Role.SERVICE]))
    assert created.status_code == 201, created.text
    receipt = created.json()
    assert receipt["seq"] == 0
    page = client.get("/api/v1/audit/events", headers=auth(tokens[Role.AUDITOR])).json()
    assert page["events"][0]["id"] == receipt["id"]
    assert page["events"][0]["actor"]["display"] == "Émilie Dupont"
