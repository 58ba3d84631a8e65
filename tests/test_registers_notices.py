"""The privacy notice generated from the register (Art. 13/14): contents in four languages, versions
with their SHA-256, the public page by slug or site key, roles, and the audit event of each publication."""

from __future__ import annotations

import hashlib
import uuid
from typing import Any

import rfc8785
from fastapi.testclient import TestClient

from gardien.core import service
from gardien.core.roles import Role
from gardien.core.runtime import Runtime
from tests import registers_samples as samples
from tests.conftest import auth, make_key

BASE = "/api/v1/registers"


def ok(response: Any, status: int = 200) -> Any:
    assert response.status_code == status, response.text
    return response.json() if response.content else None


def _slug(runtime: Runtime, org: str) -> str:
    with runtime.writes.begin() as session:
        return service.get_org(session, org).slug


def _fill(client: TestClient, dpo: dict[str, str], **header: Any) -> dict[str, Any]:
    ok(client.put(f"{BASE}/settings", json={**samples.settings(), **header}, headers=dpo))
    return ok(client.post(f"{BASE}/activities", json=samples.controller_activity(), headers=dpo), 201)


def _text(notice: dict[str, Any]) -> str:
    parts = [notice["title"], notice["intro"]]
    for section in notice["sections"]:
        parts += [section["title"], *section["paragraphs"], *section["items"], *section["closing"]]
        if section["table"]:
            parts += [cell for row in section["table"]["rows"] for cell in row]
    return "\n".join(parts)


def test_notice_needs_a_header_and_an_activity(client: TestClient, tokens: dict[Role, str]) -> None:
    dpo = auth(tokens[Role.DPO])
    ok(client.post(f"{BASE}/notices", headers=dpo), 409)
    ok(client.put(f"{BASE}/settings", json=samples.settings(), headers=dpo))
    problem = ok(client.post(f"{BASE}/notices", headers=dpo), 409)
    assert "processing activity" in problem["detail"]
    ok(client.post(f"{BASE}/activities", json=samples.processor_activity(), headers=dpo), 201)
    ok(client.get(f"{BASE}/notices/draft", headers=dpo), 409)  # a processor record gives no purpose


def test_notice_says_what_articles_13_and_14_require(client: TestClient, tokens: dict[Role, str]) -> None:
    dpo = auth(tokens[Role.DPO])
    _fill(client, dpo)
    ok(client.post(f"{BASE}/processors", json=samples.processor(), headers=dpo), 201)
    fr = ok(client.get(f"{BASE}/notices/draft", params={"lang": "fr"}, headers=dpo))
    assert fr["version"] is None and fr["changed"] is True
    text = _text(fr["notice"])
    keys = [s["key"] for s in fr["notice"]["sections"]]
    assert keys[:4] == ["controller", "representative", "dpo", "purposes"]
    for expected in (
        "Les Ogres de Barback SARL",  # controller (13(1)(a))
        "dpo@ogres.example",  # DPO (13(1)(b))
        "Vente de billets",  # purposes and bases (13(1)(c))
        "L'exécution d'un contrat",
        "éviter les impayés",  # the legitimate interest (13(1)(d))
        "Stripe (sous-traitant, IE)",  # recipients (13(1)(e))
        "Mailjet (FR) : e-mails transactionnels",  # processors
        "Mailjet Inc. (US)",  # transfer with its safeguard (13(1)(f))
        "cadre de protection des données UE–États-Unis",
        "3 ans après le dernier achat",  # retention (13(2)(a))
        "Droit d'accès (art. 15)",  # rights (13(2)(b))
        "Droit d'opposition (art. 21)",  # legitimate interests open Art. 21
        "Droit à la portabilité (art. 20)",  # a contract opens Art. 20
        "3 place de Fontenoy",  # complaint to the CNIL (13(2)(d))
        "https://www.cnil.fr/fr/plaintes",
        "données de santé",  # Art. 14(1)(d) categories, special ones named
    ):
        assert expected in text, expected
    assert "withdrawal" not in keys  # no purpose relies on consent
    assert "sources" not in keys  # everything is collected from the person: Art. 13 only

    body = samples.controller_activity("Newsletter")
    body["purposes"] = [{"name": "Lettre d'information", "legal_basis": "consent"}]
    body["sources"] = ["fichier loué à un courtier en données"]
    ok(client.post(f"{BASE}/activities", json=body, headers=dpo), 201)
    for lang, withdrawal, source in (
        ("fr", "retirer à tout moment", "fichier loué"),
        ("nl", "op elk moment intrekken", "Herkomst van de gegevens"),
        ("en", "withdraw it at any time", "Where the data come from"),
        ("de", "jederzeit widerrufen", "Herkunft der Daten"),
    ):
        draft = ok(client.get(f"{BASE}/notices/draft", params={"lang": lang}, headers=dpo))
        assert draft["notice"]["language"] == lang
        text = _text(draft["notice"])
        assert withdrawal in text and source in text, lang
        assert "Les Ogres de Barback SARL" in text


