"""The admin console over plain HTTP: sign-in, the session cookie and its expiry, CSRF, the page ×
role matrix, other organisations' objects, and that no input makes a page fail with a 500."""

from __future__ import annotations

import base64
import io
import json
import logging
import re
import zipfile
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from markupsafe import escape
from pypdf import PdfReader

from gardien.app import create_app
from gardien.core import service
from gardien.core.roles import Role
from gardien.core.runtime import Runtime
from gardien.web.console.registers import PIA_ITEMS
from tests import registers_samples
from tests.conftest import auth
from tests.console_support import (
    ADMIN,
    AUDITOR,
    DPO,
    FILES,
    OPERATOR,
    PAGES,
    SERVICE,
    SESSION_COOKIE,
    World,
    console_of,
    csrf_of,
    make_world,
    sign_in,
)


@pytest.fixture
def app_client(runtime: Runtime) -> Iterator[TestClient]:
    # Over https, as in production behind TLS: the session cookie is then marked Secure, and
    # the test client only sends it back over https.
    with TestClient(create_app(runtime=runtime), base_url="https://testserver") as client:
        yield client


@pytest.fixture
def world(runtime: Runtime, app_client: TestClient) -> World:
    return make_world(runtime, app_client)


def signed_in(client: TestClient, world: World, role: Role) -> TestClient:
    client.cookies.clear()
    response = sign_in(client, world.tokens[role])
    assert response.status_code == 303, response.text
    return client


def request_json(client: TestClient, world: World) -> dict[str, Any]:
    response = client.get(f"/api/v1/requests/{world.request_id}", headers=auth(world.tokens[ADMIN]))
    assert response.status_code == 200
    body: dict[str, Any] = response.json()
    return body


# Sign-in and the cookie --------------------------------------------------------------------------


def test_pages_send_an_anonymous_visitor_to_sign_in_and_back(app_client: TestClient, world: World) -> None:
    response = app_client.get("/console/requests", follow_redirects=False)
    assert response.status_code == 303
    assert response.headers["location"] == "/console/sign-in?next=%2Fconsole%2Frequests"
    after = sign_in(app_client, world.tokens[DPO], next_="/console/requests")
    assert after.status_code == 303
    assert after.headers["location"] == "/console/requests"


def test_sign_in_sets_a_strict_http_only_secure_expiring_cookie(app_client: TestClient, world: World) -> None:
    response = sign_in(app_client, world.tokens[DPO])
    cookie = next(v for v in response.headers.get_list("set-cookie") if v.startswith(f"{SESSION_COOKIE}="))
    flags = {part.strip().split("=")[0].lower() for part in cookie.split(";")[1:]}
    assert {"httponly", "secure", "samesite", "path"} <= flags
    assert "samesite=strict" in cookie.lower()
    assert "path=/console" in cookie.lower()
    assert world.tokens[DPO] not in cookie
    assert response.headers["location"] == "/console/"


def test_over_plain_http_the_cookie_is_not_marked_secure(runtime: Runtime, world: World) -> None:
    with TestClient(create_app(runtime=runtime), base_url="http://testserver") as client:
        response = sign_in(client, world.tokens[DPO])
        cookie = next(v for v in response.headers.get_list("set-cookie") if v.startswith(f"{SESSION_COOKIE}="))
        assert "secure" not in cookie.lower()
        assert client.get("/console/").status_code == 200


def test_a_wrong_key_is_refused_and_never_echoed_nor_logged(
    app_client: TestClient, world: World, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    wrong = world.tokens[DPO][:-4] + "AAAA"
    response = sign_in(app_client, wrong)
    assert response.status_code == 401
    assert wrong not in response.text
    assert "unknown, revoked or mistyped" in response.text
    assert f"{SESSION_COOKIE}=" not in response.headers.get("set-cookie", "")
    good = sign_in(app_client, world.tokens[DPO])
    assert world.tokens[DPO] not in good.headers["location"]
    for record in caplog.records:
        assert wrong not in record.getMessage() and world.tokens[DPO] not in record.getMessage()


def test_sign_in_and_out_are_recorded_in_the_ledger_without_the_key(app_client: TestClient, world: World) -> None:
    signed_in(app_client, world, DPO)
    page = app_client.get("/console/settings")
    out = app_client.post("/console/sign-out", data={"csrf": csrf_of(page.text)}, follow_redirects=False)
    assert out.status_code == 303
    assert app_client.get("/console/", follow_redirects=False).status_code == 303
    events = app_client.get(
        "/api/v1/audit/events", params={"module": "console"}, headers=auth(world.tokens[ADMIN])
    ).json()["events"]
    assert [e["action"] for e in events] == ["console.sign_in", "console.sign_out"]
    assert all(e["actor"]["id"] == world.tokens[DPO].split("_")[1] for e in events)
    assert world.tokens[DPO] not in str(events)


def test_the_sign_in_form_needs_its_csrf_token(app_client: TestClient, world: World) -> None:
    app_client.get("/console/sign-in")
    response = app_client.post(
        "/console/sign-in", data={"csrf": "forged", "key": world.tokens[DPO]}, follow_redirects=False
    )
    assert response.status_code == 403
    assert f"{SESSION_COOKIE}=" not in response.headers.get("set-cookie", "")


def test_a_sign_in_does_not_follow_a_next_page_off_the_console(app_client: TestClient, world: World) -> None:
    for target in ("https://evil.example/", "//evil.example/console/", "/api/v1/keys", "/console/../api"):
        app_client.cookies.clear()
        response = sign_in(app_client, world.tokens[DPO], next_=target)
        assert response.headers["location"] == "/console/", target


def test_security_headers_are_on_every_page(app_client: TestClient, world: World) -> None:
    signed_in(app_client, world, DPO)
    for path in ("/console/sign-in", "/console/", "/console/nowhere"):
        headers = app_client.get(path).headers
        assert "script-src 'self'" in headers["content-security-policy"]
        assert "frame-ancestors 'none'" in headers["content-security-policy"]
        assert headers["x-content-type-options"] == "nosniff"
        assert headers["x-frame-options"] == "DENY"
        assert headers["cache-control"] == "no-store"


# Session expiry ----------------------------------------------------------------------------------


def _at(client: TestClient, moment: datetime) -> None:
    console_of(client.app).state.clock = lambda: moment  # type: ignore[arg-type]


def test_a_session_ends_after_thirty_idle_minutes(app_client: TestClient, world: World) -> None:
    start = datetime.now(UTC)
    _at(app_client, start)
    signed_in(app_client, world, DPO)
    _at(app_client, start + timedelta(minutes=29))
    assert app_client.get("/console/", follow_redirects=False).status_code == 200
    # The page just seen slid the idle limit forward: 29 more minutes are fine, 30 are not.
    _at(app_client, start + timedelta(minutes=58))
    assert app_client.get("/console/", follow_redirects=False).status_code == 200
    _at(app_client, start + timedelta(minutes=88))
    response = app_client.get("/console/", follow_redirects=False)
    assert response.status_code == 303
    assert response.headers["location"].startswith("/console/sign-in")


def test_a_session_ends_twelve_hours_after_sign_in_however_busy(app_client: TestClient, world: World) -> None:
    start = datetime.now(UTC)
    _at(app_client, start)
    signed_in(app_client, world, DPO)
    for minutes in range(20, 12 * 60, 20):
        _at(app_client, start + timedelta(minutes=minutes))
        assert app_client.get("/console/settings", follow_redirects=False).status_code == 200, minutes
    _at(app_client, start + timedelta(hours=12))
    assert app_client.get("/console/settings", follow_redirects=False).status_code == 303


def test_revoking_the_key_ends_its_sessions(app_client: TestClient, world: World, runtime: Runtime) -> None:
    signed_in(app_client, world, DPO)
    assert app_client.get("/console/").status_code == 200
    with runtime.writes.begin() as session:
        service.revoke_key(session, runtime, org_id=world.org, key_id=world.tokens[DPO].split("_")[1])
    assert app_client.get("/console/", follow_redirects=False).status_code == 303


def test_a_tampered_cookie_is_no_session(app_client: TestClient, world: World) -> None:
    signed_in(app_client, world, AUDITOR)
    cookie = app_client.cookies[SESSION_COOKIE]
    payload, kid, mac = cookie.split(".")
    data = base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)).replace(b'"auditor"', b'"admin"')
    forged = base64.urlsafe_b64encode(data).decode().rstrip("=")
    app_client.cookies.clear()
    app_client.cookies.set(SESSION_COOKIE, f"{forged}.{kid}.{mac}", domain="testserver", path="/console")
    assert app_client.get("/console/settings/keys", follow_redirects=False).status_code == 303


# CSRF and role refusal on forms ----------------------------------------------------------------


def test_a_form_without_or_with_a_wrong_csrf_token_changes_nothing(app_client: TestClient, world: World) -> None:
    signed_in(app_client, world, DPO)
    target = f"/console/requests/{world.request_id}/extend"
    for data in ({"reason": "complex"}, {"reason": "complex", "csrf": "x" * 43}):
        response = app_client.post(target, data=data, follow_redirects=False)
        assert response.status_code == 403
        assert "expired or did not come from this console" in response.text
    assert request_json(app_client, world)["extended"] is False


