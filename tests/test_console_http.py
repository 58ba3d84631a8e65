"""The admin console over plain HTTP: sign-in, the session cookie and its expiry, CSRF, the page ×
role matrix, other organisations' objects, and that no input makes a page fail with a 500."""

from __future__ import annotations

import base64
import logging
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gardien.app import create_app
from gardien.core import service
from gardien.core.roles import Role
from gardien.core.runtime import Runtime
from tests.conftest import auth
from tests.console_support import (
    ADMIN,
    AUDITOR,
    DPO,
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
    for path, allowed in PAGES.items():
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
    path=st.sampled_from(list(PAGES)),
    query=st.dictionaries(
        st.sampled_from(["status", "type", "overdue", "extended", "cursor", "next", "done", "x"]), WEIRD, max_size=4
    ),
)
def test_no_query_makes_a_page_fail(app_client: TestClient, world: World, path: str, query: dict[str, str]) -> None:
    if SESSION_COOKIE not in app_client.cookies:
        signed_in(app_client, world, ADMIN)
    response = app_client.get(world.fill(path), params=query, follow_redirects=False)
    assert response.status_code < 500, response.text


FORMS = [
    "/console/requests/{request_id}/extend",
    "/console/requests/{request_id}/identity",
    "/console/requests/{request_id}/transition",
    "/console/language",
    "/console/sign-in",
]


@settings(max_examples=80, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    path=st.sampled_from(FORMS),
    fields=st.dictionaries(st.sampled_from(["reason", "to", "reason_code", "lang", "next", "key"]), WEIRD, max_size=4),
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
