"""The privacy API on SQLite and PostgreSQL: pseudonyms, audited re-identification by the DPO, redaction."""

from __future__ import annotations

import uuid
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import func, select

from gardien.audit.models import EVENTS
from gardien.core import service as core_service
from gardien.core.roles import Role
from gardien.core.runtime import Runtime
from tests.conftest import auth, make_key


def _post(client: TestClient, path: str, token: str, body: dict[str, Any], status: int = 200) -> dict[str, Any]:
    response = client.post(f"/api/v1/privacy/{path}", json=body, headers=auth(token))
    assert response.status_code == status, response.text
    result: dict[str, Any] = response.json()
    return result


def _events(runtime: Runtime, org: str) -> int:
    with runtime.engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(EVENTS).where(EVENTS.c.org_id == org)).scalar_one())


def test_pseudonyms_are_stable_and_scoped_to_the_organisation(
    client: TestClient, runtime: Runtime, tokens: dict[Role, str]
) -> None:
    body = {"values": ["jean@example.fr", "Jean@Example.fr "], "domain": "users.email", "normalize": "casefold"}
    first = _post(client, "pseudonyms", tokens[Role.SERVICE], body)["pseudonyms"]
    assert first[0] == first[1]
    assert first == _post(client, "pseudonyms", tokens[Role.OPERATOR], body)["pseudonyms"]
    with runtime.writes.begin() as session:
        other = core_service.create_org(session, slug=f"t-{uuid.uuid4().hex[:12]}", name="Other").id
    assert _post(client, "pseudonyms", make_key(runtime, other, Role.SERVICE), body)["pseudonyms"] != first
    assert client.post("/api/v1/privacy/pseudonyms", json=body, headers=auth(tokens[Role.AUDITOR])).status_code == 403


def test_reidentification_is_for_the_dpo_and_audited(
    client: TestClient, runtime: Runtime, org: str, tokens: dict[Role, str]
) -> None:
    (token,) = _post(
        client,
        "pseudonyms",
        tokens[Role.SERVICE],
        {"operator": "encrypt", "domain": "card.user_id", "values": ["u-42"]},
    )["pseudonyms"]
    request = {"token": token, "domain": "card.user_id", "reason": "access request DSR-17"}
    for role in (Role.ADMIN, Role.SERVICE, Role.OPERATOR, Role.AUDITOR):
        assert client.post("/api/v1/privacy/reidentify", json=request, headers=auth(tokens[role])).status_code == 403
    before = _events(runtime, org)
    answer = _post(client, "reidentify", tokens[Role.DPO], request)
    assert answer["value"] == "u-42"
    assert _events(runtime, org) == before + 1
    event = client.get(f"/api/v1/audit/events/{answer['audit_event_id']}", headers=auth(tokens[Role.AUDITOR])).json()
    assert event["module"] == "privacy"
    assert event["action"] == "pseudonym.reidentify"
    assert event["reason"] == "access request DSR-17"
    assert event["fields"] == {"token": token, "domain": "card.user_id"}
    assert event["actor"]["type"] == "api_key"
    assert "u-42" not in str(event)


def test_reidentification_refuses_foreign_or_altered_tokens_and_writes_nothing(
    client: TestClient, runtime: Runtime, org: str, tokens: dict[Role, str]
) -> None:
    with runtime.writes.begin() as session:
        other = core_service.create_org(session, slug=f"t-{uuid.uuid4().hex[:12]}", name="Other").id
    (foreign,) = _post(
        client, "pseudonyms", make_key(runtime, other, Role.SERVICE), {"operator": "encrypt", "values": ["x"]}
    )["pseudonyms"]
    before = _events(runtime, org)
    for token, domain in [(foreign, "default"), ("nokey:AAAA", "default"), ("garbage", "default")]:
        problem = _post(
            client, "reidentify", tokens[Role.DPO], {"token": token, "domain": domain, "reason": "r"}, status=422
        )
        assert problem["errors"][0]["field"] == "token"
    assert _events(runtime, org) == before
    missing_reason = {"token": foreign, "domain": "default"}
    assert (
        client.post("/api/v1/privacy/reidentify", json=missing_reason, headers=auth(tokens[Role.DPO])).status_code
        == 422
    )


def test_redact_endpoint(client: TestClient, tokens: dict[Role, str]) -> None:
    text = "refund to FR76 3000 6000 0112 3456 7890 189 for jean@example.fr"
    answer = _post(client, "redact", tokens[Role.SERVICE], {"text": text})
    assert answer["text"] == "refund to <IBAN> for <EMAIL>"
    assert [f["entity"] for f in answer["findings"]] == ["IBAN", "EMAIL"]
    assert text[answer["findings"][0]["start"] : answer["findings"][0]["end"]].startswith("FR76")
    masked = _post(client, "redact", tokens[Role.DPO], {"text": "ip 192.0.2.1", "style": "mask"})
    assert masked["text"] == "ip *********"
