"""The period report counted over a seeded state (consent, requests, breaches, retention, ledger), as
JSON, as HTML with its SVG charts and as a PDF that parses and carries the same figures; the
register's PDF and ODS exports."""

from __future__ import annotations

import hashlib
import io
import xml.etree.ElementTree as ET
import zipfile
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest
from fastapi.testclient import TestClient
from pypdf import PdfReader

from gardien.core.roles import Role
from gardien.core.runtime import Runtime
from gardien.registers.exports import CONTROLLER_COLUMNS, ODS_MEDIA_TYPE
from gardien.retention.jobs import Runner
from gardien.retention.service import RetentionService
from tests import registers_samples as samples
from tests.conftest import auth
from tests.consent_samples import sample_notice
from tests.retention_samples import ACCOUNTS, NOW, App, make_app
from tests.test_registers_matrix import ACCOUNTS_POLICY, _answer, _request, complete_activity, ok

BASE = "/api/v1/registers"


@pytest.fixture
def host(tmp_path: Path) -> Iterator[App]:
    with make_app("sqlite", tmp_path) as made:
        yield made


@pytest.fixture
def seeded(client: TestClient, tokens: dict[Role, str], runtime: Runtime, org: str, host: App) -> dict[str, Any]:
    """Thirty days of activity, plus older entries the report must leave out."""
    dpo, service = auth(tokens[Role.DPO]), auth(tokens[Role.SERVICE])
    now = datetime.now(UTC)
    ok(client.post("/api/v1/consent/notices", json=sample_notice(), headers=dpo), 201)
    choices = [
        {"method": "custom", "states": {"analytics": "granted", "marketing": "denied"}},
        {"method": "accept_all"},
        {"method": "reject_all"},
    ]
    first, *_ = [ok(client.post("/api/v1/consent/records", json=c, headers=service), 201) for c in choices]
    ok(client.post(f"/api/v1/consent/subjects/{first['consent_id']}/withdraw", json={}, headers=dpo), 201)

    late = _request(client, dpo, now - timedelta(days=70))  # received before the period, answered late in it
    _answer(client, dpo, late)
    _answer(client, dpo, _request(client, dpo, now - timedelta(days=2)))
    _answer(client, dpo, _request(client, dpo, now - timedelta(days=5), "erasure"))
    _request(client, dpo, now - timedelta(days=1), "portability")  # open, not yet due
    _request(client, dpo, now - timedelta(days=40))  # before the period, open and overdue

    ok(client.post(f"{BASE}/breaches", json=samples.breach(now - timedelta(hours=80), risk="risk"), headers=dpo), 201)
    high = ok(client.post(f"{BASE}/breaches", json=samples.breach(now - timedelta(hours=10)), headers=dpo), 201)
    notification = {"kind": "initial", "sent_at": samples.iso(now), "authority": "cnil"}
    ok(client.post(f"{BASE}/breaches/{high['id']}/notifications", json=notification, headers=dpo), 201)
    old = samples.breach(now - timedelta(days=60), risk="none", no_notification_reason="chiffré")
    ok(client.post(f"{BASE}/breaches", json=old, headers=dpo), 201)

    cutoff = NOW.replace(year=NOW.year - 2, tzinfo=None)
    inactive = sum(1 for row in host.rows(host.accounts) if row["last_login"] < cutoff)  # type: ignore[operator]
    assert 0 < inactive < ACCOUNTS
    ok(client.put("/api/v1/datamaps/app", json={"document": host.map_yaml()}, headers=dpo))
    policy = ok(client.post("/api/v1/retention/policies", json=ACCOUNTS_POLICY, headers=dpo), 201)
    retention: RetentionService = client.app.state.retention  # type: ignore[attr-defined]
    runner = Runner(runtime, client.app.state.ledger, client.app.state.datamaps)  # type: ignore[attr-defined]
    actor = {"type": "test", "id": "report"}
    runner.run_policy(org, retention.policy_row(org, policy["id"]), dry_run=False, trigger="manual", actor=actor)
    runner.run_policy(org, retention.policy_row(org, policy["id"]), dry_run=True, trigger="manual", actor=actor)
    assert host.count(host.accounts) == ACCOUNTS - inactive  # the real run deleted them, and only them
    return {"since": (now - timedelta(days=30)).date(), "until": now.date(), "late": late, "inactive": inactive}


def _report(client: TestClient, headers: dict[str, str], seeded: dict[str, Any], **params: Any) -> Any:
    query = {"since": seeded["since"].isoformat(), "until": seeded["until"].isoformat(), **params}
    return client.get(f"{BASE}/report", params=query, headers=headers)


