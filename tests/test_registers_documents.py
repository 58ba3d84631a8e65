"""What the registers hand out: the Art. 30 register as XLSX, CSV, JSON and HTML; the breach
notification pre-filled for each authority; the Art. 34 communication; the PIA tool's JSON."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import openpyxl
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from gardien.core.roles import Role
from tests import registers_samples as samples
from tests.conftest import auth
from tests.test_cli import cli, run  # noqa: F401  (the CLI runner fixture, pointed at the test database)
from tests.test_registers_api import BASE, ledger_events, ok


def _register(client: TestClient, dpo: dict[str, str]) -> None:
    ok(client.put(f"{BASE}/settings", json=samples.settings(), headers=dpo))
    tricky = samples.controller_activity('=HYPERLINK("http://evil.example")')
    tricky["description"] = "<script>alert(1)</script>"
    tricky["retention"] = "bell\x07 in the text"
    ok(client.post(f"{BASE}/activities", json=samples.controller_activity(), headers=dpo), 201)
    ok(client.post(f"{BASE}/activities", json=tricky, headers=dpo), 201)
    ok(client.post(f"{BASE}/activities", json=samples.processor_activity(), headers=dpo), 201)


def test_register_as_xlsx_with_cnil_columns(client: TestClient, tokens: dict[Role, str]) -> None:
    dpo = auth(tokens[Role.DPO])
    _register(client, dpo)
    response = client.get(f"{BASE}/activities/export", params={"format": "xlsx"}, headers=auth(tokens[Role.AUDITOR]))
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("application/vnd.openxmlformats")
    book = openpyxl.load_workbook(io.BytesIO(response.content))
    assert book.sheetnames == ["Registre (art. 30.1)", "Sous-traitant (art. 30.2)"]
    rows = list(book["Registre (art. 30.1)"].iter_rows(values_only=True))
    titles = rows[0]
    for title in (
        "Nom du traitement",
        "Finalité principale",
        "Catégories de personnes concernées",
        "Données sensibles",
        "NIR",
        "Destinataires",
        "Transferts hors UE",
        "Mesures de sécurité",
        "Délégué à la protection des données",
    ):
        assert title in titles
    first = dict(zip(titles, rows[1], strict=True))
    assert first["Nom du traitement"] == "Billetterie en ligne"
    assert first["Finalité principale"] == "Vente de billets"
    assert first["Sous-finalités"] == "Lutte contre la fraude"
    assert first["Données sensibles"] == "Données de santé"
    assert (
        first["Transferts hors UE"] == "Mailjet Inc., US, cadre de protection des données UE–États-Unis, DPA annexe 3"
    )
    assert first["Base légale"] == (
        "Vente de billets: Exécution d'un contrat\nLutte contre la fraude: Intérêt légitime (éviter les impayés)"
    )
    assert first["Responsable du traitement"].startswith("Les Ogres de Barback SARL")
    assert "Karim Benali" in first["Délégué à la protection des données"]
    # A name that looks like a formula stays text, neutralised.
    assert dict(zip(titles, rows[2], strict=True))["Nom du traitement"] == '\'=HYPERLINK("http://evil.example")'
    assert len(rows) == 3
    assert dict(zip(titles, rows[2], strict=True))["Durée de conservation"] == "bell\ufffd in the text"
    processor_rows = list(book["Sous-traitant (art. 30.2)"].iter_rows(values_only=True))
    assert processor_rows[1][1] == "Hébergement des billetteries partenaires"
    assert processor_rows[1][3].startswith("Festival des Ogres")


def test_register_as_csv_json_and_html(client: TestClient, tokens: dict[Role, str]) -> None:
    dpo = auth(tokens[Role.DPO])
    _register(client, dpo)
    raw = client.get(f"{BASE}/activities/export", params={"format": "csv"}, headers=dpo)
    assert raw.headers["content-type"].startswith("text/csv")
    assert raw.content.startswith(b"\xef\xbb\xbf")
    rows = list(csv.DictReader(io.StringIO(raw.content.decode("utf-8-sig"))))
    assert [r["name"] for r in rows] == ["Billetterie en ligne", '\'=HYPERLINK("http://evil.example")']
    assert rows[0]["nir"] == "non"

    document = ok(client.get(f"{BASE}/activities/export", params={"format": "json"}, headers=dpo))
    assert document["header"]["dpo"]["name"] == "Karim Benali"
    assert [a["record"]["role"] for a in document["activities"]] == ["controller", "controller", "processor"]

    page = client.get(f"{BASE}/activities/export", params={"format": "html"}, headers=dpo)
    assert page.headers["content-type"].startswith("text/html")
    assert "Registre des activités de traitement" in page.text
    assert "Hébergement des billetteries partenaires" in page.text
    assert "<script>alert(1)</script>" not in page.text and "&lt;script&gt;" in page.text
    ok(client.get(f"{BASE}/activities/export", headers=auth(tokens[Role.OPERATOR])), 403)


def _breach(client: TestClient, dpo: dict[str, str], **overrides: Any) -> dict[str, Any]:
    aware = datetime(2026, 3, 27, 14, 0, tzinfo=UTC)
    return ok(client.post(f"{BASE}/breaches", json=samples.breach(aware, **overrides), headers=dpo), 201)  # type: ignore[no-any-return]


def test_notification_form_per_authority(client: TestClient, tokens: dict[Role, str]) -> None:
    dpo = auth(tokens[Role.DPO])
    ok(client.put(f"{BASE}/settings", json=samples.settings(), headers=dpo))
    breach = _breach(client, dpo)
    cnil = ok(client.get(f"{BASE}/breaches/{breach['id']}/notification-form", headers=auth(tokens[Role.AUDITOR])))
    assert cnil["authority"]["code"] == "cnil" and cnil["language"] == "fr"
    fields = {f["key"]: f for s in cnil["sections"] for f in s["fields"]}
    assert fields["subjects_approx"] == {
        "key": "subjects_approx",
        "label": "Nombre approximatif de personnes concernées",
        "value": 1200,
    }
    assert fields["records_approx"]["value"] == 1200
    # Shown in Paris time: 14:00 UTC on 27 March 2026 is 15:00 CET; the deadline 72 hours later is 16:00 CEST.
    assert fields["aware_at"]["value"] == "2026-03-27 15:00 CET"
    assert fields["deadline"]["value"] == "2026-03-30 16:00 CEST"
    assert "Karim Benali" in fields["dpo"]["value"]
    assert fields["consequences"]["value"] == "Risque d'hameçonnage ciblé."
    # Notified late (the breach is months old) without reasons yet: the form asks for them.
    assert fields["late_reasons"]["value"] is None

    gba = ok(
        client.get(
            f"{BASE}/breaches/{breach['id']}/notification-form", params={"authority": "apd", "lang": "nl"}, headers=dpo
        )
    )
    assert gba["authority"]["name"] == "Gegevensbeschermingsautoriteit (GBA)"
    labels = {f["key"]: f["label"] for s in gba["sections"] for f in s["fields"]}
    assert labels["subjects_approx"] == "Geschat aantal betrokkenen"
    assert {f["key"]: f["value"] for s in gba["sections"] for f in s["fields"]}["aware_at"] == "2026-03-27 15:00 CET"
    ap = ok(client.get(f"{BASE}/breaches/{breach['id']}/notification-form", params={"authority": "ap"}, headers=dpo))
    assert ap["language"] == "nl" and ap["authority"]["name"] == "Autoriteit Persoonsgegevens (AP)"
    problem = ok(
        client.get(
            f"{BASE}/breaches/{breach['id']}/notification-form", params={"authority": "cnil", "lang": "de"}, headers=dpo
        ),
        422,
    )
    assert problem["errors"][0]["field"] == "lang"
    html = client.get(f"{BASE}/breaches/{breach['id']}/notification-form", params={"format": "html"}, headers=dpo)
    assert html.status_code == 200 and "Notification d&#39;une violation de données personnelles" in html.text


def test_art_34_communication_in_four_languages(client: TestClient, tokens: dict[Role, str]) -> None:
    dpo = auth(tokens[Role.DPO])
    ok(client.put(f"{BASE}/settings", json=samples.settings() | {"authority": "apd"}, headers=dpo))
    breach = _breach(client, dpo)
    expected = {
        "fr": "Information importante concernant vos données personnelles",
        "nl": "Belangrijke informatie over uw persoonsgegevens",
        "en": "Important information about your personal data",
        "de": "Wichtige Information zu Ihren personenbezogenen Daten",
    }
    for lang, subject in expected.items():
        message = ok(client.get(f"{BASE}/breaches/{breach['id']}/communication", params={"lang": lang}, headers=dpo))
        assert message["subject"] == subject
        texts = " ".join(p["text"] for p in message["paragraphs"])
        # Art. 34(2) with Art. 33(3)(b)–(d): DPO contact, likely consequences, measures.
        assert "dpo@ogres.example" in texts
        assert "Risque d'hameçonnage ciblé." in texts
        assert "Chiffrement des exports." in texts
    nl = ok(client.get(f"{BASE}/breaches/{breach['id']}/communication", params={"lang": "nl"}, headers=dpo))
    assert any("Gegevensbeschermingsautoriteit" in p["text"] for p in nl["paragraphs"])
    html = client.get(
        f"{BASE}/breaches/{breach['id']}/communication", params={"lang": "de", "format": "html"}, headers=dpo
    )
    assert '<html lang="de">' in html.text

    ok(client.get(f"{BASE}/breaches/{_breach(client, dpo, risk='risk')['id']}/communication", headers=dpo), 409)
    encrypted = _breach(client, dpo, art34_exemption="encrypted")
    assert encrypted["communication_required"] is False
    ok(client.get(f"{BASE}/breaches/{encrypted['id']}/communication", headers=dpo), 409)
    ok(client.get(f"{BASE}/breaches/{breach['id']}/communication", headers=auth(tokens[Role.AUDITOR])), 403)


def pia_tool_export() -> dict[str, Any]:
    """A file in the PIA tool's export shape, written for this test."""
    return {
        "pia": {
            "name": "Application de suivi du sommeil",
            "author_name": "Alice Martin",
            "evaluator_name": "Bruno Petit",
            "validator_name": "Chloé Roux",
            "dpo_status": 1,
            "dpo_opinion": "Avis favorable sous réserve du plan d'action.",
            "dpos_names": "Karim Benali",
            "people_names": "Panel d'utilisateurs",
            "concerned_people_searched_opinion": True,
            "concerned_people_opinion": "",
            "concerned_people_status": 0,
            "status": 2,
            "rejection_reason": "",
            "category": "",
        },
        "answers": [
            {"pia_id": 3, "reference_to": 111, "data": {"text": "<p>Capteur de sommeil</p>", "gauge": 0, "list": []}},
            {
                "pia_id": 3,
                "reference_to": 215,
                "data": {"text": "Jusqu'à la suppression du compte", "gauge": 0, "list": []},
            },
            {
                "pia_id": 3,
                "reference_to": 321,
                "data": {"text": None, "gauge": None, "list": ["Atteinte à l'intimité"]},
            },
            {
                "pia_id": 3,
                "reference_to": 324,
                "data": {"text": None, "gauge": None, "list": ["Chiffrement", "Traçabilité"]},
            },
            {"pia_id": 3, "reference_to": 325, "data": {"text": "Données de santé", "gauge": 3, "list": []}},
            {"pia_id": 3, "reference_to": 326, "data": {"text": "Hébergeur certifié", "gauge": 2, "list": []}},
            {"pia_id": 3, "reference_to": 345, "data": {"text": None, "gauge": 0, "list": []}},
        ],
        "measures": [{"pia_id": 3, "title": "Chiffrement", "content": "AES-256 au repos"}],
        "evaluations": [
            {
                "reference_to": "2.1.215",
                "action_plan_comment": "Fixer une durée de conservation",
                "estimated_implementation_date": "2027-01-31T00:00:00.000Z",
                "status": 2,
            },
            {"reference_to": "1.1", "evaluation_comment": "Aucun commentaire.", "status": 3},
        ],
    }


