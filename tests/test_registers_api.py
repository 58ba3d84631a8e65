"""Registers over HTTP, on SQLite and PostgreSQL: records, roles, pagination, audit events in the
same transaction, processor alerts, breach notifications and the DPIA event log."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from gardien.audit.models import EVENTS as LEDGER
from gardien.core.roles import Role
from gardien.core.runtime import Runtime
from gardien.registers.models import BREACHES
from tests import registers_samples as samples
from tests.conftest import auth, make_key

BASE = "/api/v1/registers"


def ok(response: Any, status: int = 200) -> Any:
    assert response.status_code == status, response.text
    return response.json() if response.content else None


def ledger_events(client: TestClient, tokens: dict[Role, str], target: str) -> list[dict[str, Any]]:
    page = ok(client.get("/api/v1/audit/events", params={"target": target}, headers=auth(tokens[Role.AUDITOR])))
    return [e for e in page["events"] if e["module"] == "registers"]


def test_activity_lifecycle_is_audited(client: TestClient, tokens: dict[Role, str]) -> None:
    dpo = auth(tokens[Role.DPO])
    created = ok(client.post(f"{BASE}/activities", json=samples.controller_activity(), headers=dpo), 201)
    assert created["version"] == 1
    assert created["sensitive"] is True  # health data, Art. 9
    assert created["transfers_outside_eea"] == 1
    assert created["record"]["purposes"][1]["legitimate_interest"] == "éviter les impayés"

    changed = samples.controller_activity()
    changed["nir"] = True
    changed["special_categories"] = []
    updated = ok(client.put(f"{BASE}/activities/{created['id']}", json=changed, headers=dpo))
    assert updated["version"] == 2
    assert updated["sensitive"] is True  # the NIR alone flags it

    ok(client.delete(f"{BASE}/activities/{created['id']}", headers=dpo), 204)
    ok(client.get(f"{BASE}/activities/{created['id']}", headers=dpo), 404)

    events = ledger_events(client, tokens, created["id"])
    assert [e["action"] for e in events] == [
        "registers.activity.created",
        "registers.activity.updated",
        "registers.activity.deleted",
    ]
    assert events[1]["fields"]["changed"] == ["nir", "special_categories"]
    assert events[1]["fields"]["version"] == 2
    assert events[0]["target"] == {"type": "register_activity", "id": created["id"], "display": "Billetterie en ligne"}


def test_processor_records_are_art_30_2(client: TestClient, tokens: dict[Role, str]) -> None:
    dpo = auth(tokens[Role.DPO])
    ok(client.post(f"{BASE}/activities", json=samples.controller_activity(), headers=dpo), 201)
    ok(client.post(f"{BASE}/activities", json=samples.processor_activity(), headers=dpo), 201)
    page = ok(client.get(f"{BASE}/activities", params={"role": "processor"}, headers=dpo))
    assert [item["record"]["name"] for item in page["items"]] == ["Hébergement des billetteries partenaires"]
    missing = samples.processor_activity()
    missing["controllers"] = []
    problem = ok(client.post(f"{BASE}/activities", json=missing, headers=dpo), 422)
    assert any(e["field"].endswith("controllers") for e in problem["errors"])


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"transfers": [{"recipient": "OVH", "country": "DE", "safeguard": "scc"}]}, "transfers"),
        ({"purposes": [{"name": "Prospection", "legal_basis": "legitimate_interests"}]}, "purposes"),
        ({"purposes": []}, "purposes"),
        ({"special_categories": ["astrology"]}, "special_categories"),
        ({"name": "x" * 201}, "name"),
    ],
)
def test_bad_activity_is_422_and_changes_nothing(
    client: TestClient, tokens: dict[Role, str], change: dict[str, Any], field: str
) -> None:
    dpo = auth(tokens[Role.DPO])
    body = samples.controller_activity() | change
    problem = ok(client.post(f"{BASE}/activities", json=body, headers=dpo), 422)
    assert problem["type"].endswith("/validation")
    assert any(field in e["field"] for e in problem["errors"]), problem
    assert ok(client.get(f"{BASE}/activities", headers=dpo))["items"] == []


def test_cursor_pagination_visits_every_entry_once(client: TestClient, tokens: dict[Role, str]) -> None:
    dpo = auth(tokens[Role.DPO])
    names = [f"Traitement {i}" for i in range(5)]
    for name in names:
        ok(client.post(f"{BASE}/activities", json=samples.controller_activity(name), headers=dpo), 201)
    seen: list[str] = []
    cursor = None
    pages = 0
    while True:
        params: dict[str, Any] = {"limit": 2} | ({"cursor": cursor} if cursor else {})
        page = ok(client.get(f"{BASE}/activities", params=params, headers=dpo))
        seen += [item["record"]["name"] for item in page["items"]]
        pages += 1
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == names
    assert pages == 3


def test_roles_and_organisations(client: TestClient, runtime: Runtime, tokens: dict[Role, str]) -> None:
    dpo = auth(tokens[Role.DPO])
    activity = ok(client.post(f"{BASE}/activities", json=samples.controller_activity(), headers=dpo), 201)
    dpia = ok(client.post(f"{BASE}/dpias", json=samples.dpia(), headers=dpo), 201)
    for role in (Role.ADMIN, Role.DPO, Role.AUDITOR, Role.OPERATOR):
        ok(client.get(f"{BASE}/activities/{activity['id']}", headers=auth(tokens[role])))
        ok(client.get(f"{BASE}/processors/alerts", headers=auth(tokens[role])))
    for role in (Role.AUDITOR, Role.OPERATOR, Role.SERVICE):
        ok(client.post(f"{BASE}/activities", json=samples.controller_activity(), headers=auth(tokens[role])), 403)
        ok(client.delete(f"{BASE}/activities/{activity['id']}", headers=auth(tokens[role])), 403)
    ok(client.get(f"{BASE}/activities", headers=auth(tokens[Role.SERVICE])), 403)
    ok(client.get(f"{BASE}/breaches", headers=auth(tokens[Role.SERVICE])), 403)
    ok(client.get(f"{BASE}/dpias/{dpia['id']}", headers=auth(tokens[Role.OPERATOR])), 403)
    ok(client.get(f"{BASE}/dpias/{dpia['id']}", headers=auth(tokens[Role.AUDITOR])))
    ok(client.get(f"{BASE}/dpia-events", headers=auth(tokens[Role.OPERATOR])), 403)

    with runtime.writes.begin() as session:
        from gardien.core import service

        other = service.create_org(session, slug=f"other-{activity['id'][-8:]}", name="Other").id
    stranger = auth(make_key(runtime, other, Role.DPO))
    ok(client.get(f"{BASE}/activities/{activity['id']}", headers=stranger), 404)
    ok(client.put(f"{BASE}/activities/{activity['id']}", json=samples.controller_activity(), headers=stranger), 404)
    ok(client.delete(f"{BASE}/dpias/{dpia['id']}", headers=stranger), 404)
    assert ok(client.get(f"{BASE}/activities", headers=stranger))["items"] == []


def test_settings_header(client: TestClient, tokens: dict[Role, str]) -> None:
    dpo = auth(tokens[Role.DPO])
    ok(client.get(f"{BASE}/settings", headers=dpo), 404)
    first = ok(client.put(f"{BASE}/settings", json=samples.settings(), headers=dpo))
    assert first["version"] == 1
    body = samples.settings() | {"authority": "apd"}
    second = ok(client.put(f"{BASE}/settings", json=body, headers=dpo))
    assert (second["version"], second["record"]["authority"]) == (2, "apd")
    assert (
        ok(client.get(f"{BASE}/settings", headers=auth(tokens[Role.AUDITOR])))["record"]["dpo"]["name"]
        == "Karim Benali"
    )


def test_processor_alerts(client: TestClient, tokens: dict[Role, str]) -> None:
    dpo = auth(tokens[Role.DPO])
    today = date.today()
    good = ok(client.post(f"{BASE}/processors", json=samples.processor(), headers=dpo), 201)
    assert good["alerts"] == []
    no_dpa = ok(
        client.post(f"{BASE}/processors", json=samples.processor(name="Sans contrat", dpa={}), headers=dpo), 201
    )
    expired = samples.processor(
        name="Contrat échu", dpa={"signed_on": "2020-01-15", "review_on": (today - timedelta(days=1)).isoformat()}
    )
    expired["clauses"] = {"a_instructions": True, "h_audits": True}
    expired["locations"] = [{"country": "IN", "transfer_tool": "none"}]
    expired_out = ok(client.post(f"{BASE}/processors", json=expired, headers=dpo), 201)
    due = samples.processor(
        name="Revue proche", dpa={"signed_on": "2024-01-01", "review_on": (today + timedelta(days=30)).isoformat()}
    )
    ok(client.post(f"{BASE}/processors", json=due, headers=dpo), 201)

    alerts = ok(client.get(f"{BASE}/processors/alerts", headers=auth(tokens[Role.OPERATOR])))["alerts"]
    kinds = {(a["processor"], a["kind"]) for a in alerts}
    assert kinds == {
        ("Sans contrat", "dpa_missing"),
        ("Contrat échu", "dpa_expired"),
        ("Contrat échu", "clauses_missing"),
        ("Contrat échu", "transfer_without_safeguard"),
        ("Revue proche", "dpa_review_due"),
    }
    clauses = next(a for a in alerts if a["kind"] == "clauses_missing")
    assert "(b) confidentiality" in clauses["detail"] and "(a)" not in clauses["detail"]
    assert "IN" in next(a for a in alerts if a["kind"] == "transfer_without_safeguard")["detail"]
    assert no_dpa["alerts"] == ["dpa_missing"]
    assert expired_out["alerts"] == ["dpa_expired", "clauses_missing", "transfer_without_safeguard"]


def test_breach_notification_late_needs_reasons(client: TestClient, runtime: Runtime, tokens: dict[Role, str]) -> None:
    dpo = auth(tokens[Role.DPO])
    aware = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=100)
    created = ok(client.post(f"{BASE}/breaches", json=samples.breach(aware), headers=dpo), 201)
    assert created["clock"]["state"] == "overdue"
    assert created["clock"]["deadline"].startswith(samples.iso(aware + timedelta(hours=72))[:19])
    assert created["communication_required"] is True
    breach_id = created["id"]

    # A complementary notification cannot come first.
    complementary = {"kind": "complementary", "sent_at": samples.iso(aware + timedelta(hours=90)), "authority": "cnil"}
    ok(client.post(f"{BASE}/breaches/{breach_id}/notifications", json=complementary, headers=dpo), 409)
    # Sent 75 hours after awareness: Art. 33(1) wants the reasons.
    initial = {"kind": "initial", "sent_at": samples.iso(aware + timedelta(hours=75)), "authority": "cnil"}
    problem = ok(client.post(f"{BASE}/breaches/{breach_id}/notifications", json=initial, headers=dpo), 422)
    assert problem["errors"][0]["field"] == "late_reasons"
    with runtime.engine.connect() as conn:
        version = conn.execute(select(BREACHES.c.version).where(BREACHES.c.id == breach_id)).scalar_one()
    assert version == 1  # refused notifications changed nothing

    initial["late_reasons"] = "Le périmètre n'a été établi que le lundi."
    notified = ok(client.post(f"{BASE}/breaches/{breach_id}/notifications", json=initial, headers=dpo), 201)
    assert notified["clock"]["state"] == "notified_late"
    assert notified["clock"]["hours_elapsed"] == 75
    assert notified["record"]["late_reasons"].startswith("Le périmètre")
    ok(client.post(f"{BASE}/breaches/{breach_id}/notifications", json=initial, headers=dpo), 409)
    done = ok(client.post(f"{BASE}/breaches/{breach_id}/notifications", json=complementary, headers=dpo), 201)
    assert [n["kind"] for n in done["notifications"]] == ["initial", "complementary"]
    assert done["version"] == 3

    actions = [e["action"] for e in ledger_events(client, tokens, breach_id)]
    assert actions == ["registers.breach.created", "registers.breach.notified", "registers.breach.notified"]
    # Art. 33(5): breaches are documented for good; there is no delete.
    ok(client.delete(f"{BASE}/breaches/{breach_id}", headers=dpo), 405)


def test_breach_in_time_and_not_required(client: TestClient, tokens: dict[Role, str]) -> None:
    dpo = auth(tokens[Role.DPO])
    aware = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=10)
    created = ok(client.post(f"{BASE}/breaches", json=samples.breach(aware, risk="risk"), headers=dpo), 201)
    assert created["clock"]["state"] == "running"
    assert 61.9 < created["clock"]["hours_remaining"] <= 62
    assert created["communication_required"] is False
    sent = {"kind": "initial", "sent_at": samples.iso(aware + timedelta(hours=2)), "authority": "cnil"}
    assert (
        ok(client.post(f"{BASE}/breaches/{created['id']}/notifications", json=sent, headers=dpo), 201)["clock"]["state"]
        == "notified_in_time"
    )

    ok(client.post(f"{BASE}/breaches", json=samples.breach(aware, risk="none"), headers=dpo), 422)
    minor = samples.breach(aware, risk="none", no_notification_reason="données chiffrées, clé non compromise")
    assert ok(client.post(f"{BASE}/breaches", json=minor, headers=dpo), 201)["clock"]["state"] == "not_required"
    future = samples.breach(datetime.now(UTC) + timedelta(days=1))
    ok(client.post(f"{BASE}/breaches", json=future, headers=dpo), 422)
    ancient = samples.breach(aware) | {"aware_at": "0001-01-01T00:00:00+23:59"}
    assert ok(client.post(f"{BASE}/breaches", json=ancient, headers=dpo), 422)["errors"][0]["field"] == "aware_at"
    listed = ok(client.get(f"{BASE}/breaches", headers=auth(tokens[Role.OPERATOR])))
    assert len(listed["items"]) == 2


def test_dpia_and_its_event_log(client: TestClient, runtime: Runtime, tokens: dict[Role, str]) -> None:
    dpo = auth(tokens[Role.DPO])
    created = ok(client.post(f"{BASE}/dpias", json=samples.dpia(), headers=dpo), 201)
    assert created["prior_consultation"] is False
    risky = samples.dpia()
    risky["risks"]["illegitimate_access"]["likelihood"] = 3
    assert ok(client.put(f"{BASE}/dpias/{created['id']}", json=risky, headers=dpo))["prior_consultation"] is True
    bad = samples.dpia()
    bad["risks"]["illegitimate_access"]["severity"] = 5
    ok(client.post(f"{BASE}/dpias", json=bad, headers=dpo), 422)
    unlinked = ok(client.post(f"{BASE}/dpias", json=samples.dpia(activity_id=created["id"]), headers=dpo), 422)
    assert unlinked["errors"][0]["field"] == "activity_id"
    activity = ok(client.post(f"{BASE}/activities", json=samples.controller_activity(), headers=dpo), 201)
    linked = ok(client.put(f"{BASE}/dpias/{created['id']}", json=risky | {"activity_id": activity["id"]}, headers=dpo))
    assert linked["record"]["activity_id"] == activity["id"]

    # Other capabilities' events reach the log through their dpia_event tag, whatever their module.
    writer = auth(tokens[Role.SERVICE])
    tagged = {"module": "shop", "action": "customer.export", "crud": "read", "actor": {"type": "user", "id": "u1"}}
    for value in ("DATA_EXPORT", "DATA_EXPORT", "NOT_A_DPIA_EVENT"):
        ok(client.post("/api/v1/audit/events", json=tagged | {"fields": {"dpia_event": value}}, headers=writer), 201)
    nested = tagged | {"changes": {"before": None, "after": {"dpia_event": "DATA_DELETION"}}}
    ok(client.post("/api/v1/audit/events", json=nested, headers=writer), 201)

    summary = ok(client.get(f"{BASE}/dpia-events", params={"period": "all"}, headers=auth(tokens[Role.AUDITOR])))
    assert len(summary["periods"]) == 1
    counts = {e["event"]: e["count"] for e in summary["periods"][0]["events"]}
    assert counts["RISK_ASSESSMENT"] == 3  # created, updated twice
    assert counts["DATA_EXPORT"] == 2
    assert counts["DATA_DELETION"] == 0
    assert set(counts) >= {
        "DATA_ANONYMIZATION",
        "DATA_DELETION",
        "DATA_EXPORT",
        "DATA_ACCESS",
        "CONSENT_GRANTED",
        "CONSENT_REVOKED",
        "SCA_TRIGGERED",
        "RISK_ASSESSMENT",
    }
    last = {e["event"]: e["last_at"] for e in summary["periods"][0]["events"]}
    assert last["DATA_DELETION"] is None and last["DATA_EXPORT"] is not None

    month = datetime.now(UTC).strftime("%Y-%m")
    by_month = ok(client.get(f"{BASE}/dpia-events", params={"period": "month"}, headers=dpo))
    assert [p["period"] for p in by_month["periods"]] == [month]
    past = {"since": "2020-01-01T00:00:00Z", "until": "2020-02-01T00:00:00Z", "period": "day"}
    assert ok(client.get(f"{BASE}/dpia-events", params=past, headers=dpo))["periods"] == []
    too_long = {"since": "2020-01-01T00:00:00Z", "until": "2022-01-01T00:00:00Z", "period": "day"}
    ok(client.get(f"{BASE}/dpia-events", params=too_long, headers=dpo), 422)
    ok(client.get(f"{BASE}/dpia-events", params={"until": "9999-12-31T23:59:59-23:59"}, headers=dpo), 422)

    with runtime.engine.connect() as conn:
        seals = conn.execute(
            select(func.count()).where(LEDGER.c.target_id == created["id"], LEDGER.c.module == "registers")
        ).scalar_one()
    assert seals == 3