def test_report_counts_the_period(client: TestClient, tokens: dict[Role, str], seeded: dict[str, Any]) -> None:
    report = ok(_report(client, auth(tokens[Role.AUDITOR]), seeded))
    assert (report["since"], report["until"]) == (seeded["since"].isoformat(), seeded["until"].isoformat())

    consent = report["consent"]
    assert (consent["given"], consent["withdrawn"]) == (2, 1)  # two choices granted something; one withdrawal
    # Per purpose: the custom choice, accept-all, reject-all, then the withdrawal refusing both.
    assert {p["purpose"]: (p["granted"], p["denied"]) for p in consent["by_purpose"]} == {
        "analytics": (2, 2),
        "marketing": (1, 3),
    }
    assert (consent["choices_granted"], consent["choices_denied"]) == (3, 5)
    assert sum(m["given"] for m in consent["by_month"]) == 2

    requests = report["requests"]
    assert (requests["received"], requests["answered"], requests["answered_in_time"]) == (3, 3, 2)
    assert requests["share_in_time"] == 0.6667
    assert requests["overdue_now"] == 1
    by_type = {t["type"]: t for t in requests["by_type"]}
    assert (by_type["access"]["received"], by_type["access"]["answered"], by_type["access"]["answered_in_time"]) == (
        1,
        2,
        1,
    )
    assert by_type["access"]["share_in_time"] == 0.5
    assert (by_type["erasure"]["answered_in_time"], by_type["portability"]["received"]) == (1, 1)
    assert by_type["rectification"]["received"] == 0
    assert report["erasures"]["requests_completed"] == 1
    assert report["exports"]["requests_completed"] == 2

    breaches = report["breaches"]
    assert breaches["recorded"] == 2  # the one of sixty days ago is outside the period
    assert (breaches["notified_in_time"], breaches["not_notified_overdue"], breaches["high_risk"]) == (1, 1, 1)
    assert breaches["subjects_approx"] == 2400

    assert report["retention"] == {
        "available": True,
        "runs": 1,  # the dry run is not a run
        "succeeded": 1,
        "failed": 0,
        "records_affected": seeded["inactive"],
    }
    assert report["ledger"]["status"] == "ok" and report["ledger"]["events_checked"] > 20
    assert report["dpia_events"]["CONSENT_GRANTED"] == 2
    assert report["dpia_events"]["CONSENT_REVOKED"] == 1


def test_report_generation_is_recorded(client: TestClient, tokens: dict[Role, str], seeded: dict[str, Any]) -> None:
    dpo = auth(tokens[Role.DPO])
    report = ok(_report(client, dpo, seeded))
    events = ok(client.get("/api/v1/audit/events", params={"action": "registers.report.generated"}, headers=dpo))
    fields = events["events"][-1]["fields"]
    assert (fields["since"], fields["until"], fields["format"]) == (report["since"], report["until"], "json")
    figures = orjson.dumps(report, option=orjson.OPT_SORT_KEYS)
    assert fields["figures_sha256"] == hashlib.sha256(figures).hexdigest()
    verified = ok(client.get("/api/v1/audit/events", params={"action": "audit.verified"}, headers=dpo))["events"]
    assert verified and verified[-1]["fields"]["status"] == "ok"


def test_report_html_has_its_charts(client: TestClient, tokens: dict[Role, str], seeded: dict[str, Any]) -> None:
    page = _report(client, auth(tokens[Role.DPO]), seeded, format="html", lang="fr")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    html = page.text
    assert "<script" not in html
    assert html.count('<svg xmlns="http://www.w3.org/2000/svg" role="img"') == 3
    assert "<desc>access: Reçues 1, Traitées dans le délai 1; rectification: Reçues 0" in html
    assert "66.7 %" in html  # the share answered in time
    assert "Consentements retirés" in html


def test_report_pdf_parses_and_carries_the_figures(
    client: TestClient, tokens: dict[Role, str], seeded: dict[str, Any]
) -> None:
    response = _report(client, auth(tokens[Role.DPO]), seeded, format="pdf", lang="fr")
    assert response.status_code == 200 and response.headers["content-type"] == "application/pdf"
    assert response.headers["content-disposition"].startswith('attachment; filename="report-')
    reader = PdfReader(io.BytesIO(response.content))
    assert reader.metadata is not None and reader.metadata.title.startswith("Rapport d'activité")
    text = "\n".join(page.extract_text() for page in reader.pages)
    for line in (
        "Consentements donnés 2",
        "Consentements retirés 1",
        "Reçues 3",
        "Traitées dans le délai 2",
        "Part traitée dans le délai 66.7 %",
        "En retard à l'édition du rapport 1",
        "Notifiées sous 72 heures 1",
        "Personnes concernées (environ) 2400",
        "Exécutions 1",
        "Vérification ok",
        "CONSENT_REVOKED 1",
    ):
        assert line in text, line