def test_a_csrf_token_of_another_session_is_refused(app_client: TestClient, world: World, runtime: Runtime) -> None:
    signed_in(app_client, world, ADMIN)
    foreign = csrf_of(app_client.get(f"/console/requests/{world.request_id}").text)
    with TestClient(create_app(runtime=runtime), base_url="https://testserver") as other:
        signed_in(other, world, DPO)
        response = other.post(
            f"/console/requests/{world.request_id}/extend", data={"csrf": foreign, "reason": "complex"}
        )
        assert response.status_code == 403
    assert request_json(app_client, world)["extended"] is False


@pytest.mark.parametrize("role", [AUDITOR, OPERATOR])
def test_a_reader_may_not_act_on_a_request(app_client: TestClient, world: World, role: Role) -> None:
    signed_in(app_client, world, role)
    page = app_client.get(f"/console/requests/{world.request_id}")
    assert page.status_code == 200
    assert "/extend" not in page.text, "the form is not offered to a role that may not use it"
    response = app_client.post(
        f"/console/requests/{world.request_id}/extend", data={"csrf": csrf_of(page.text), "reason": "complex"}
    )
    assert response.status_code == 403
    assert f"The {role.value} role may not open this page" in response.text
    assert request_json(app_client, world)["extended"] is False


def test_a_refused_transition_shows_why_and_changes_nothing(app_client: TestClient, world: World) -> None:
    signed_in(app_client, world, DPO)
    page = app_client.get(f"/console/requests/{world.request_id}")
    response = app_client.post(
        f"/console/requests/{world.request_id}/transition",
        data={"csrf": csrf_of(page.text), "to": "rejected", "reason": "no"},
    )
    assert response.status_code == 422
    assert "required to reject a request" in response.text
    assert request_json(app_client, world)["status"] == "received"


def test_a_request_is_extended_and_its_history_says_why(app_client: TestClient, world: World) -> None:
    signed_in(app_client, world, DPO)
    page = app_client.get(f"/console/requests/{world.request_id}")
    response = app_client.post(
        f"/console/requests/{world.request_id}/extend",
        data={"csrf": csrf_of(page.text), "reason": "Données réparties sur trois systèmes"},
        follow_redirects=False,
    )
    assert response.status_code == 303
    assert response.headers["location"] == f"/console/requests/{world.request_id}?done=extend"
    after = request_json(app_client, world)
    assert after["extended"] is True and after["extension_reason"] == "Données réparties sur trois systèmes"
    shown = app_client.get(response.headers["location"]).text
    assert "The deadline was extended." in shown
    assert "Données réparties sur trois systèmes" in shown


# The page × role matrix --------------------------------------------------------------------------


@pytest.mark.parametrize("role", list(Role), ids=lambda r: r.value)
def test_each_page_opens_for_the_roles_it_allows_and_refuses_the_others(
    app_client: TestClient, world: World, role: Role
) -> None:
    signed_in(app_client, world, role)
    for path, allowed in {**PAGES, **FILES}.items():
        response = app_client.get(world.fill(path), follow_redirects=False)
        if role in allowed:
            assert response.status_code == 200, f"{role.value} {path}: {response.status_code}"
        else:
            assert response.status_code == 403, f"{role.value} {path}: {response.status_code}"
            assert f"The {role.value} role may not open this page." in response.text


def test_the_menu_lists_only_the_pages_a_role_may_open(app_client: TestClient, world: World) -> None:
    signed_in(app_client, world, OPERATOR)
    menu = app_client.get("/console/").text.split('<nav class="side"')[1].split("</nav>")[0]
    assert "/console/requests" in menu and "/console/settings/keys" not in menu


def test_a_service_key_lands_on_the_settings_page(app_client: TestClient, world: World) -> None:
    response = sign_in(app_client, world.tokens[SERVICE])
    assert response.headers["location"] == "/console/settings"


def test_another_organisations_request_is_not_found(app_client: TestClient, world: World, runtime: Runtime) -> None:
    other = make_world(runtime, app_client)
    signed_in(app_client, world, ADMIN)
    response = app_client.get(f"/console/requests/{other.request_id}")
    assert response.status_code == 404
    assert "emilie@example.org" not in response.text
    page = app_client.get(f"/console/requests/{world.request_id}")
    refused = app_client.post(
        f"/console/requests/{other.request_id}/extend", data={"csrf": csrf_of(page.text), "reason": "x"}
    )
    assert refused.status_code == 404
    assert request_json(app_client, other)["extended"] is False


def test_the_language_follows_the_browser_then_the_switch(app_client: TestClient, world: World) -> None:
    signed_in(app_client, world, DPO)
    french = app_client.get("/console/", headers={"Accept-Language": "fr-BE,fr;q=0.9,en;q=0.5"})
    assert '<html lang="fr">' in french.text and "Tableau de bord" in french.text
    english = app_client.post(
        "/console/language", data={"csrf": csrf_of(french.text), "lang": "en", "next": "/console/requests"}
    )
    assert english.url.path == "/console/requests"
    again = app_client.get("/console/", headers={"Accept-Language": "fr"})
    assert '<html lang="en">' in again.text and "Dashboard" in again.text


# No input makes a page fail --------------------------------------------------------------------

WEIRD = st.one_of(
    st.text(max_size=300),
    st.sampled_from(["\x00", "%00", "../../etc/passwd", "true", "-1", "9" * 400, "é" * 50, "<script>", "{{7*7}}"]),
)


@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    path=st.sampled_from([*PAGES, *FILES]),
    query=st.dictionaries(
        st.sampled_from(
            ["status", "type", "overdue", "extended", "cursor", "next", "done", "since", "module", "authority", "kind"]
        ),
        WEIRD,
        max_size=4,
    ),
)
def test_no_query_makes_a_page_fail(app_client: TestClient, world: World, path: str, query: dict[str, str]) -> None:
    if SESSION_COOKIE not in app_client.cookies:
        signed_in(app_client, world, ADMIN)
    response = app_client.get(world.fill(path), params=query, follow_redirects=False)
    assert response.status_code < 500, response.text


FORMS = [
    "/console/registers/breaches/new",
    "/console/registers/breaches/{breach_id}/edit",
    "/console/registers/breaches/{breach_id}/notifications",
    "/console/registers/activities/new",
    "/console/registers/activities/{activity_id}/edit",
    "/console/registers/processors/new",
    "/console/registers/processors/{processor_id}/edit",
    "/console/registers/dpias/new",
    "/console/registers/dpias/{dpia_id}/edit",
    "/console/audit/export",
    "/console/audit/verify",
    "/console/requests/{request_id}/extend",
    "/console/requests/{request_id}/identity",
    "/console/requests/{request_id}/transition",
    "/console/language",
    "/console/sign-in",
]


@settings(max_examples=80, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    path=st.sampled_from(FORMS),
    fields=st.dictionaries(
        st.sampled_from(
            [
                "reason",
                "to",
                "reason_code",
                "lang",
                "next",
                "key",
                "title",
                "aware_at",
                "risk",
                "nature",
                "subjects_approx",
                "purposes.0.name",
                "purposes.999.legal_basis",
                "data_categories",
                "transfers.0.country",
                "format",
                "since",
                "module",
                "kind",
                "sent_at",
                "trusted_checkpoint",
                "name",
                "activity_id",
                "add_row",
                "measures.0.title",
                "risks.illegitimate_access.severity",
                "risks.data_disappearance.impacts",
                "action_plan.0.reference",
                "action_plan.0.due_on",
                "validation.status",
            ]
        ),
        WEIRD,
        max_size=6,
    ),
    raw=st.binary(max_size=200),
)
def test_no_form_makes_a_page_fail(
    app_client: TestClient, world: World, path: str, fields: dict[str, str], raw: bytes
) -> None:
    if SESSION_COOKIE not in app_client.cookies:
        signed_in(app_client, world, DPO)
    token = csrf_of(app_client.get("/console/settings").text)
    target = world.fill(path)
    response = app_client.post(target, data={"csrf": token, **fields}, follow_redirects=False)
    assert response.status_code < 500, response.text
    garbage = app_client.post(
        target, content=raw, headers={"content-type": "application/x-www-form-urlencoded"}, follow_redirects=False
    )
    assert garbage.status_code < 500, garbage.text


def test_unknown_paths_and_ids_are_not_found(app_client: TestClient, world: World) -> None:
    signed_in(app_client, world, ADMIN)
    for path in ("/console/nowhere", "/console/requests/not-a-uuid", "/console/requests/" + "0" * 36):
        assert app_client.get(path).status_code == 404, path


# Registers ---------------------------------------------------------------------------------------


def breach_form(token: str, **fields: Any) -> dict[str, Any]:
    form: dict[str, Any] = {
        "csrf": token,
        "title": "Laptop stolen from a car",
        "description": "An unencrypted laptop with the members' file was stolen.",
        "nature": ["confidentiality", "availability"],
        "aware_at": (datetime.now(UTC) - timedelta(hours=5)).strftime("%Y-%m-%dT%H:%M"),
        "subject_categories": "members\nvolunteers\n",
        "subjects_approx": "420",
        "risk": "high",
        "status": "open",
        "dpo_contact.name": "Karim Benali",
        "dpo_contact.email": "dpo@ogres.example",
    }
    form.update(fields)
    return form