def test_pia_tool_import_and_export(client: TestClient, tokens: dict[Role, str]) -> None:
    dpo = auth(tokens[Role.DPO])
    imported = ok(client.post(f"{BASE}/dpias/import-pia", json=pia_tool_export(), headers=dpo), 201)
    record = imported["record"]
    assert record["name"] == "Application de suivi du sommeil"
    assert record["context"]["processing"] == "<p>Capteur de sommeil</p>"
    assert record["principles"]["retention"] == "Jusqu'à la suppression du compte"
    access = record["risks"]["illegitimate_access"]
    assert (access["severity"], access["likelihood"]) == (3, 2)
    assert access["measures"] == ["Chiffrement", "Traçabilité"]
    assert record["risks"]["data_disappearance"]["severity"] is None  # the tool's 0 means "not set"
    assert record["action_plan"] == [
        {
            "reference": "2.1.215",
            "action": "Fixer une durée de conservation",
            "due_on": "2027-01-31",
            "owner": None,
            "status": "planned",
        }
    ]
    assert record["validation"]["dpo_status"] == "favourable"
    assert record["validation"]["people_status"] is None
    assert record["validation"]["status"] == "validated"
    events = ledger_events(client, tokens, imported["id"])
    assert [(e["action"], e["fields"]["dpia_event"]) for e in events] == [
        ("registers.dpia.imported", "RISK_ASSESSMENT")
    ]

    exported = ok(client.get(f"{BASE}/dpias/{imported['id']}/pia", headers=auth(tokens[Role.AUDITOR])))
    assert set(exported) == {"pia", "answers", "measures", "evaluations", "comments"}
    answers = {a["reference_to"]: a["data"] for a in exported["answers"]}
    assert answers[325] == {"text": "Données de santé", "gauge": 3, "list": []}
    assert answers[324]["list"] == ["Chiffrement", "Traçabilité"]
    assert exported["pia"]["dpo_status"] == 1
    # What Gardien exports, it imports to the same record.
    again = ok(client.post(f"{BASE}/dpias/import-pia", json=exported, headers=dpo), 201)
    assert again["record"] == record

    bad = pia_tool_export()
    bad["answers"].append({"reference_to": 335, "data": {"text": "", "gauge": 7, "list": []}})
    problem = ok(client.post(f"{BASE}/dpias/import-pia", json=bad, headers=dpo), 422)
    assert problem["errors"][0]["field"] == "risks.unwanted_modification.severity"
    ok(client.post(f"{BASE}/dpias/import-pia", json={"answers": []}, headers=dpo), 422)
    # Members of the wrong shape are skipped or refused, never a server error.
    odd = {"pia": {"name": "x"}, "answers": [{"reference_to": 321, "data": {"list": 5}}], "measures": 3}
    assert ok(client.post(f"{BASE}/dpias/import-pia", json=odd, headers=dpo), 201)["record"]["measures"] == []
    surrogate = b'{"pia": {"name": "a\\ud800"}}'
    problem = ok(
        client.post(f"{BASE}/dpias/import-pia", content=surrogate, headers=dpo | {"content-type": "application/json"}),
        422,
    )
    assert problem["errors"][0]["field"] == "body"


