"""Retention policies and legal holds over the API: defaults, validation, versions, audit, isolation."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from dateutil.relativedelta import relativedelta
from fastapi.testclient import TestClient
from sqlalchemy import select

from gardien.audit.models import EVENTS
from gardien.core.roles import Role
from gardien.core.runtime import Runtime
from gardien.retention.schemas import parse_period
from tests.conftest import auth, make_key

RET = "/api/v1/retention"

# The figures from their sources, not from the code:
# - account: CNIL good practice, an account left inactive two years is deleted (regulator);
# - health: no statute for application health data, Gardien's three years (choice);
# - audit: six years, as LPF art. L102 B keeps tax records (choice anchored on a statute);
# - audit-financial: MiFID II art. 16(7), five years, up to seven at the competent authority's request (law);
# - accounting: ten years, Code de commerce art. L123-22 (France), CIR 92 art. 315 since the law of
#   20 November 2022 (Belgium) (law);
# - consent-proof: five years after the consent ends, Code civil art. 2224 limitation (choice);
# - technical-logs: CNIL recommendation 2021-122 on logging, six months to one year (regulator).
REFERENCE = {
    "account": (relativedelta(years=2), "regulator"),
    "health": (relativedelta(years=3), "choice"),
    "audit": (relativedelta(years=6), "choice"),
    "audit-financial": (relativedelta(years=7), "law"),
    "accounting": (relativedelta(years=10), "law"),
    "consent-proof": (relativedelta(years=5), "choice"),
    "technical-logs": (relativedelta(years=1), "regulator"),
}

POLICY: dict[str, Any] = {
    "name": "inactive accounts",
    "target": {"kind": "table", "map": "shop", "table": "shop.customers"},
    "period": "P2Y",
    "reference": "last_login",
    "action": "delete",
    "legal_basis": "contract",
    "note": "CNIL: inactive accounts",
    "schedule": "0 3 * * *",
}


def _ledger_actions(runtime: Runtime, org: str) -> list[tuple[str, dict[str, Any]]]:
    with runtime.engine.connect() as conn:
        rows = conn.execute(
            select(EVENTS.c.action, EVENTS.c.canonical).where(EVENTS.c.org_id == org).order_by(EVENTS.c.seq)
        ).all()
    return [(r.action, orjson.loads(r.canonical)) for r in rows if r.action.startswith("retention.")]


def test_defaults_match_the_reference_and_cite_a_source(client: TestClient, tokens: dict[Role, str]) -> None:
    answer = client.get(f"{RET}/defaults", headers=auth(tokens[Role.AUDITOR]))
    assert answer.status_code == 200, answer.text
    items = {d["key"]: d for d in answer.json()["items"]}
    assert items.keys() == REFERENCE.keys()
    for key, (period, kind) in REFERENCE.items():
        assert (parse_period(items[key]["period"]), items[key]["kind"]) == (period, kind), key
    assert all(len(d["source"]) > 40 for d in items.values())
    assert items["audit"]["action"] == items["audit-financial"]["action"] == "archive"


def test_policy_lifecycle_is_versioned_and_audited(
    client: TestClient, tokens: dict[Role, str], runtime: Runtime, org: str
) -> None:
    dpo = auth(tokens[Role.DPO])
    created = client.post(f"{RET}/policies", json=POLICY, headers=dpo)
    assert created.status_code == 201, created.text
    body = created.json()
    policy_id = body["id"]
    assert body["version"] == 1
    assert body["policy"]["period"] == "P2Y"
    assert body["next_run_at"].endswith("03:00:00Z")

    changed = client.put(f"{RET}/policies/{policy_id}", json={**POLICY, "period": "P3Y"}, headers=dpo)
    assert changed.status_code == 200, changed.text
    assert changed.json()["version"] == 2
    same = client.put(f"{RET}/policies/{policy_id}", json={**POLICY, "period": "P3Y"}, headers=dpo)
    assert same.json()["version"] == 2  # nothing changed, no new version

    listed = client.get(f"{RET}/policies", headers=auth(tokens[Role.OPERATOR])).json()["items"]
    assert [p["id"] for p in listed] == [policy_id]
    assert client.delete(f"{RET}/policies/{policy_id}", headers=dpo).status_code == 204
    assert client.get(f"{RET}/policies/{policy_id}", headers=dpo).status_code == 404

    events = _ledger_actions(runtime, org)
    assert [a for a, _ in events] == [
        "retention.policy.created",
        "retention.policy.updated",
        "retention.policy.deleted",
    ]
    update = events[1][1]
    assert update["fields"]["before"]["period"] == "P2Y" and update["fields"]["after"]["period"] == "P3Y"


def test_bad_policies_answer_422_with_the_field_and_change_nothing(
    client: TestClient, tokens: dict[Role, str], runtime: Runtime, org: str
) -> None:
    dpo = auth(tokens[Role.DPO])
    cases: list[tuple[dict[str, Any], str]] = [
        ({**POLICY, "period": "2 years"}, "period"),
        ({**POLICY, "period": "P0D"}, "period"),
        ({**POLICY, "schedule": "every day"}, "schedule"),
        ({**POLICY, "schedule": "61 3 * * *"}, "schedule"),
        ({**POLICY, "schedule": "0 0 31 2 *"}, "never fires"),
        ({**POLICY, "action": "archive"}, "archive"),
        ({**POLICY, "reference": None}, "reference"),
        (
            {
                **POLICY,
                "action": "anonymise",
                "operators": {"ip": {"operator": "truncate_ip", "params": {"v4_prefix": 40}}},
            },
            "v4_prefix",
        ),
        ({**POLICY, "action": "anonymise", "operators": {"ip": {"operator": "no_such"}}}, "no_such"),
        ({**POLICY, "target": {"kind": "store", "store": "ledger"}, "reference": None}, "archive"),
        ({**POLICY, "target": {"kind": "planet"}}, "target"),
    ]
    for body, needle in cases:
        answer = client.post(f"{RET}/policies", json=body, headers=dpo)
        assert answer.status_code == 422, (needle, answer.text)
        assert answer.headers["content-type"] == "application/problem+json"
        assert needle in answer.text, (needle, answer.text)
    assert client.get(f"{RET}/policies", headers=dpo).json()["items"] == []
    assert _ledger_actions(runtime, org) == []


def test_another_organisations_policies_holds_and_runs_are_not_found(
    client: TestClient, tokens: dict[Role, str], runtime: Runtime, org: str
) -> None:
    dpo = auth(tokens[Role.DPO])
    policy_id = client.post(f"{RET}/policies", json=POLICY, headers=dpo).json()["id"]
    hold = {"scope": "table", "target": "shop.customers", "reason": "litigation", "owner": "Legal"}
    hold_id = client.post(f"{RET}/holds", json=hold, headers=dpo).json()["id"]
    from gardien.core import service

    with runtime.writes.begin() as session:
        other = service.create_org(session, slug=f"o-{policy_id[-8:]}", name="Other").id
    stranger = auth(make_key(runtime, other, Role.ADMIN))
    assert client.get(f"{RET}/policies/{policy_id}", headers=stranger).status_code == 404
    assert client.put(f"{RET}/policies/{policy_id}", json=POLICY, headers=stranger).status_code == 404
    assert client.delete(f"{RET}/policies/{policy_id}", headers=stranger).status_code == 404
    assert client.get(f"{RET}/holds/{hold_id}", headers=stranger).status_code == 404
    assert client.post(f"{RET}/holds/{hold_id}/release", headers=stranger).status_code == 404
    assert client.get(f"{RET}/holds", headers=stranger).json()["items"] == []


def test_holds_need_their_scope_and_are_released_once(
    client: TestClient, tokens: dict[Role, str], runtime: Runtime, org: str
) -> None:
    dpo = auth(tokens[Role.DPO])
    bad = [
        {"scope": "organisation", "target": "x.y", "reason": "r", "owner": "o"},
        {"scope": "table", "reason": "r", "owner": "o"},
        {"scope": "subject", "target": "shop", "reason": "r", "owner": "o"},
        {"scope": "table", "target": "shop.customers", "owner": "o"},
        {"scope": "table", "target": "shop.customers", "reason": "r"},
    ]
    for body in bad:
        assert client.post(f"{RET}/holds", json=body, headers=dpo).status_code == 422, body
    subject = {
        "scope": "subject",
        "target": "shop",
        "identity": {"type": "email", "value": "ana@example.org"},
        "reason": "claim pending",
        "owner": "Claims desk",
    }
    created = client.post(f"{RET}/holds", json=subject, headers=dpo)
    assert created.status_code == 201, created.text
    hold_id = created.json()["id"]
    assert client.get(f"{RET}/holds?active=true", headers=dpo).json()["items"][0]["id"] == hold_id
    released = client.post(f"{RET}/holds/{hold_id}/release", headers=dpo)
    assert released.json()["released_at"] is not None
    client.post(f"{RET}/holds/{hold_id}/release", headers=dpo)
    assert client.get(f"{RET}/holds?active=true", headers=dpo).json()["items"] == []
    events = _ledger_actions(runtime, org)
    assert [a for a, _ in events] == ["retention.hold.created", "retention.hold.released"]
    assert "ana@example.org" not in orjson.dumps(events).decode()  # the ledger names no one


def test_the_data_map_refuses_unknown_anonymisation_rules_and_dating_columns() -> None:
    from gardien.datamap.mapfile import MapInvalid, load_map
    from tests.retention_samples import MAP

    good = MAP.replace("URL", "sqlite://").replace("SCHEMA", "")
    assert load_map(good).tables["app.events"].anonymize_rules().keys() == {"ip", "context.ip", "context.card.user_id"}
    cases = {
        "{operator: truncate_ip}": ("{operator: truncate_ip, params: {v4_prefix: 99}}", "params.v4_prefix"),
        "card.user_id: {operator: hmac": ("card.user_id: {operator: sha1", "unknown operator"),
        "dated_by: created": ("dated_by: created_at", "dated_by"),
    }
    for old, (new, needle) in cases.items():
        with pytest.raises(MapInvalid) as caught:
            load_map(good.replace(old, new, 1))
        assert any(needle in issue.path or needle in issue.message for issue in caught.value.issues), caught.value