def breaches_of(client: TestClient, world: World) -> list[dict[str, Any]]:
    response = client.get("/api/v1/registers/breaches", headers=auth(world.tokens[ADMIN]))
    items: list[dict[str, Any]] = response.json()["items"]
    return items


def test_a_breach_recorded_through_the_form_starts_its_clock(app_client: TestClient, world: World) -> None:
    signed_in(app_client, world, DPO)
    token = csrf_of(app_client.get("/console/registers/breaches/new").text)
    response = app_client.post("/console/registers/breaches/new", data=breach_form(token), follow_redirects=False)
    assert response.status_code == 303, response.text
    created = next(b for b in breaches_of(app_client, world) if b["record"]["title"] == "Laptop stolen from a car")
    assert response.headers["location"] == f"/console/registers/breaches/{created['id']}?done=saved"
    assert created["record"]["subject_categories"] == ["members", "volunteers"]
    assert created["record"]["subjects_approx"] == 420
    assert created["record"]["dpo_contact"] == {
        "name": "Karim Benali",
        "email": "dpo@ogres.example",
        "address": None,
        "phone": None,
    }
    # 72 hours from awareness, five hours ago: 67 left.
    assert 66.9 <= created["clock"]["hours_remaining"] <= 67.1
    shown = app_client.get(response.headers["location"]).text
    assert "Laptop stolen from a car" in shown and "Saved." in shown


def test_a_refused_breach_form_shows_each_error_beside_its_field_and_stores_nothing(
    app_client: TestClient, world: World
) -> None:
    signed_in(app_client, world, DPO)
    before = len(breaches_of(app_client, world))
    token = csrf_of(app_client.get("/console/registers/breaches/new").text)
    future = (datetime.now(UTC) + timedelta(days=3)).strftime("%Y-%m-%dT%H:%M")
    response = app_client.post(
        "/console/registers/breaches/new",
        data=breach_form(token, title="", subjects_approx="many", aware_at=future, nature=[]),
    )
    assert response.status_code == 422
    html = response.text
    for field in ("title", "subjects_approx", "nature"):
        assert f'id="e-{field}"' in html, field
        assert f'aria-describedby="e-{field}"' in html or field == "nature", field
    assert 'value="many"' in html, "what was typed is shown again"
    # The record's own rule, once its fields are valid: no risk, say why.
    unexplained = app_client.post("/console/registers/breaches/new", data=breach_form(token, risk="none"))
    assert unexplained.status_code == 422
    assert 'id="e-no_notification_reason"' in unexplained.text
    assert "say why the breach is unlikely to result in a risk" in unexplained.text
    assert len(breaches_of(app_client, world)) == before


def test_the_breach_form_refuses_a_future_awareness_through_the_service(app_client: TestClient, world: World) -> None:
    signed_in(app_client, world, DPO)
    token = csrf_of(app_client.get("/console/registers/breaches/new").text)
    future = (datetime.now(UTC) + timedelta(days=3)).strftime("%Y-%m-%dT%H:%M")
    response = app_client.post("/console/registers/breaches/new", data=breach_form(token, aware_at=future))
    assert response.status_code == 422
    assert 'id="e-aware_at"' in response.text and "in the future" in response.text


def test_editing_a_breach_keeps_what_the_form_does_not_show(app_client: TestClient, world: World) -> None:
    signed_in(app_client, world, ADMIN)
    form = app_client.get(f"/console/registers/breaches/{world.breach_id}/edit").text
    assert "Export CSV des clients" in form
    before = app_client.get(f"/api/v1/registers/breaches/{world.breach_id}", headers=auth(world.tokens[ADMIN])).json()
    aware = before["record"]["aware_at"][:16]
    response = app_client.post(
        f"/console/registers/breaches/{world.breach_id}/edit",
        data=breach_form(
            csrf_of(form), title="Export CSV envoyé au mauvais destinataire", aware_at=aware, status="closed"
        ),
        follow_redirects=False,
    )
    assert response.status_code == 303, response.text
    after = app_client.get(f"/api/v1/registers/breaches/{world.breach_id}", headers=auth(world.tokens[ADMIN])).json()
    assert after["version"] == before["version"] + 1
    assert after["record"]["title"] == "Export CSV envoyé au mauvais destinataire"
    assert after["record"]["status"] == "closed"


def test_a_notification_is_recorded_and_a_late_one_needs_its_reasons(app_client: TestClient, world: World) -> None:
    signed_in(app_client, world, DPO)
    page = app_client.get(f"/console/registers/breaches/{world.breach_id}")
    sent = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M")
    target = f"/console/registers/breaches/{world.breach_id}/notifications"
    form = {"csrf": csrf_of(page.text), "kind": "initial", "sent_at": sent, "authority": "cnil"}
    response = app_client.post(target, data=form, follow_redirects=False)
    # Aware 30 hours ago: in time, no reasons needed.
    assert response.status_code == 303, response.text
    after = app_client.get(f"/api/v1/registers/breaches/{world.breach_id}", headers=auth(world.tokens[ADMIN])).json()
    assert [n["kind"] for n in after["notifications"]] == ["initial"]
    assert after["clock"]["state"] == "notified_in_time"


def activity_form(token: str, **fields: Any) -> dict[str, Any]:
    form: dict[str, Any] = {
        "csrf": token,
        "name": "Adhésions",
        "purposes.0.name": "Gestion des adhésions",
        "purposes.0.legal_basis": "contract",
        "purposes.1.name": "",
        "purposes.1.legal_basis": "",
        "purposes.2.name": "Relances",
        "purposes.2.legal_basis": "legitimate_interests",
        "purposes.2.legitimate_interest": "fidéliser les membres",
        "subject_categories": "membres",
        "data_categories": ["identity"],
        "data_categories.identity.description": "nom, e-mail",
        "data_categories.identity.retention": "3 ans",
        "security_measures": ["access_control"],
    }
    form.update(fields)
    return form


def test_an_activity_is_created_with_its_rows_and_blank_rows_dropped(app_client: TestClient, world: World) -> None:
    signed_in(app_client, world, DPO)
    token = csrf_of(app_client.get("/console/registers/activities/new").text)
    response = app_client.post("/console/registers/activities/new", data=activity_form(token), follow_redirects=False)
    assert response.status_code == 303, response.text
    entry_id = response.headers["location"].split("/")[-1].split("?")[0]
    record = app_client.get(f"/api/v1/registers/activities/{entry_id}", headers=auth(world.tokens[ADMIN])).json()[
        "record"
    ]
    assert [p["name"] for p in record["purposes"]] == ["Gestion des adhésions", "Relances"]
    assert record["purposes"][1]["legitimate_interest"] == "fidéliser les membres"
    assert record["data_categories"] == [{"category": "identity", "description": "nom, e-mail", "retention": "3 ans"}]


def test_an_activity_error_lands_on_the_row_it_was_typed_in(app_client: TestClient, world: World) -> None:
    signed_in(app_client, world, DPO)
    token = csrf_of(app_client.get("/console/registers/activities/new").text)
    # Row 0 blank and dropped: the error of the first row kept belongs to row 2 of the form.
    form = activity_form(
        token,
        **{"purposes.0.name": "", "purposes.0.legal_basis": "", "purposes.2.legitimate_interest": ""},
        data_categories=[],
        **{"transfers.0.recipient": "Acme", "transfers.0.country": "DE", "transfers.0.safeguard": "scc"},
    )
    response = app_client.post("/console/registers/activities/new", data=form)
    assert response.status_code == 422
    html = response.text
    assert 'id="e-purposes-2-legitimate_interest"' in html
    assert 'id="e-data_categories"' in html
    assert 'id="e-transfers-0-country"' in html and "is in the EEA" in html


def test_editing_an_activity_keeps_its_joint_controllers(app_client: TestClient, world: World) -> None:
    headers = auth(world.tokens[ADMIN])
    body = app_client.get(f"/api/v1/registers/activities/{world.activity_id}", headers=headers).json()["record"]
    body["joint_controllers"] = [{"name": "Ville de Lyon", "email": "dpo@lyon.example"}]
    assert app_client.put(f"/api/v1/registers/activities/{world.activity_id}", json=body, headers=headers).is_success
    signed_in(app_client, world, ADMIN)
    form = app_client.get(f"/console/registers/activities/{world.activity_id}/edit").text
    assert 'value="Billetterie en ligne"' in form
    fields = {
        "csrf": csrf_of(form),
        "name": "Billetterie",
        "purposes.0.name": "Vente de billets",
        "purposes.0.legal_basis": "contract",
        "subject_categories": "clients",
        "data_categories": ["identity"],
    }
    response = app_client.post(
        f"/console/registers/activities/{world.activity_id}/edit", data=fields, follow_redirects=False
    )
    assert response.status_code == 303, response.text
    after = app_client.get(f"/api/v1/registers/activities/{world.activity_id}", headers=headers).json()["record"]
    assert after["name"] == "Billetterie"
    assert after["joint_controllers"] == [
        {"name": "Ville de Lyon", "email": "dpo@lyon.example", "address": None, "phone": None}
    ]


