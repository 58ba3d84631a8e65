"""What the console's HTTP and browser tests share: the page × role matrix, written out here
independently of gardien.web.console.pages, and a world with one object of each kind."""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from fastapi import FastAPI
from fastapi.testclient import TestClient
from starlette.routing import Mount

from gardien.core import service, users
from gardien.core.roles import Role
from gardien.core.runtime import Runtime
from tests import registers_samples
from tests.conftest import auth, make_key

ADMIN, DPO, AUDITOR, OPERATOR, SERVICE = Role.ADMIN, Role.DPO, Role.AUDITOR, Role.OPERATOR, Role.SERVICE
EVERY_ROLE = frozenset(Role)
# The API's sets, as docs/console.md states them.
QUEUE_READERS = frozenset({ADMIN, DPO, AUDITOR, OPERATOR})
QUEUE_MANAGERS = frozenset({ADMIN, DPO})
LEDGER_READERS = frozenset({ADMIN, DPO, AUDITOR})
LEDGER_VERIFIERS = frozenset({ADMIN, DPO, AUDITOR, OPERATOR})
REGISTER_READERS = frozenset({ADMIN, DPO, AUDITOR, OPERATOR})
REGISTER_WRITERS = frozenset({ADMIN, DPO})
COMPLIANCE_READERS = frozenset({ADMIN, DPO, AUDITOR})

# Page (with {placeholders} filled from the world) -> the roles that may open it.
PAGES: dict[str, frozenset[Role]] = {
    "/console/": QUEUE_READERS,
    "/console/requests": QUEUE_READERS,
    "/console/requests/{request_id}": QUEUE_READERS,
    "/console/audit": LEDGER_READERS,
    "/console/audit/exports/{export_id}": LEDGER_READERS,
    "/console/audit/verify": LEDGER_VERIFIERS,
    "/console/registers/activities": REGISTER_READERS,
    "/console/registers/activities/new": REGISTER_WRITERS,
    "/console/registers/activities/{activity_id}": REGISTER_READERS,
    "/console/registers/activities/{activity_id}/edit": REGISTER_WRITERS,
    "/console/registers/processors": REGISTER_READERS,
    "/console/registers/processors/new": REGISTER_WRITERS,
    "/console/registers/processors/{processor_id}": REGISTER_READERS,
    "/console/registers/processors/{processor_id}/edit": REGISTER_WRITERS,
    "/console/registers/breaches": REGISTER_READERS,
    "/console/registers/breaches/new": REGISTER_WRITERS,
    "/console/registers/breaches/{breach_id}": REGISTER_READERS,
    "/console/registers/breaches/{breach_id}/edit": REGISTER_WRITERS,
    "/console/registers/dpias": COMPLIANCE_READERS,
    "/console/registers/dpias/new": REGISTER_WRITERS,
    "/console/registers/dpias/import": REGISTER_WRITERS,
    "/console/registers/dpias/{dpia_id}": COMPLIANCE_READERS,
    "/console/registers/dpias/{dpia_id}/edit": REGISTER_WRITERS,
    "/console/reports": COMPLIANCE_READERS,
    "/console/reports/compliance": COMPLIANCE_READERS,
    "/console/reports/notice": COMPLIANCE_READERS,
    "/console/reports/period": COMPLIANCE_READERS,
    "/console/settings": EVERY_ROLE,
    "/console/settings/keys": frozenset({ADMIN}),
}
# Files and printable documents the pages link to: the same rule, outside the console's layout.
FILES: dict[str, frozenset[Role]] = {
    "/console/audit/exports/{export_id}/payload": LEDGER_READERS,
    "/console/audit/exports/{export_id}/manifest": LEDGER_READERS,
    "/console/registers/breaches/{breach_id}/notification-form": COMPLIANCE_READERS,
    "/console/registers/dpias/{dpia_id}/pia": COMPLIANCE_READERS,
    "/console/reports/register.xlsx": COMPLIANCE_READERS,
    "/console/reports/register.csv": COMPLIANCE_READERS,
    "/console/reports/register.json": COMPLIANCE_READERS,
    "/console/reports/register.html": COMPLIANCE_READERS,
    "/console/reports/register.ods": COMPLIANCE_READERS,
    "/console/reports/register.pdf": COMPLIANCE_READERS,
    "/console/reports/compliance.json": COMPLIANCE_READERS,
    "/console/reports/period.html": COMPLIANCE_READERS,
    "/console/reports/period.pdf": COMPLIANCE_READERS,
    "/console/reports/period.json": COMPLIANCE_READERS,
}