def test_complaint_names_the_organisations_authority(client: TestClient, tokens: dict[Role, str]) -> None:
    dpo = auth(tokens[Role.DPO])
    _fill(client, dpo, authority="apd")
    for lang, name in (
        ("fr", "Autorité de protection des données"),
        ("nl", "Gegevensbeschermingsautoriteit"),
        ("de", "Datenschutzbehörde"),
        ("en", "Belgian Data Protection Authority"),
    ):
        complaint = next(
            s
            for s in ok(client.get(f"{BASE}/notices/draft", params={"lang": lang}, headers=dpo))["notice"]["sections"]
            if s["key"] == "complaint"
        )
        assert name in complaint["paragraphs"][0]
        assert "Rue de la Presse 35" in complaint["paragraphs"][0]
        assert complaint["authority"]["url"].startswith("https://www.autoriteprotectiondonnees.be/")
    ok(client.put(f"{BASE}/settings", json={**samples.settings(), "authority": "ap"}, headers=dpo))
    nl = _text(ok(client.get(f"{BASE}/notices/draft", params={"lang": "nl"}, headers=dpo))["notice"])
    assert "Autoriteit Persoonsgegevens (AP), Postbus 93374, 2509 AJ Den Haag" in nl


def test_versions_change_only_with_the_content(client: TestClient, tokens: dict[Role, str], runtime: Runtime) -> None:
    dpo = auth(tokens[Role.DPO])
    activity = _fill(client, dpo)
    first = ok(client.post(f"{BASE}/notices", headers=dpo), 201)
    assert first["version"] == 1 and first["created"] is True
    again = ok(client.post(f"{BASE}/notices", headers=dpo), 200)
    assert (again["version"], again["sha256"], again["created"]) == (1, first["sha256"], False)
    assert ok(client.get(f"{BASE}/notices/draft", headers=dpo))["changed"] is False

    changed = samples.controller_activity()
    changed["retention"] = "5 ans"
    ok(client.put(f"{BASE}/activities/{activity['id']}", json=changed, headers=dpo))
    assert ok(client.get(f"{BASE}/notices/draft", headers=dpo))["changed"] is True
    second = ok(client.post(f"{BASE}/notices", headers=dpo), 201)
    assert second["version"] == 2 and second["sha256"] != first["sha256"]

    listed = ok(client.get(f"{BASE}/notices", headers=auth(tokens[Role.AUDITOR])))["versions"]
    assert [(v["version"], v["sha256"]) for v in listed] == [(1, first["sha256"]), (2, second["sha256"])]
    old = ok(client.get(f"{BASE}/notices/1", params={"lang": "en"}, headers=dpo))
    assert "5 ans" not in _text(old["notice"])  # history is kept as it was published
    assert "5 ans" in _text(ok(client.get(f"{BASE}/notices/2", headers=dpo))["notice"])
    ok(client.get(f"{BASE}/notices/3", headers=dpo), 404)

    # The hash is SHA-256 over the canonical JSON of the facts and all four texts, as published.
    texts = {
        lang: ok(client.get(f"{BASE}/notices/2", params={"lang": lang}, headers=dpo))["notice"]
        for lang in ("fr", "nl", "en", "de")
    }
    facts = ok(client.get(f"{BASE}/notices/2", headers=dpo))["facts"]
    document = {"facts": facts, "texts": texts}
    assert hashlib.sha256(rfc8785.dumps(document)).hexdigest() == second["sha256"]

    events = ok(client.get("/api/v1/audit/events", params={"action": "registers.notice.published"}, headers=dpo))[
        "events"
    ]
    assert [(e["fields"]["version"], e["fields"]["sha256"]) for e in events] == [
        (1, first["sha256"]),
        (2, second["sha256"]),
    ]
    assert events[1]["fields"]["previous_sha256"] == first["sha256"]