@pytest.mark.parametrize("role", [AUDITOR, OPERATOR])
def test_readers_of_the_registers_may_not_write_them(app_client: TestClient, world: World, role: Role) -> None:
    signed_in(app_client, world, role)
    before = len(breaches_of(app_client, world))
    page = app_client.get(f"/console/registers/breaches/{world.breach_id}")
    assert page.status_code == 200
    assert "/edit" not in page.text and "/notifications" not in page.text
    response = app_client.post("/console/registers/breaches/new", data=breach_form(csrf_of(page.text)))
    assert response.status_code == 403
    assert len(breaches_of(app_client, world)) == before


def test_another_organisations_register_entries_are_not_found(
    app_client: TestClient, world: World, runtime: Runtime
) -> None:
    other = make_world(runtime, app_client)
    signed_in(app_client, world, ADMIN)
    for path in (
        "/console/registers/breaches/{breach_id}",
        "/console/registers/breaches/{breach_id}/edit",
        "/console/registers/activities/{activity_id}",
        "/console/registers/processors/{processor_id}",
        "/console/registers/dpias/{dpia_id}",
        "/console/registers/dpias/{dpia_id}/pia",
        "/console/audit/exports/{export_id}",
        "/console/audit/exports/{export_id}/payload",
    ):
        assert app_client.get(other.fill(path)).status_code == 404, path
    token = csrf_of(app_client.get("/console/registers/breaches/new").text)
    response = app_client.post(other.fill("/console/registers/breaches/{breach_id}/edit"), data=breach_form(token))
    assert response.status_code == 404


def test_the_register_downloads_are_the_apis(app_client: TestClient, world: World) -> None:
    signed_in(app_client, world, AUDITOR)
    xlsx = app_client.get("/console/reports/register.xlsx")
    assert xlsx.content.startswith(b"PK")
    assert "attachment" in xlsx.headers["content-disposition"]
    api = app_client.get(
        "/api/v1/registers/activities/export", params={"format": "json"}, headers=auth(world.tokens[AUDITOR])
    )
    console = app_client.get("/console/reports/register.json").json()
    assert console.keys() == api.json().keys()
    assert console["activities"] == api.json()["activities"]
    assert app_client.get("/console/reports/register.pdf").content.startswith(b"%PDF")
    assert app_client.get("/console/reports/register.docx").status_code == 404


# Audit -------------------------------------------------------------------------------------------


def test_the_audit_search_filters_and_pages_like_the_api(app_client: TestClient, world: World) -> None:
    headers = auth(world.tokens[ADMIN])
    for n in range(3):
        event = {
            "module": "bookings",
            "action": "show.update",
            "crud": "update",
            "actor": {"type": "user", "id": f"u-{n}"},
        }
        assert app_client.post("/api/v1/audit/events", json=event, headers=headers).status_code == 201
    signed_in(app_client, world, AUDITOR)
    first = app_client.get("/console/audit", params={"module": "bookings", "action": "show.update"})
    assert first.status_code == 200
    assert first.text.count("<code>show.update</code>") == 3
    one = app_client.get("/console/audit", params={"module": "bookings", "actor": "u-1"})
    assert one.text.count("<code>show.update</code>") == 1
    bad = app_client.get("/console/audit", params={"module": "Bad Module!", "since": "yesterday"})
    assert bad.status_code == 422
    assert 'id="e-module"' in bad.text and 'id="e-since"' in bad.text


def test_an_export_made_in_the_console_downloads_and_is_recorded(app_client: TestClient, world: World) -> None:
    signed_in(app_client, world, DPO)
    page = app_client.get("/console/audit")
    response = app_client.post(
        "/console/audit/export",
        data={"csrf": csrf_of(page.text), "format": "csv", "module": "registers"},
        follow_redirects=False,
    )
    assert response.status_code == 303, response.text
    shown = app_client.get(response.headers["location"])
    assert "verify-export" in shown.text
    payload = app_client.get(response.headers["location"] + "/payload")
    assert payload.status_code == 200 and payload.headers["content-type"].startswith("text/csv")
    manifest = app_client.get(response.headers["location"] + "/manifest").json()
    assert manifest["filter"] == {"module": "registers"} and manifest["count"] >= 4
    events = app_client.get(
        "/api/v1/audit/events", params={"action": "audit.export.downloaded"}, headers=auth(world.tokens[ADMIN])
    ).json()["events"]
    assert any(e["target"]["id"] == manifest["export_id"] for e in events)


@pytest.mark.parametrize("role", [OPERATOR, AUDITOR])
def test_the_ledger_is_verified_from_the_console(app_client: TestClient, world: World, role: Role) -> None:
    signed_in(app_client, world, role)
    page = app_client.get("/console/audit/verify")
    assert "never verified" in page.text
    report = app_client.post("/console/audit/verify", data={"csrf": csrf_of(page.text)})
    assert report.status_code == 200
    assert "intact" in report.text
    assert "never verified" not in app_client.get("/console/").text
    bad = app_client.post(
        "/console/audit/verify", data={"csrf": csrf_of(page.text), "trusted_checkpoint": "not a note"}
    )
    assert bad.status_code == 422 and 'id="e-trusted_checkpoint"' in bad.text


# Words -------------------------------------------------------------------------------------------


def test_every_word_a_page_can_show_exists_in_french_and_english() -> None:
    from gardien.registers import schemas as reg
    from gardien.rights import schemas as rights
    from gardien.web.console.texts import EN, FR

    assert set(EN) == set(FR)
    dynamic = [
        *(f"status_{s.value}" for s in rights.Status),
        *(f"type_{s.value}" for s in rights.RequestType),
        *(f"reject_{s.value}" for s in rights.RejectionCode),
        *(f"role_{r.value}" for r in Role),
        *(f"role_help_{r.value}" for r in Role),
        *(f"alert_{a.value}" for a in reg.AlertKind),
        *(f"basis_{b.value}" for b in reg.LegalBasis),
        *(f"data_{c.value}" for c in reg.DataCategory),
        *(f"special_{c.value}" for c in reg.SpecialCategory),
        *(f"kind_{k.value}" for k in reg.RecipientKind),
        *(f"safeguard_{s.value}" for s in reg.Safeguard),
        *(f"measure_{m.value}" for m in reg.SecurityMeasure),
        *(f"risk_{r.value}" for r in reg.Risk),
        *(f"exemption_{e.value}" for e in reg.Art34Exemption),
        *(f"clause_{c}" for c in reg.Clauses.model_fields),
        *(f"clock_{s}" for s in ("running", "overdue", "notified_in_time", "notified_late", "not_required")),
        *(f"verify_{s}" for s in ("ok", "tampered", "unverifiable")),
        *(f"ctx_{name}" for name in reg.Context.model_fields),
        *(f"ask_ctx_{name}" for name in reg.Context.model_fields),
        *(f"pr_{name}" for name in reg.Principles.model_fields),
        *(f"ask_pr_{name}" for name in reg.Principles.model_fields),
        *(f"risk_{name}" for name in reg.Risks.model_fields),
        *(f"scale_{n}" for n in range(1, 5)),
        *(f"opinion_{o.value}" for o in reg.Opinion),
        *(key for _, key in PIA_ITEMS),
    ]
    assert [key for key in dynamic if key not in EN] == []


def test_the_dashboard_shows_the_last_retention_runs(app_client: TestClient, world: World) -> None:
    from gardien.retention.schemas import RunOut
    from gardien.web.console.dashboard import run_rows

    signed_in(app_client, world, OPERATOR)
    assert "No retention run yet." in app_client.get("/console/").text
    now = datetime.now(UTC)
    run = RunOut(
        id="r",
        policy_id="p",
        policy_version=1,
        dry_run=False,
        trigger="cli",
        status="completed",
        cutoff=now,
        started_at=now,
        finished_at=now,
        counts={
            "app.accounts": {"matched": 12, "deleted": 10, "held": 2},
            "app.events": {"matched": 3, "anonymised": 3},
        },
        samples={},
        errors=[],
        batches=2,
    )
    assert run_rows(run) == (13, 15)


def test_form_errors_are_said_in_the_pages_language(app_client: TestClient, world: World) -> None:
    signed_in(app_client, world, DPO)
    french = {"Accept-Language": "fr"}
    token = csrf_of(app_client.get("/console/registers/breaches/new", headers=french).text)
    response = app_client.post(
        "/console/registers/breaches/new",
        data=breach_form(token, title="", subjects_approx="beaucoup", risk="maybe"),
        headers=french,
    )
    assert response.status_code == 422
    html = response.text
    assert "Le formulaire contient des erreurs ; rien n&#39;a été enregistré" in html
    assert "Obligatoire." in html
    assert "Un nombre entier est attendu." in html
    assert "Choisissez l&#39;une des options." in html


def test_the_dashboard_shows_overdue_and_due_soon_requests_with_their_clock(
    app_client: TestClient, world: World
) -> None:
    signed_in(app_client, world, DPO)
    html = app_client.get("/console/").text
    late = html.split("late@example.org")[1].split("</tr>")[0]
    soon = html.split("soon@example.org")[1].split("</tr>")[0]
    assert "days late" in late and "days left" in soon
    assert "emilie@example.org" not in html, "a request due in a month is not on the dashboard"
    signed_in(app_client, world, AUDITOR)
    assert "late@example.org" not in app_client.get("/console/").text, "an auditor sees the address masked"