def test_clock_in_answers_moves_with_time(client: TestClient, tokens: dict[Role, str]) -> None:
    dpo = auth(tokens[Role.DPO])
    aware = datetime.now(UTC) - timedelta(hours=71, minutes=30)
    created = ok(client.post(f"{BASE}/breaches", json=samples.breach(aware), headers=dpo), 201)
    assert created["clock"]["state"] == "running"
    assert 0 < created["clock"]["hours_remaining"] <= 0.5


def test_cli_export_and_alerts(
    client: TestClient,
    tokens: dict[Role, str],
    org: str,
    cli: CliRunner,  # noqa: F811  (the fixture imported above)
    tmp_path: Path,
) -> None:
    dpo = auth(tokens[Role.DPO])
    _register(client, dpo)
    target = tmp_path / "registre.xlsx"
    result = run(cli, "registers", "export", "--org", org, "--output", str(target))
    assert result.exit_code == 0, result.output
    assert "3 activities written" in result.output
    sheet = openpyxl.load_workbook(target)["Registre (art. 30.1)"]
    assert sheet["B2"].value == "Billetterie en ligne"

    assert run(cli, "registers", "alerts", "--org", org).exit_code == 0
    ok(client.post(f"{BASE}/processors", json=samples.processor(name="Sans contrat", dpa={}), headers=dpo), 201)
    result = run(cli, "registers", "alerts", "--org", org)
    assert result.exit_code == 1
    assert f"{org}\tSans contrat\tdpa_missing" in result.output