def test_public_page_by_slug_and_site_key(
    client: TestClient, tokens: dict[Role, str], runtime: Runtime, org: str
) -> None:
    dpo = auth(tokens[Role.DPO])
    _fill(client, dpo)
    slug = _slug(runtime, org)
    ok(client.get(f"/privacy-notice/{slug}"), 404)  # nothing published yet
    ok(client.post(f"{BASE}/notices", headers=dpo), 201)

    page = client.get(f"/privacy-notice/{slug}")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert "default-src 'none'" in page.headers["content-security-policy"]
    assert '<html lang="fr">' in page.text and "Politique de confidentialité" in page.text
    assert "Version 1, publiée le" in page.text
    dutch = client.get(f"/privacy-notice/{slug}", headers={"Accept-Language": "de;q=0.5, nl-BE, en;q=0.8"})
    assert '<html lang="nl">' in dutch.text and "Privacyverklaring" in dutch.text
    english = client.get(f"/privacy-notice/{slug}", params={"lang": "en", "format": "json"}).json()
    assert english["notice"]["title"] == "Privacy notice" and english["version"] == 1

    site_key = ok(client.get("/api/v1/consent/settings", headers=dpo))["site_key"]
    by_key = client.get(f"/privacy-notice/{site_key}", params={"lang": "de"})
    assert by_key.status_code == 200 and "Datenschutzhinweise" in by_key.text

    ok(client.get(f"/privacy-notice/{slug}", params={"version": 2}), 404)
    ok(client.get("/privacy-notice/no-such-organisation"), 404)
    ok(client.get("/privacy-notice/gdn_site_nothing"), 404)
    ok(client.get(f"/privacy-notice/{slug}", params={"lang": "it"}), 422)


def test_public_page_escapes_register_text(
    client: TestClient, tokens: dict[Role, str], runtime: Runtime, org: str
) -> None:
    dpo = auth(tokens[Role.DPO])
    ok(client.put(f"{BASE}/settings", json=samples.settings(), headers=dpo))
    body = samples.controller_activity("<script>alert(1)</script>")
    ok(client.post(f"{BASE}/activities", json=body, headers=dpo), 201)
    ok(client.post(f"{BASE}/notices", headers=dpo), 201)
    page = client.get(f"/privacy-notice/{_slug(runtime, org)}").text
    assert "<script>" not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page


def test_notice_roles_and_organisations(client: TestClient, tokens: dict[Role, str], runtime: Runtime) -> None:
    dpo = auth(tokens[Role.DPO])
    _fill(client, dpo)
    ok(client.post(f"{BASE}/notices", headers=auth(tokens[Role.ADMIN])), 201)
    for role in (Role.AUDITOR, Role.OPERATOR, Role.SERVICE):
        ok(client.post(f"{BASE}/notices", headers=auth(tokens[role])), 403)
    for role in (Role.ADMIN, Role.DPO, Role.AUDITOR):
        ok(client.get(f"{BASE}/notices/1", headers=auth(tokens[role])))
    for role in (Role.OPERATOR, Role.SERVICE):
        ok(client.get(f"{BASE}/notices", headers=auth(tokens[role])), 403)
    with runtime.writes.begin() as session:
        other = service.create_org(session, slug=f"t-{uuid.uuid4().hex[:12]}", name="Other").id
    ok(client.get(f"{BASE}/notices/1", headers=auth(make_key(runtime, other, Role.DPO))), 404)