def test_an_activity_as_processor_is_shown_and_left_to_the_api(app_client: TestClient, world: World) -> None:
    created = app_client.post(
        "/api/v1/registers/activities", json=registers_samples.processor_activity(), headers=auth(world.tokens[ADMIN])
    )
    assert created.status_code == 201
    entry_id = created.json()["id"]
    signed_in(app_client, world, DPO)
    page = app_client.get(f"/console/registers/activities/{entry_id}")
    assert page.status_code == 200
    assert "Controllers served" in page.text and f"/registers/activities/{entry_id}/edit" not in page.text
    assert app_client.get(f"/console/registers/activities/{entry_id}/edit").status_code == 409
    token = csrf_of(page.text)
    refused = app_client.post(f"/console/registers/activities/{entry_id}/edit", data=activity_form(token))
    assert refused.status_code == 409


def api(client: TestClient, world: World, method: str, path: str, **kwargs: Any) -> Any:
    response = client.request(method, path, headers=auth(world.tokens[ADMIN]), **kwargs)
    assert response.status_code < 300, response.text
    return response.json() if response.content else None


# Compliance matrix -------------------------------------------------------------------------------


def test_the_matrix_shows_the_apis_rows_with_evidence_and_action(app_client: TestClient, world: World) -> None:
    expected = api(app_client, world, "GET", "/api/v1/registers/compliance", params={"lang": "en"})
    signed_in(app_client, world, AUDITOR)
    page = app_client.get("/console/reports/compliance")
    assert page.status_code == 200
    for row in expected["rows"]:
        assert f"Art. {row['article']}" in page.text
        assert row["finding"].replace("'", "&#39;") in page.text
    # The world's processor has its DPA: Art. 28 stands as the API computes it, with its evidence.
    art28 = next(r for r in expected["rows"] if r["article"] == "28")
    assert art28["status"] in page.text.split("Art. 28", 1)[1].split("</tr>", 1)[0]
    assert sum(expected["summary"].values()) == len(expected["rows"])
    download = app_client.get("/console/reports/compliance.json")
    assert download.status_code == 200 and "attachment" in download.headers["content-disposition"]
    assert [(r["article"], r["status"]) for r in download.json()["rows"]] == [
        (r["article"], r["status"]) for r in expected["rows"]
    ]


def test_the_matrix_follows_the_page_language(app_client: TestClient, world: World) -> None:
    signed_in(app_client, world, DPO)
    page = app_client.get("/console/reports/compliance", headers={"Accept-Language": "fr-FR,fr;q=0.9"})
    assert "Matrice de conformité" in page.text and "Action requise" in page.text
    french = api(app_client, world, "GET", "/api/v1/registers/compliance", params={"lang": "fr"})
    assert french["rows"][0]["finding"].replace("'", "&#39;") in page.text


# Privacy notice ----------------------------------------------------------------------------------


def test_the_notice_says_what_is_missing_before_the_register_has_a_header(app_client: TestClient, world: World) -> None:
    signed_in(app_client, world, DPO)
    page = app_client.get("/console/reports/notice")
    assert page.status_code == 200
    assert "Nothing can be generated yet" in page.text and "no header yet" in page.text
    assert "/reports/notice/publish" not in page.text
    refused = app_client.post("/console/reports/notice/publish", data={"csrf": csrf_of(page.text)})
    assert refused.status_code == 409
    assert api(app_client, world, "GET", "/api/v1/registers/notices")["versions"] == []


def test_a_dpo_publishes_versions_only_when_the_content_changes(app_client: TestClient, world: World) -> None:
    api(app_client, world, "PUT", "/api/v1/registers/settings", json=registers_samples.settings())
    signed_in(app_client, world, DPO)
    page = app_client.get("/console/reports/notice")
    assert "No version is published yet." in page.text
    assert "It differs from the current version" in page.text
    published = app_client.post(
        "/console/reports/notice/publish", data={"csrf": csrf_of(page.text)}, follow_redirects=False
    )
    assert published.status_code == 303
    assert published.headers["location"] == "/console/reports/notice?done=published"
    after = app_client.get(published.headers["location"]).text
    assert "A new version is published." in after
    versions = api(app_client, world, "GET", "/api/v1/registers/notices")["versions"]
    assert [v["version"] for v in versions] == [1]
    assert versions[0]["sha256"] in after
    assert "It is the same as the current version" in after
    again = app_client.post("/console/reports/notice/publish", data={"csrf": csrf_of(after)})
    assert "The content had not changed" in again.text
    assert len(api(app_client, world, "GET", "/api/v1/registers/notices")["versions"]) == 1
    # The public page the console links to, and the version itself, in each language.
    slug = app_client.get("/api/v1/me", headers=auth(world.tokens[ADMIN])).json()["organisation"]["slug"]
    assert f'href="/privacy-notice/{slug}?lang=fr"' in after
    public = app_client.get(f"/privacy-notice/{slug}?lang=fr")
    assert public.status_code == 200 and "Les Ogres de Barback SARL" in public.text
    version = app_client.get("/console/reports/notice/1", params={"lang": "en"})
    assert version.status_code == 200 and "Les Ogres de Barback SARL" in version.text
    assert "style-src 'unsafe-inline'" in version.headers["content-security-policy"]
    draft = app_client.get("/console/reports/notice/draft", params={"lang": "de"})
    assert draft.status_code == 200
    events = api(app_client, world, "GET", "/api/v1/audit/events", params={"module": "registers"})["events"]
    published_events = [e for e in events if e["action"] == "registers.notice.published"]
    assert len(published_events) == 1 and published_events[0]["actor"]["id"] == world.tokens[DPO].split("_")[1]


def test_an_auditor_reads_the_notice_but_may_not_publish(app_client: TestClient, world: World) -> None:
    api(app_client, world, "PUT", "/api/v1/registers/settings", json=registers_samples.settings())
    signed_in(app_client, world, AUDITOR)
    page = app_client.get("/console/reports/notice")
    assert page.status_code == 200 and "/reports/notice/publish" not in page.text
    refused = app_client.post("/console/reports/notice/publish", data={"csrf": csrf_of(page.text)})
    assert refused.status_code == 403
    assert api(app_client, world, "GET", "/api/v1/registers/notices")["versions"] == []
    signed_in(app_client, world, OPERATOR)
    assert app_client.get("/console/reports/notice/draft").status_code == 403


@pytest.mark.parametrize("version", ["7", "0", "x"])
def test_a_version_that_does_not_exist_is_a_404_page(app_client: TestClient, world: World, version: str) -> None:
    signed_in(app_client, world, DPO)
    assert app_client.get(f"/console/reports/notice/{version}").status_code == 404
    assert app_client.get("/console/reports/notice/draft", params={"lang": "it"}).status_code == 404


# Period report -----------------------------------------------------------------------------------


def test_the_period_page_links_the_three_files_of_the_chosen_days(app_client: TestClient, world: World) -> None:
    signed_in(app_client, world, AUDITOR)
    page = app_client.get("/console/reports/period", params={"since": "2026-01-01", "until": "2026-06-30"})
    assert page.status_code == 200
    for fmt in ("html", "pdf", "json"):
        assert f"/console/reports/period.{fmt}?since=2026-01-01&amp;until=2026-06-30" in page.text
    figures = app_client.get("/console/reports/period.json", params={"since": "2026-01-01", "until": "2026-06-30"})
    assert figures.status_code == 200
    body = figures.json()
    assert (body["since"], body["until"]) == ("2026-01-01", "2026-06-30")
    assert body["ledger"]["status"] == "ok"
    html = app_client.get("/console/reports/period.html", params={"since": "2026-01-01", "until": "2026-06-30"})
    assert html.status_code == 200 and "<svg" in html.text
    pdf = app_client.get("/console/reports/period.pdf", params={"since": "2026-01-01", "until": "2026-06-30"})
    assert pdf.headers["content-type"] == "application/pdf"
    assert "2026-01-01" in "".join(p.extract_text() for p in PdfReader(io.BytesIO(pdf.content)).pages)
    events = api(app_client, world, "GET", "/api/v1/audit/events", params={"module": "registers"})["events"]
    formats = [e["fields"]["format"] for e in events if e["action"] == "registers.report.generated"]
    assert formats == ["json", "html", "pdf"]


@pytest.mark.parametrize(
    ("query", "field", "message"),
    [
        ({"since": "2026-06-30", "until": "2026-01-01"}, "since", "must not be after until"),
        ({"since": "2026-13-01"}, "since", ""),
        ({"until": "tomorrow"}, "until", ""),
        ({"since": "2020-01-01", "until": "2026-06-30"}, "since", "at most"),
    ],
)
def test_a_bad_period_is_shown_beside_its_field_and_no_file_is_made(
    app_client: TestClient, world: World, query: dict[str, str], field: str, message: str
) -> None:
    signed_in(app_client, world, DPO)
    page = app_client.get("/console/reports/period", params=query)
    assert page.status_code == 422
    assert f'id="e-{field}"' in page.text and message in page.text
    assert "/console/reports/period.pdf" not in page.text
    assert app_client.get("/console/reports/period.pdf", params=query).status_code == 422
    events = api(app_client, world, "GET", "/api/v1/audit/events", params={"module": "registers"})["events"]
    assert not [e for e in events if e["action"] == "registers.report.generated"]