def test_report_period_and_roles(client: TestClient, tokens: dict[Role, str]) -> None:
    dpo = auth(tokens[Role.DPO])
    blank = ok(client.get(f"{BASE}/report", headers=dpo))
    assert date.fromisoformat(blank["until"]) - date.fromisoformat(blank["since"]) == timedelta(days=364)
    assert blank["requests"]["share_in_time"] is None and blank["breaches"]["recorded"] == 0
    ok(client.get(f"{BASE}/report", params={"since": "2026-02-01", "until": "2026-01-01"}, headers=dpo), 422)
    ok(client.get(f"{BASE}/report", params={"since": "2024-01-01", "until": "2026-01-01"}, headers=dpo), 422)
    ok(client.get(f"{BASE}/report", params={"since": "0001-01-01"}, headers=dpo), 422)
    pdf = client.get(f"{BASE}/report", params={"format": "pdf"}, headers=dpo)
    assert "Requests per type" in PdfReader(io.BytesIO(pdf.content)).pages[0].extract_text()
    for role in (Role.OPERATOR, Role.SERVICE):
        ok(client.get(f"{BASE}/report", headers=auth(tokens[role])), 403)


def test_register_as_ods_and_pdf(client: TestClient, tokens: dict[Role, str]) -> None:
    dpo = auth(tokens[Role.DPO])
    ok(client.put(f"{BASE}/settings", json=samples.settings(), headers=dpo))
    ok(client.post(f"{BASE}/activities", json=samples.controller_activity(), headers=dpo), 201)
    ok(client.post(f"{BASE}/activities", json=complete_activity('=HYPERLINK("x")'), headers=dpo), 201)
    ok(client.post(f"{BASE}/activities", json=samples.processor_activity(), headers=dpo), 201)

    ods = client.get(f"{BASE}/activities/export", params={"format": "ods"}, headers=dpo)
    assert ods.status_code == 200 and ods.headers["content-type"] == ODS_MEDIA_TYPE
    package = zipfile.ZipFile(io.BytesIO(ods.content))
    first = package.infolist()[0]
    assert (first.filename, first.compress_type) == ("mimetype", zipfile.ZIP_STORED)
    assert package.read("mimetype").decode() == ODS_MEDIA_TYPE
    ns = {
        "table": "urn:oasis:names:tc:opendocument:xmlns:table:1.0",
        "text": "urn:oasis:names:tc:opendocument:xmlns:text:1.0",
    }
    content = ET.fromstring(package.read("content.xml"))
    sheets = content.findall(".//table:table", ns)
    assert [s.get(f"{{{ns['table']}}}name") for s in sheets] == ["Registre (art. 30.1)", "Sous-traitant (art. 30.2)"]

    def cells(sheet: ET.Element) -> list[list[str]]:
        return [
            [
                "\n".join(p.text or "" for p in cell.findall("text:p", ns))
                for cell in row.findall("table:table-cell", ns)
            ]
            for row in sheet.findall("table:table-row", ns)
        ]

    controller = cells(sheets[0])
    assert controller[0] == [label for _, label, _ in CONTROLLER_COLUMNS]
    assert [row[1] for row in controller[1:]] == ["Billetterie en ligne", '\'=HYPERLINK("x")']
    assert controller[1][controller[0].index("Catégories de personnes concernées")] == "clients\nprospects"
    assert cells(sheets[1])[1][1] == "Hébergement des billetteries partenaires"

    pdf = client.get(f"{BASE}/activities/export", params={"format": "pdf"}, headers=dpo)
    assert pdf.status_code == 200 and pdf.headers["content-type"] == "application/pdf"
    text = "\n".join(page.extract_text() for page in PdfReader(io.BytesIO(pdf.content)).pages)
    for expected in (
        "Registre des activités de traitement",
        "Les Ogres de Barback SARL",
        "Billetterie en ligne",
        "Vente de billets",
        "Mailjet Inc., US, cadre de protection des données UE",
        "Hébergement des billetteries partenaires",
    ):
        assert expected in text, expected
    ok(client.get(f"{BASE}/activities/export", params={"format": "pdf"}, headers=auth(tokens[Role.OPERATOR])), 403)