SESSION_COOKIE = "gardien_console"
CSRF = re.compile(r'name="csrf" value="([^"]+)"')


def console_of(app: FastAPI) -> FastAPI:
    for route in app.routes:
        if isinstance(route, Mount) and route.path == "/console":
            assert isinstance(route.app, FastAPI)
            return route.app
    raise AssertionError("the console is not mounted at /console")


def csrf_of(html: str) -> str:
    found = CSRF.search(html)
    assert found is not None, "the page carries no CSRF token"
    return found.group(1)


def sign_in(client: TestClient, token: str, next_: str = "") -> Any:
    form = client.get("/console/sign-in")
    assert form.status_code == 200, form.text
    return client.post(
        "/console/sign-in",
        data={"csrf": csrf_of(form.text), "key": token, "next": next_},
        follow_redirects=False,
    )


@dataclass
class World:
    """One organisation with a key per role and one object of each kind the pages show."""

    runtime: Runtime
    org: str
    tokens: dict[Role, str]
    request_id: str
    breach_id: str
    activity_id: str
    processor_id: str
    dpia_id: str
    export_id: str

    def fill(self, path: str) -> str:
        return path.format(
            export_id=self.export_id,
            request_id=self.request_id,
            breach_id=self.breach_id,
            activity_id=self.activity_id,
            processor_id=self.processor_id,
            dpia_id=self.dpia_id,
        )


def make_world(runtime: Runtime, http: Any) -> World:
    """Creates the objects through the API (`http`: a TestClient or an httpx client on a server)."""
    with runtime.writes.begin() as session:
        org = service.create_org(session, slug=f"c-{uuid.uuid4().hex[:12]}", name="Les Ogres de Barback").id
    tokens = {role: make_key(runtime, org, role) for role in Role}
    admin = auth(tokens[ADMIN])

    def created(path: str, body: dict[str, Any]) -> str:
        response = http.post(path, json=body, headers=admin)
        assert response.status_code == 201, response.text
        identifier: str = response.json()["id"]
        return identifier

    # Received long enough ago to be overdue, and nearly a month ago: due within the week.
    for days, email in ((45, "late@example.org"), (27, "soon@example.org")):
        received = (datetime.now(UTC) - timedelta(days=days)).isoformat()
        created("/api/v1/requests", {"type": "erasure", "email": email, "received_at": received})
    return World(
        runtime,
        org,
        tokens,
        request_id=created("/api/v1/requests", {"type": "access", "email": "emilie@example.org"}),
        breach_id=created("/api/v1/registers/breaches", registers_samples.breach(hours_ago(30))),
        activity_id=created("/api/v1/registers/activities", registers_samples.controller_activity()),
        processor_id=created("/api/v1/registers/processors", registers_samples.processor()),
        dpia_id=created("/api/v1/registers/dpias", registers_samples.dpia()),
        export_id=created("/api/v1/audit/exports", {"format": "jsonl"}),
    )


def hours_ago(hours: float) -> datetime:
    return datetime.now(UTC) - timedelta(hours=hours)


def make_user(runtime: Runtime, org: str, role: Role) -> tuple[str, str]:
    """A console user of `org` with `role`: (e-mail address, password)."""
    email = f"{role.value}-{uuid.uuid4().hex[:8]}@example.org"
    password = f"correct horse {uuid.uuid4().hex[:12]}"
    with runtime.writes.begin() as session:
        users.create_user(session, runtime.settings, org_ref=org, email=email, role=role, password=password)
    return email, password


def sign_in_with_password(client: TestClient, email: str, password: str, next_: str = "") -> Any:
    form = client.get("/console/sign-in")
    assert form.status_code == 200, form.text
    return client.post(
        "/console/sign-in/password",
        data={"csrf": csrf_of(form.text), "email": email, "password": password, "next": next_},
        follow_redirects=False,
    )