# Register exports --------------------------------------------------------------------------------


def test_the_register_downloads_as_ods_and_pdf(app_client: TestClient, world: World) -> None:
    signed_in(app_client, world, DPO)
    reports = app_client.get("/console/reports").text
    for fmt in ("ods", "xlsx", "csv", "json", "pdf", "html"):
        assert f"/console/reports/register.{fmt}" in reports
    for link in ("/console/reports/compliance", "/console/reports/notice", "/console/reports/period"):
        assert f'href="{link}"' in reports
    ods = app_client.get("/console/reports/register.ods")
    assert ods.headers["content-type"] == "application/vnd.oasis.opendocument.spreadsheet"
    with zipfile.ZipFile(io.BytesIO(ods.content)) as archive:
        assert "Billetterie en ligne" in archive.read("content.xml").decode()
    pdf = app_client.get("/console/reports/register.pdf")
    assert "attachment" in pdf.headers["content-disposition"]
    assert "Billetterie en ligne" in "".join(p.extract_text() for p in PdfReader(io.BytesIO(pdf.content)).pages)


def test_the_dashboard_links_the_documents_to_the_roles_that_may_read_them(
    app_client: TestClient, world: World
) -> None:
    signed_in(app_client, world, AUDITOR)
    assert 'href="/console/reports/compliance"' in app_client.get("/console/").text
    signed_in(app_client, world, OPERATOR)
    assert "/console/reports/compliance" not in app_client.get("/console/").text


# Requests by e-mail address ----------------------------------------------------------------------


@pytest.mark.parametrize("role", [DPO, AUDITOR])
def test_the_queue_filters_by_the_requesters_whole_address(app_client: TestClient, world: World, role: Role) -> None:
    signed_in(app_client, world, role)
    found = app_client.get("/console/requests", params={"email": "Emilie@Example.org"})
    assert found.status_code == 200
    assert f"/console/requests/{world.request_id}" in found.text
    assert found.text.count('href="/console/requests/0') == 1
    assert 'value="Emilie@Example.org"' in found.text
    part = app_client.get("/console/requests", params={"email": "emilie"})
    assert f"/console/requests/{world.request_id}" not in part.text
    assert (
        app_client.get("/console/requests", params={"email": "late@example.org"}).text.count(
            'href="/console/requests/0'
        )
        == 1
    )


def test_a_too_short_address_filter_is_an_error_beside_the_field(app_client: TestClient, world: World) -> None:
    signed_in(app_client, world, DPO)
    page = app_client.get("/console/requests", params={"email": "ab"})
    assert page.status_code == 200
    assert 'href="#f-email"' in page.text and 'aria-invalid="true"' in page.text


# DPIA import -------------------------------------------------------------------------------------


def _dpia_count(client: TestClient, world: World) -> int:
    return len(api(client, world, "GET", "/api/v1/registers/dpias")["items"])


def test_a_pia_tool_export_is_imported_as_the_api_imports_it(app_client: TestClient, world: World) -> None:
    export = app_client.get(f"/api/v1/registers/dpias/{world.dpia_id}/pia", headers=auth(world.tokens[ADMIN]))
    document = export.json()
    document["pia"]["name"] = "Imported from the PIA tool"
    signed_in(app_client, world, DPO)
    form = app_client.get("/console/registers/dpias/import")
    assert form.status_code == 200
    response = app_client.post(
        "/console/registers/dpias/import",
        data={"csrf": csrf_of(form.text), "pia": json.dumps(document)},
        follow_redirects=False,
    )
    assert response.status_code == 303, response.text
    shown = app_client.get(response.headers["location"])
    assert "The assessment is imported." in shown.text and "Imported from the PIA tool" in shown.text
    items = api(app_client, world, "GET", "/api/v1/registers/dpias")["items"]
    imported = next(i for i in items if i["record"]["name"] == "Imported from the PIA tool")
    original = next(i for i in items if i["id"] == world.dpia_id)
    assert imported["record"]["risks"] == original["record"]["risks"]
    events = api(app_client, world, "GET", "/api/v1/audit/events", params={"target": imported["id"]})["events"]
    assert [e["actor"]["id"] for e in events] == [world.tokens[DPO].split("_")[1]]


@pytest.mark.parametrize(
    ("pasted", "said"),
    [
        ("not json at all", "This is not a JSON object"),
        ("[1, 2]", "This is not a JSON object"),
        ('{"answers": []}', "pia: missing"),
    ],
)
def test_a_bad_pia_export_is_refused_beside_the_field_and_nothing_is_recorded(
    app_client: TestClient, world: World, pasted: str, said: str
) -> None:
    before = _dpia_count(app_client, world)
    signed_in(app_client, world, DPO)
    form = app_client.get("/console/registers/dpias/import")
    response = app_client.post("/console/registers/dpias/import", data={"csrf": csrf_of(form.text), "pia": pasted})
    assert response.status_code == 422
    assert 'id="e-pia"' in response.text and said in response.text
    assert str(escape(pasted)) in response.text, "what was pasted is kept in the field"
    assert _dpia_count(app_client, world) == before


def test_a_pia_export_with_a_severity_out_of_one_to_four_is_refused(app_client: TestClient, world: World) -> None:
    document = app_client.get(f"/api/v1/registers/dpias/{world.dpia_id}/pia", headers=auth(world.tokens[ADMIN])).json()
    gauges = [a for a in document["answers"] if a["reference_to"] % 10 in (5, 6) and a["data"].get("gauge")]
    assert gauges, "the sample DPIA has rated risks"
    gauges[0]["data"]["gauge"] = 5
    before = _dpia_count(app_client, world)
    signed_in(app_client, world, DPO)
    form = app_client.get("/console/registers/dpias/import")
    response = app_client.post(
        "/console/registers/dpias/import", data={"csrf": csrf_of(form.text), "pia": json.dumps(document)}
    )
    assert response.status_code == 422
    assert "does not fit an impact assessment" in response.text and "risks." in response.text
    assert _dpia_count(app_client, world) == before


@pytest.mark.parametrize("role", [AUDITOR, OPERATOR])
def test_only_writers_import_a_pia_export(app_client: TestClient, world: World, role: Role) -> None:
    signed_in(app_client, world, role)
    assert app_client.get("/console/registers/dpias/import").status_code == 403
    settings_page = app_client.get("/console/settings")
    refused = app_client.post(
        "/console/registers/dpias/import", data={"csrf": csrf_of(settings_page.text), "pia": '{"pia": {}}'}
    )
    assert refused.status_code == 403


# Processor forms ---------------------------------------------------------------------------------


def processor_form(token: str, **fields: Any) -> dict[str, Any]:
    form: dict[str, Any] = {
        "csrf": token,
        "name": "Brevo",
        "country": "FR",
        "address": "",
        "contact.name": "Service client",
        "contact.email": "dpa@brevo.example",
        "contact.phone": "",
        "dpo.name": "",
        "dpo.email": "",
        "dpo.phone": "",
        "services": "e-mails transactionnels\nlettres d'information\n",
        "data_categories": "identity\ncontact",
        "subject_categories": "adhérents",
        "duration": "durée du contrat",
        "breach_notice_hours": "48",
        "locations.0.country": "FR",
        "locations.0.transfer_tool": "eea",
        "locations.1.country": "",
        "locations.1.transfer_tool": "",
        "locations.2.country": "US",
        "locations.2.transfer_tool": "scc",
        "dpa.signed_on": "2026-03-01",
        "dpa.review_on": "2027-03-01",
        "dpa.reference": "DPA-2026-07",
        "clauses": ["a_instructions", "b_confidentiality", "c_security"],
        "sub_processors.0.name": "OVHcloud",
        "sub_processors.0.country": "FR",
        "sub_processors.0.service": "hébergement",
        "sub_processors.0.authorisation": "specific",
    }
    form.update(fields)
    return form


def test_a_processor_is_recorded_from_the_form_as_the_api_would_store_it(app_client: TestClient, world: World) -> None:
    signed_in(app_client, world, DPO)
    token = csrf_of(app_client.get("/console/registers/processors/new").text)
    response = app_client.post("/console/registers/processors/new", data=processor_form(token), follow_redirects=False)
    assert response.status_code == 303, response.text
    assert response.headers["location"].endswith("?done=saved")
    entry_id = response.headers["location"].split("/")[-1].split("?")[0]
    record = api(app_client, world, "GET", f"/api/v1/registers/processors/{entry_id}")["record"]
    assert record["services"] == ["e-mails transactionnels", "lettres d'information"]
    assert record["locations"] == [{"country": "FR", "transfer_tool": "eea"}, {"country": "US", "transfer_tool": "scc"}]
    assert record["dpa"] == {"signed_on": "2026-03-01", "review_on": "2027-03-01", "reference": "DPA-2026-07"}
    assert [name for name, present in record["clauses"].items() if present] == [
        "a_instructions",
        "b_confidentiality",
        "c_security",
    ]
    assert record["sub_processors"] == [
        {"name": "OVHcloud", "country": "FR", "service": "hébergement", "authorisation": "specific"}
    ]
    assert record["contact"]["email"] == "dpa@brevo.example" and record["dpo"] is None
    assert record["breach_notice_hours"] == 48
    # The clauses left out are the registers' alerts, shown on the processor's page.
    shown = app_client.get(response.headers["location"]).text
    assert "Saved." in shown
    alerts = api(app_client, world, "GET", "/api/v1/registers/processors/alerts")["alerts"]
    mine = [a for a in alerts if a["processor_id"] == entry_id]
    assert mine and all(escape(a["detail"]) in shown for a in mine)


