"""The compliance matrix computed from real state: each rule is driven through the API (registers,
consent, rights) into each of CONFORME, PARTIEL and ABSENT, on SQLite and PostgreSQL."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient

from gardien.core.roles import Role
from gardien.core.runtime import Runtime
from gardien.registers import compliance
from gardien.registers.evidence import Evidence
from gardien.registers.sources import RetentionPolicyFact, RetentionRunFact, find_retention, retention_installed
from gardien.retention.jobs import Runner
from tests import registers_samples as samples
from tests.conftest import auth
from tests.consent_samples import sample_notice
from tests.retention_samples import make_app

BASE = "/api/v1/registers"
ACCOUNTS_POLICY = {
    "name": "inactive accounts",
    "target": {"kind": "table", "map": "app", "table": "app.accounts"},
    "period": "P2Y",
    "reference": "last_login",
    "action": "delete",
}


def ok(response: Any, status: int = 200) -> Any:
    assert response.status_code == status, response.text
    return response.json() if response.content else None


def rows(client: TestClient, headers: dict[str, str], lang: str = "en") -> dict[str, dict[str, Any]]:
    answer = ok(client.get(f"{BASE}/compliance", params={"lang": lang}, headers=headers))
    return {row["article"]: row for row in answer["rows"]}


def status(client: TestClient, headers: dict[str, str], article: str) -> str:
    return str(rows(client, headers)[article]["status"])


def minimal_activity(name: str = "Comptabilité", **changes: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "role": "controller",
        "name": name,
        "purposes": [{"name": "Tenue des comptes", "legal_basis": "legal_obligation"}],
        "subject_categories": ["clients"],
        "data_categories": [{"category": "identity"}],
    }
    body.update(changes)
    return body


def complete_activity(name: str = "Comptabilité", **changes: Any) -> dict[str, Any]:
    return minimal_activity(
        name, retention="10 ans", security_measures=["access_control", "backup", "encryption"], **changes
    )


def test_a_blank_organisation(client: TestClient, tokens: dict[Role, str]) -> None:
    answer = ok(client.get(f"{BASE}/compliance", params={"lang": "fr"}, headers=auth(tokens[Role.AUDITOR])))
    found = {row["article"]: row["status"] for row in answer["rows"]}
    assert list(found) == ["5(1)(e)", "6", "7", "12–22", "25", "28", "30", "32", "33", "35", "ePrivacy"]
    assert found == {
        "5(1)(e)": "ABSENT",
        "6": "ABSENT",
        "7": "CONFORME",  # nothing relies on consent
        "12–22": "PARTIEL",  # no privacy notice published
        "25": "ABSENT",
        "28": "ABSENT",
        "30": "ABSENT",
        "32": "ABSENT",
        "33": "CONFORME",  # no breach
        "35": "CONFORME",  # no sensitive processing
        "ePrivacy": "ABSENT",
    }
    assert answer["summary"] == {"CONFORME": 3, "PARTIEL": 1, "ABSENT": 7}
    storage = next(r for r in answer["rows"] if r["article"] == "5(1)(e)")
    assert storage["finding"] == "Aucune politique de conservation."
    assert storage["evidence"] == {"retention_capability": True, "policies": 0}
    assert storage["action"]


def test_art_30_record(client: TestClient, tokens: dict[Role, str]) -> None:
    dpo = auth(tokens[Role.DPO])
    assert status(client, dpo, "30") == "ABSENT"
    bare = ok(client.post(f"{BASE}/activities", json=minimal_activity(), headers=dpo), 201)
    row = rows(client, dpo)["30"]
    assert row["status"] == "PARTIEL"
    assert row["evidence"]["without_retention_or_security"] == [bare["id"]]
    assert row["evidence"]["header"] is False
    ok(client.put(f"{BASE}/activities/{bare['id']}", json=complete_activity(), headers=dpo))
    assert status(client, dpo, "30") == "PARTIEL"  # still no header
    ok(client.put(f"{BASE}/settings", json=samples.settings(), headers=dpo))
    row = rows(client, dpo)["30"]
    assert row["status"] == "CONFORME" and row["action"] is None
    assert row["evidence"]["controller_activities"] == 1


def test_art_28_processors(client: TestClient, tokens: dict[Role, str]) -> None:
    dpo = auth(tokens[Role.DPO])
    assert status(client, dpo, "28") == "ABSENT"
    unsigned = samples.processor(dpa={})
    created = ok(client.post(f"{BASE}/processors", json=unsigned, headers=dpo), 201)
    row = rows(client, dpo)["28"]
    assert row["status"] == "PARTIEL"
    assert row["evidence"]["with_faults"] == {created["id"]: ["dpa_missing"]}
    ok(client.put(f"{BASE}/processors/{created['id']}", json=samples.processor(), headers=dpo))
    assert status(client, dpo, "28") == "CONFORME"
    # A processor named as a recipient of an activity but absent from the Art. 28 register.
    ok(client.post(f"{BASE}/activities", json=samples.controller_activity(), headers=dpo), 201)
    row = rows(client, dpo)["28"]
    assert row["status"] == "PARTIEL"
    assert row["evidence"]["named_as_recipients_but_not_recorded"] == ["Stripe"]
    ok(client.post(f"{BASE}/processors", json=samples.processor(name="Stripe"), headers=dpo), 201)
    assert status(client, dpo, "28") == "CONFORME"
    expired = samples.processor(name="OVH", dpa={"signed_on": "2020-01-01", "review_on": "2021-01-01"})
    ok(client.post(f"{BASE}/processors", json=expired, headers=dpo), 201)
    assert rows(client, dpo)["28"]["status"] == "PARTIEL"


def test_art_33_breaches(client: TestClient, tokens: dict[Role, str]) -> None:
    dpo = auth(tokens[Role.DPO])
    now = datetime.now(UTC)
    old = ok(
        client.post(f"{BASE}/breaches", json=samples.breach(now - timedelta(hours=80), risk="risk"), headers=dpo), 201
    )
    row = rows(client, dpo)["33"]
    assert (row["status"], row["evidence"]["overdue"]) == ("ABSENT", [old["id"]])
    notification = {"kind": "initial", "sent_at": samples.iso(now), "authority": "cnil", "late_reasons": "week-end"}
    ok(client.post(f"{BASE}/breaches/{old['id']}/notifications", json=notification, headers=dpo), 201)
    row = rows(client, dpo)["33"]
    assert (row["status"], row["evidence"]["notified_late_last_year"]) == ("PARTIEL", [old["id"]])


def test_art_33_running_then_notified_in_time(client: TestClient, tokens: dict[Role, str]) -> None:
    dpo = auth(tokens[Role.DPO])
    now = datetime.now(UTC)
    fresh = ok(
        client.post(f"{BASE}/breaches", json=samples.breach(now - timedelta(hours=5), risk="risk"), headers=dpo), 201
    )
    row = rows(client, dpo)["33"]
    assert row["status"] == "PARTIEL" and list(row["evidence"]["running"]) == [fresh["id"]]
    notification = {"kind": "initial", "sent_at": samples.iso(now), "authority": "cnil"}
    ok(client.post(f"{BASE}/breaches/{fresh['id']}/notifications", json=notification, headers=dpo), 201)
    row = rows(client, dpo)["33"]
    assert (row["status"], row["evidence"]["notified_in_time"]) == ("CONFORME", 1)
    # High risk: the people must be told too (Art. 34).
    high = ok(client.post(f"{BASE}/breaches", json=samples.breach(now - timedelta(hours=2)), headers=dpo), 201)
    ok(client.post(f"{BASE}/breaches/{high['id']}/notifications", json=notification, headers=dpo), 201)
    row = rows(client, dpo)["33"]
    assert (row["status"], row["evidence"]["people_not_informed"]) == ("PARTIEL", [high["id"]])


def _request(client: TestClient, headers: dict[str, str], received: datetime, kind: str = "access") -> str:
    body = {"type": kind, "email": "marie@example.org", "received_at": samples.iso(received)}
    return str(ok(client.post("/api/v1/requests", json=body, headers=headers), 201)["id"])


def _answer(client: TestClient, headers: dict[str, str], request_id: str) -> None:
    reason = {"reason": "checked by the support team"}
    ok(client.post(f"/api/v1/requests/{request_id}/identity/operator", json=reason, headers=headers))
    body = {"to": "completed", "reason": "answered by e-mail"}
    ok(client.post(f"/api/v1/requests/{request_id}/transitions", json=body, headers=headers))


def test_arts_12_to_22_rights(client: TestClient, tokens: dict[Role, str]) -> None:
    dpo = auth(tokens[Role.DPO])
    now = datetime.now(UTC)
    late = _request(client, dpo, now - timedelta(days=70))
    row = rows(client, dpo)["12–22"]
    assert (row["status"], row["evidence"]["overdue"]) == ("ABSENT", [late])
    quick = _request(client, dpo, now - timedelta(days=1), "erasure")
    _answer(client, dpo, quick)
    row = rows(client, dpo)["12–22"]
    assert row["status"] == "PARTIEL"
    assert (row["evidence"]["answered_in_time"], row["evidence"]["share_answered_in_time"]) == (1, 1.0)
    _answer(client, dpo, late)
    row = rows(client, dpo)["12–22"]
    assert row["status"] == "PARTIEL"
    assert (
        row["evidence"]["answered_late"],
        row["evidence"]["share_answered_in_time"],
        row["evidence"]["overdue"],
    ) == (
        [late],
        0.5,
        [],
    )
    assert row["evidence"]["requests_received_last_year"] == 2


def test_arts_12_to_22_conforme_with_a_notice(client: TestClient, tokens: dict[Role, str]) -> None:
    dpo = auth(tokens[Role.DPO])
    ok(client.put(f"{BASE}/settings", json=samples.settings(), headers=dpo))
    ok(client.post(f"{BASE}/activities", json=complete_activity(), headers=dpo), 201)
    _answer(client, dpo, _request(client, dpo, datetime.now(UTC) - timedelta(days=3)))
    assert status(client, dpo, "12–22") == "PARTIEL"  # no privacy notice yet
    ok(client.post(f"{BASE}/notices", headers=dpo), 201)
    row = rows(client, dpo)["12–22"]
    assert (row["status"], row["evidence"]["privacy_notice_version"]) == ("CONFORME", 1)


def test_arts_6_7_and_eprivacy_follow_consent(client: TestClient, tokens: dict[Role, str]) -> None:
    dpo = auth(tokens[Role.DPO])
    newsletter = minimal_activity("Newsletter", purposes=[{"name": "Lettre", "legal_basis": "consent"}])
    ok(client.post(f"{BASE}/activities", json=newsletter, headers=dpo), 201)
    found = rows(client, dpo)
    assert (found["6"]["status"], found["7"]["status"], found["ePrivacy"]["status"]) == ("PARTIEL", "ABSENT", "ABSENT")
    ok(client.post("/api/v1/consent/notices", json=sample_notice(), headers=dpo), 201)
    found = rows(client, dpo)
    assert (found["6"]["status"], found["7"]["status"]) == ("CONFORME", "PARTIEL")  # no choice recorded yet
    assert found["7"]["evidence"]["current_version"] == 1
    assert found["ePrivacy"]["status"] == "ABSENT"  # no site key yet
    ok(client.get("/api/v1/consent/settings", headers=dpo))
    found = rows(client, dpo)
    assert found["ePrivacy"]["status"] == "PARTIEL"  # any origin may post choices
    assert found["ePrivacy"]["evidence"]["non_essential_purposes"] == ["analytics", "marketing"]
    settings = {"validity_months": 6, "allowed_origins": ["https://ogres.example"]}
    ok(client.put("/api/v1/consent/settings", json=settings, headers=dpo))
    assert status(client, dpo, "ePrivacy") == "CONFORME"

    choice = {"method": "custom", "states": {"analytics": "granted", "marketing": "denied"}}
    state = ok(client.post("/api/v1/consent/records", json=choice, headers=auth(tokens[Role.SERVICE])), 201)
    ok(client.post(f"/api/v1/consent/subjects/{state['consent_id']}/withdraw", json={}, headers=dpo), 201)
    row = rows(client, dpo)["7"]
    assert row["status"] == "CONFORME"
    assert row["evidence"]["consents_given_last_year"] == 1
    assert row["evidence"]["consents_withdrawn_last_year"] == 1
    assert row["evidence"]["choices_granted_last_year"] == 1


def test_arts_25_and_32_by_design_and_security(client: TestClient, tokens: dict[Role, str]) -> None:
    dpo = auth(tokens[Role.DPO])
    bare = ok(client.post(f"{BASE}/activities", json=minimal_activity(), headers=dpo), 201)
    found = rows(client, dpo)
    assert (found["25"]["status"], found["32"]["status"]) == ("ABSENT", "ABSENT")
    ok(client.put(f"{BASE}/activities/{bare['id']}", json=complete_activity(), headers=dpo))
    found = rows(client, dpo)
    assert (found["25"]["status"], found["32"]["status"]) == ("CONFORME", "CONFORME")
    health = minimal_activity("Suivi médical", special_categories=["health"], security_measures=["access_control"])
    second = ok(client.post(f"{BASE}/activities", json=health, headers=dpo), 201)
    found = rows(client, dpo)
    assert found["25"]["status"] == "PARTIEL"  # access control but no retention
    assert found["25"]["evidence"]["without_access_control_or_retention"] == [second["id"]]
    assert found["32"]["status"] == "PARTIEL"
    assert found["32"]["evidence"]["sensitive_without_encryption"] == [second["id"]]


def test_art_35_impact_assessments(client: TestClient, tokens: dict[Role, str]) -> None:
    dpo = auth(tokens[Role.DPO])
    health = ok(
        client.post(f"{BASE}/activities", json=complete_activity(special_categories=["health"]), headers=dpo), 201
    )
    assert status(client, dpo, "35") == "ABSENT"
    dpia = ok(client.post(f"{BASE}/dpias", json=samples.dpia(activity_id=health["id"]), headers=dpo), 201)
    row = rows(client, dpo)["35"]
    assert row["status"] == "PARTIEL" and row["evidence"]["dpias_not_validated"] == [dpia["id"]]
    validated = samples.dpia(activity_id=health["id"], validation={"status": "validated"})
    ok(client.put(f"{BASE}/dpias/{dpia['id']}", json=validated, headers=dpo))
    assert status(client, dpo, "35") == "CONFORME"
    risky = samples.dpia(activity_id=health["id"], validation={"status": "validated"})
    risky["risks"]["illegitimate_access"].update(severity=4, likelihood=3)
    ok(client.put(f"{BASE}/dpias/{dpia['id']}", json=risky, headers=dpo))
    row = rows(client, dpo)["35"]
    assert row["status"] == "PARTIEL" and row["evidence"]["prior_consultation_required"] == [dpia["id"]]


class Retention:
    """Stands in for the retention capability, which is developed apart: the figures it would give."""

    def __init__(self, policies: list[RetentionPolicyFact]) -> None:
        self.policies = policies

    def retention_policies(self, org_id: str) -> list[RetentionPolicyFact]:
        return self.policies

    def retention_runs(self, org_id: str, since: datetime, until: datetime) -> list[RetentionRunFact]:
        return []


def test_art_5_1_e_follows_the_retention_capability(
    client: TestClient, tokens: dict[Role, str], runtime: Runtime, org: str, tmp_path: Path
) -> None:
    dpo = auth(tokens[Role.DPO])
    activity = ok(client.post(f"{BASE}/activities", json=complete_activity(), headers=dpo), 201)
    row = rows(client, dpo)["5(1)(e)"]
    assert (row["status"], row["evidence"]["policies"]) == ("ABSENT", 0)
    with make_app("sqlite", tmp_path) as host:
        ok(client.put("/api/v1/datamaps/app", json={"document": host.map_yaml()}, headers=dpo))
        policy = ok(client.post("/api/v1/retention/policies", json=ACCOUNTS_POLICY, headers=dpo), 201)
        row = rows(client, dpo)["5(1)(e)"]
        assert row["status"] == "PARTIEL"
        assert row["evidence"]["activities_without_policy"] == [activity["id"]]
        assert row["evidence"]["policies_never_run"] == [policy["id"]]
        linked = complete_activity(retention_policy=ACCOUNTS_POLICY["name"])  # by name; an id works too
        ok(client.put(f"{BASE}/activities/{activity['id']}", json=linked, headers=dpo))
        assert rows(client, dpo)["5(1)(e)"]["evidence"]["activities_without_policy"] == []
        assert status(client, dpo, "5(1)(e)") == "PARTIEL"  # never run
        retention = client.app.state.retention  # type: ignore[attr-defined]
        runner = Runner(runtime, client.app.state.ledger, client.app.state.datamaps)  # type: ignore[attr-defined]
        row_of = retention.policy_row(org, policy["id"])
        runner.run_policy(org, row_of, dry_run=True, trigger="manual", actor={"type": "test", "id": "matrix"})
        assert status(client, dpo, "5(1)(e)") == "PARTIEL"  # a dry run is not a run
        runner.run_policy(org, row_of, dry_run=False, trigger="manual", actor={"type": "test", "id": "matrix"})
        row = rows(client, dpo)["5(1)(e)"]
        assert row["status"] == "CONFORME" and row["evidence"]["last_run_at"] is not None


def test_art_5_1_e_through_the_protocol(client: TestClient, tokens: dict[Role, str], org: str) -> None:
    """Another implementation of the protocol in place of the retention capability's reader."""
    dpo = auth(tokens[Role.DPO])
    linked = ok(
        client.post(f"{BASE}/activities", json=complete_activity(retention_policy="invoices"), headers=dpo), 201
    )
    evidence: Evidence = client.app.state.evidence  # type: ignore[attr-defined]
    assert retention_installed() and find_retention(Retention([])) is not None
    assert find_retention(object()) is None
    ran = datetime.now(UTC) - timedelta(days=1)
    plugged = Evidence(evidence.registers, evidence.notices, evidence.consent, evidence.rights, lambda: Retention([]))
    assert compliance.storage_limitation(plugged.facts(org)).status is compliance.Status.ABSENT
    invoices = RetentionPolicyFact("invoices", "10 years", last_run_at=ran, last_run_ok=True)
    plugged.retention = lambda: Retention([invoices])
    assert compliance.storage_limitation(plugged.facts(org)).status is compliance.Status.CONFORME
    plugged.retention = lambda: Retention([dataclasses.replace(invoices, last_run_ok=False)])
    verdict = compliance.storage_limitation(plugged.facts(org))
    assert (verdict.status, verdict.evidence["policies_last_run_failed"]) == (compliance.Status.PARTIEL, ["invoices"])
    plugged.retention = lambda: Retention([dataclasses.replace(invoices, key="contracts")])
    verdict = compliance.storage_limitation(plugged.facts(org))
    assert verdict.status is compliance.Status.PARTIEL
    assert verdict.evidence["unknown_policy_keys"] == ["invoices"]
    ok(client.post(f"{BASE}/activities", json=complete_activity("Paie"), headers=dpo), 201)
    plugged.retention = lambda: Retention([invoices])
    verdict = compliance.storage_limitation(plugged.facts(org))
    assert verdict.status is compliance.Status.PARTIEL
    assert linked["id"] not in verdict.evidence["activities_without_policy"]
    assert len(verdict.evidence["activities_without_policy"]) == 1


def test_matrix_roles_and_html(client: TestClient, tokens: dict[Role, str]) -> None:
    for role in (Role.ADMIN, Role.DPO, Role.AUDITOR):
        ok(client.get(f"{BASE}/compliance", headers=auth(tokens[role])))
    for role in (Role.OPERATOR, Role.SERVICE):
        ok(client.get(f"{BASE}/compliance", headers=auth(tokens[role])), 403)
    page = client.get(f"{BASE}/compliance", params={"format": "html", "lang": "fr"}, headers=auth(tokens[Role.DPO]))
    assert page.status_code == 200 and "Matrice de conformité" in page.text
    assert page.text.count('<tr class="absent">') == 7
    ok(client.get(f"{BASE}/compliance", params={"lang": "de"}, headers=auth(tokens[Role.DPO])), 422)