def test_editing_a_processor_shows_its_record_and_replaces_it(app_client: TestClient, world: World) -> None:
    signed_in(app_client, world, DPO)
    form = app_client.get(f"/console/registers/processors/{world.processor_id}/edit")
    assert form.status_code == 200
    assert 'value="Mailjet"' in form.text and 'value="AWS"' in form.text
    assert 'name="clauses" value="h_audits" checked' in form.text
    response = app_client.post(
        f"/console/registers/processors/{world.processor_id}/edit",
        data=processor_form(csrf_of(form.text), name="Mailjet SAS"),
        follow_redirects=False,
    )
    assert response.status_code == 303, response.text
    entry = api(app_client, world, "GET", f"/api/v1/registers/processors/{world.processor_id}")
    assert entry["record"]["name"] == "Mailjet SAS" and entry["version"] == 2


def test_a_refused_processor_form_shows_each_error_beside_its_field_and_stores_nothing(
    app_client: TestClient, world: World
) -> None:
    before = len(api(app_client, world, "GET", "/api/v1/registers/processors")["items"])
    signed_in(app_client, world, DPO)
    token = csrf_of(app_client.get("/console/registers/processors/new").text)
    form = processor_form(
        token,
        country="France",
        services="",
        breach_notice_hours="0",
        **{"locations.2.transfer_tool": "", "dpa.signed_on": "2026-02-30"},
    )
    response = app_client.post("/console/registers/processors/new", data=form)
    assert response.status_code == 422
    for field in ("country", "services", "breach_notice_hours", "locations-2-transfer_tool", "dpa-signed_on"):
        assert f'id="e-{field}"' in response.text, field
    assert 'value="Brevo"' in response.text, "what was typed comes back"
    assert len(api(app_client, world, "GET", "/api/v1/registers/processors")["items"]) == before


def test_a_reader_may_not_send_the_processor_form(app_client: TestClient, world: World) -> None:
    signed_in(app_client, world, OPERATOR)
    token = csrf_of(app_client.get("/console/settings").text)
    refused = app_client.post("/console/registers/processors/new", data=processor_form(token))
    assert refused.status_code == 403
    assert "/registers/processors/new" not in app_client.get("/console/registers/processors").text


# DPIA forms --------------------------------------------------------------------------------------


def dpia_form(token: str, **fields: Any) -> dict[str, Any]:
    form: dict[str, Any] = {
        "csrf": token,
        "name": "Badges d'accès aux locaux",
        "activity_id": "",
        "context.processing": "Contrôle d'accès par badge nominatif aux trois sites",
        "context.data": "nom, photo, horaires de passage",
        "principles.retention": "3 mois pour les passages",
        "measures.0.title": "Journalisation",
        "measures.0.content": "les accès au serveur de badges sont tracés",
        "measures.1.title": "",
        "measures.1.content": "",
        "measures.2.title": "Chiffrement",
        "measures.2.content": "",
        "risks.illegitimate_access.impacts": "suivi des déplacements des salariés\n\nusurpation de badge\n",
        "risks.illegitimate_access.threats": "copie du badge",
        "risks.illegitimate_access.sources": "salarié malveillant",
        "risks.illegitimate_access.measures": "Journalisation",
        "risks.illegitimate_access.severity": "3",
        "risks.illegitimate_access.severity_justification": "les horaires révèlent la vie privée",
        "risks.illegitimate_access.likelihood": "3",
        "risks.illegitimate_access.likelihood_justification": "",
        "risks.unwanted_modification.severity": "",
        "risks.unwanted_modification.likelihood": "",
        "risks.data_disappearance.severity": "1",
        "risks.data_disappearance.likelihood": "2",
        "action_plan.0.reference": "",
        "action_plan.0.action": "",
        "action_plan.0.due_on": "",
        "action_plan.0.owner": "",
        "action_plan.0.status": "planned",
        "action_plan.1.reference": "3.2",
        "action_plan.1.action": "Désactiver les badges perdus dans l'heure",
        "action_plan.1.due_on": "2027-01-31",
        "action_plan.1.owner": "Services généraux",
        "action_plan.1.status": "in_progress",
        "validation.author": "Karim Benali",
        "validation.dpo_names": "Karim Benali",
        "validation.dpo_status": "favourable",
        "validation.dpo_opinion": "Avis favorable sous réserve du plan d'action",
        "validation.people_searched": "1",
        "validation.status": "draft",
    }
    form.update(fields)
    return form


def dpias_of(client: TestClient, world: World) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = api(client, world, "GET", "/api/v1/registers/dpias")["items"]
    return items


def events_of(client: TestClient, world: World, target: str) -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = api(client, world, "GET", "/api/v1/audit/events", params={"target": target})[
        "events"
    ]
    return events


def test_a_dpia_is_recorded_from_the_form_as_the_api_would_store_it(app_client: TestClient, world: World) -> None:
    signed_in(app_client, world, DPO)
    listing = app_client.get("/console/registers/dpias")
    assert 'href="/console/registers/dpias/new"' in listing.text
    token = csrf_of(app_client.get("/console/registers/dpias/new").text)
    response = app_client.post(
        "/console/registers/dpias/new",
        data=dpia_form(token, activity_id=world.activity_id),
        follow_redirects=False,
    )
    assert response.status_code == 303, response.text
    assert response.headers["location"].endswith("?done=saved")
    entry_id = response.headers["location"].split("/")[-1].split("?")[0]
    entry = api(app_client, world, "GET", f"/api/v1/registers/dpias/{entry_id}")
    record = entry["record"]
    assert record["activity_id"] == world.activity_id
    assert record["context"]["processing"] == "Contrôle d'accès par badge nominatif aux trois sites"
    assert record["context"]["responsibilities"] is None
    assert record["principles"]["retention"] == "3 mois pour les passages"
    # Blank rows are left out, a measure without its description is kept.
    assert record["measures"] == [
        {"title": "Journalisation", "content": "les accès au serveur de badges sont tracés"},
        {"title": "Chiffrement", "content": None},
    ]
    access = record["risks"]["illegitimate_access"]
    assert access["impacts"] == ["suivi des déplacements des salariés", "usurpation de badge"]
    assert access["sources"] == ["salarié malveillant"] and access["measures"] == ["Journalisation"]
    assert (access["severity"], access["likelihood"]) == (3, 3)
    assert access["likelihood_justification"] is None
    assert record["risks"]["unwanted_modification"]["severity"] is None
    assert record["action_plan"] == [
        {
            "reference": "3.2",
            "action": "Désactiver les badges perdus dans l'heure",
            "due_on": "2027-01-31",
            "owner": "Services généraux",
            "status": "in_progress",
        }
    ]
    assert record["validation"]["dpo_status"] == "favourable" and record["validation"]["people_searched"] is True
    assert entry["prior_consultation"] is True, "severity and likelihood both 3"
    shown = app_client.get(response.headers["location"]).text
    assert "Saved." in shown and "prior consultation of the authority needed" in shown
    for said in ("les accès au serveur de badges sont tracés", "salarié malveillant", "la vie privée"):
        assert said in shown, "the page shows the measures and each risk's details"
    assert f'href="/console/registers/activities/{world.activity_id}"' in shown
    events = events_of(app_client, world, entry_id)
    assert [e["action"] for e in events] == ["registers.dpia.created"]
    assert events[0]["actor"]["id"] == world.tokens[DPO].split("_")[1]
    assert events[0]["fields"]["dpia_event"] == "RISK_ASSESSMENT"


def test_editing_a_dpia_shows_its_record_and_replaces_it(app_client: TestClient, world: World) -> None:
    signed_in(app_client, world, DPO)
    page = app_client.get(f"/console/registers/dpias/{world.dpia_id}")
    assert f'href="/console/registers/dpias/{world.dpia_id}/edit"' in page.text
    form = app_client.get(f"/console/registers/dpias/{world.dpia_id}/edit")
    assert form.status_code == 200
    html = form.text
    assert 'value="Vidéosurveillance du foyer"' in html and ">Caméras dans le hall</textarea>" in html
    assert 'name="measures.0.title" type="text" value="Chiffrement"' in html
    assert '<option value="3" selected' in html, "the stored severity is chosen"
    assert '<option value="3.2" selected' in html, "the action's item is chosen"
    response = app_client.post(
        f"/console/registers/dpias/{world.dpia_id}/edit",
        data=dpia_form(csrf_of(html), **{"validation.status": "validated"}),
        follow_redirects=False,
    )
    assert response.status_code == 303, response.text
    entry = api(app_client, world, "GET", f"/api/v1/registers/dpias/{world.dpia_id}")
    assert entry["version"] == 2 and entry["record"]["name"] == "Badges d'accès aux locaux"
    assert entry["record"]["validation"]["status"] == "validated"
    actions = [e["action"] for e in events_of(app_client, world, world.dpia_id)]
    assert actions == ["registers.dpia.created", "registers.dpia.updated"]


def test_an_imported_action_item_the_list_does_not_hold_is_kept(app_client: TestClient, world: World) -> None:
    body = registers_samples.dpia(action_plan=[{"reference": "2.1", "action": "Revoir les finalités"}])
    created = app_client.post("/api/v1/registers/dpias", json=body, headers=auth(world.tokens[ADMIN]))
    assert created.status_code == 201, created.text
    signed_in(app_client, world, DPO)
    form = app_client.get(f"/console/registers/dpias/{created.json()['id']}/edit")
    assert '<option value="2.1" selected>2.1</option>' in form.text


# Each: the fields changed from a valid form -> the fields whose error is shown.
REFUSED_DPIAS: list[tuple[dict[str, str], tuple[str, ...]]] = [
    ({"name": ""}, ("name",)),
    ({"name": "x" * 201}, ("name",)),
    ({"risks.illegitimate_access.severity": "5"}, ("risks-illegitimate_access-severity",)),
    ({"risks.illegitimate_access.severity": "0"}, ("risks-illegitimate_access-severity",)),
    ({"risks.unwanted_modification.likelihood": "-1"}, ("risks-unwanted_modification-likelihood",)),
    ({"risks.data_disappearance.severity": "high"}, ("risks-data_disappearance-severity",)),
    ({"risks.data_disappearance.severity": "2.5"}, ("risks-data_disappearance-severity",)),
    ({"risks.data_disappearance.likelihood": "9" * 5000}, ("risks-data_disappearance-likelihood",)),
    ({"risks.illegitimate_access.impacts": "ok\n" + "x" * 201}, ("risks-illegitimate_access-impacts",)),
    ({"context.processing": "x" * 20_001}, ("context-processing",)),
    ({"principles.consent": "a\x00b"}, ("principles-consent",)),
    ({"measures.1.content": "a description without its title"}, ("measures-1-title",)),
    ({"action_plan.0.owner": "Jeanne"}, ("action_plan-0-reference", "action_plan-0-action")),
    ({"action_plan.1.reference": "9.9"}, ("action_plan-1-reference",)),
    ({"action_plan.1.due_on": "2027-02-30"}, ("action_plan-1-due_on",)),
    ({"action_plan.1.status": "someday"}, ("action_plan-1-status",)),
    (
        {"validation.status": "approved", "validation.dpo_status": "maybe"},
        ("validation-status", "validation-dpo_status"),
    ),
    ({"activity_id": "0" * 26}, ("activity_id",)),
    ({"activity_id": "x" * 37}, ("activity_id",)),
]


@pytest.mark.parametrize(("changed", "shown"), REFUSED_DPIAS, ids=[",".join(s) for _, s in REFUSED_DPIAS])
def test_a_refused_dpia_form_shows_each_error_beside_its_field_and_stores_nothing(
    app_client: TestClient, world: World, changed: dict[str, str], shown: tuple[str, ...]
) -> None:
    signed_in(app_client, world, DPO)
    before = dpias_of(app_client, world)
    token = csrf_of(app_client.get("/console/registers/dpias/new").text)
    for target in ("/console/registers/dpias/new", f"/console/registers/dpias/{world.dpia_id}/edit"):
        response = app_client.post(target, data=dpia_form(token, **changed))
        assert response.status_code == 422, (target, response.text[:500])
        for field in shown:
            assert f'id="e-{field}"' in response.text, (target, field)
        assert "Badges d&#39;accès aux locaux" in response.text or "name" in changed, "what was typed comes back"
    assert dpias_of(app_client, world) == before
    assert [e["action"] for e in events_of(app_client, world, world.dpia_id)] == ["registers.dpia.created"]


def test_an_error_in_a_row_lands_on_the_row_it_was_typed_in(app_client: TestClient, world: World) -> None:
    signed_in(app_client, world, DPO)
    token = csrf_of(app_client.get("/console/registers/dpias/new").text)
    # Row 0 blank, row 1 fine, row 2 wrong: the schema sees rows 0 and 1, the form shows row 2.
    form = dpia_form(
        token,
        **{
            "action_plan.2.reference": "3.3",
            "action_plan.2.action": "Sauvegarder",
            "action_plan.2.due_on": "demain",
            "action_plan.2.status": "planned",
        },
    )
    response = app_client.post("/console/registers/dpias/new", data=form)
    assert response.status_code == 422
    assert 'id="e-action_plan-2-due_on"' in response.text and 'id="e-action_plan-0-due_on"' not in response.text
    assert 'value="demain"' in response.text


def test_add_a_row_shows_one_more_keeps_what_was_typed_and_stores_nothing(app_client: TestClient, world: World) -> None:
    signed_in(app_client, world, DPO)
    before = dpias_of(app_client, world)
    token = csrf_of(app_client.get("/console/registers/dpias/new").text)
    for member, first in (("measures", "title"), ("action_plan", "reference")):
        response = app_client.post(
            "/console/registers/dpias/new", data=dpia_form(token, add_row=member, name="", **{"context.data": "ok"})
        )
        assert response.status_code == 200
        html = response.text
        assert 'id="error-summary"' not in html, "nothing is checked before the form is sent with Save"
        assert ">ok</textarea>" in html and 'value="Journalisation"' in html
        rows = 3 if member == "measures" else 2
        assert f'name="{member}.{rows}.{first}"' in html and f'name="{member}.{rows + 1}.{first}"' not in html
        # The new row's first field takes the focus, without a script.
        assert html.count("autofocus") == 1
        assert re.search(rf'id="f-{member}-{rows}-{first}"[^>]*autofocus', html)
    unknown = app_client.post("/console/registers/dpias/new", data=dpia_form(token, add_row="validation"))
    assert unknown.status_code == 200 and "autofocus" not in unknown.text
    edited = app_client.post(
        f"/console/registers/dpias/{world.dpia_id}/edit", data=dpia_form(token, add_row="measures")
    )
    assert edited.status_code == 200 and 'name="measures.3.title"' in edited.text
    assert dpias_of(app_client, world) == before


def test_adding_rows_stops_at_the_schemas_bound(app_client: TestClient, world: World) -> None:
    signed_in(app_client, world, DPO)
    token = csrf_of(app_client.get("/console/registers/dpias/new").text)
    full = {f"measures.{n}.title": f"m{n}" for n in range(200)}
    response = app_client.post(
        "/console/registers/dpias/new",
        data={"csrf": token, "name": "Large", "add_row": "measures", **full},
    )
    assert response.status_code == 200
    assert 'name="measures.199.title"' in response.text and 'name="measures.200.title"' not in response.text


@pytest.mark.parametrize("role", [AUDITOR, OPERATOR])
def test_readers_may_not_write_a_dpia(app_client: TestClient, world: World, role: Role) -> None:
    signed_in(app_client, world, role)
    token = csrf_of(app_client.get("/console/settings").text)
    for target in ("/console/registers/dpias/new", f"/console/registers/dpias/{world.dpia_id}/edit"):
        assert app_client.get(target).status_code == 403
        refused = app_client.post(target, data=dpia_form(token))
        assert refused.status_code == 403, target
        also = app_client.post(target, data=dpia_form(token, add_row="measures"))
        assert also.status_code == 403, target
    if role == AUDITOR:
        assert "/registers/dpias/new" not in app_client.get("/console/registers/dpias").text
        assert "/edit" not in app_client.get(f"/console/registers/dpias/{world.dpia_id}").text
    assert [e["action"] for e in events_of(app_client, world, world.dpia_id)] == ["registers.dpia.created"]


def test_another_organisations_dpia_is_not_found_nor_written(
    app_client: TestClient, world: World, runtime: Runtime
) -> None:
    other = make_world(runtime, app_client)
    signed_in(app_client, world, DPO)
    token = csrf_of(app_client.get("/console/registers/dpias/new").text)
    assert app_client.get(f"/console/registers/dpias/{other.dpia_id}/edit").status_code == 404
    for fields in ({}, {"add_row": "measures"}):
        refused = app_client.post(f"/console/registers/dpias/{other.dpia_id}/edit", data=dpia_form(token, **fields))
        assert refused.status_code == 404
    # Naming another organisation's activity is an error beside the field.
    named = app_client.post("/console/registers/dpias/new", data=dpia_form(token, activity_id=other.activity_id))
    assert named.status_code == 422 and 'id="e-activity_id"' in named.text
    assert api(app_client, other, "GET", f"/api/v1/registers/dpias/{other.dpia_id}")["version"] == 1


def test_a_dpia_whose_activity_was_deleted_still_opens_and_says_so(app_client: TestClient, world: World) -> None:
    activity = api(
        app_client, world, "POST", "/api/v1/registers/activities", json=registers_samples.controller_activity()
    )
    dpia = api(
        app_client, world, "POST", "/api/v1/registers/dpias", json=registers_samples.dpia(activity_id=activity["id"])
    )
    signed_in(app_client, world, AUDITOR)
    linked = app_client.get(f"/console/registers/dpias/{dpia['id']}")
    assert f'href="/console/registers/activities/{activity["id"]}"' in linked.text
    api(app_client, world, "DELETE", f"/api/v1/registers/activities/{activity['id']}")
    gone = app_client.get(f"/console/registers/dpias/{dpia['id']}")
    assert gone.status_code == 200 and f"{activity['id']}, no longer in the register" in gone.text
