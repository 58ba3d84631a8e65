"""Who may call what: the role × endpoint matrix, authentication failures, and tenant isolation.

The matrix is written out here, independently of gardien.core.roles, and checked against every
route the application actually serves: an endpoint added without a matrix entry fails the suite.
"""

from __future__ import annotations

import base64
import re
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import fastapi.routing
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from starlette.routing import Mount
from starlette.staticfiles import StaticFiles

from gardien.audit.checkpoint import Checkpoint, Note
from gardien.audit.models import EVENTS
from gardien.core import service
from gardien.core.roles import Role
from gardien.core.runtime import Runtime
from gardien.retention.jobs import Runner
from gardien.retention.service import RetentionService
from gardien.rights.execution import DatamapExecutor
from gardien.rights.mail import Mailer
from gardien.rights.schemas import RequestIn, RequestType
from gardien.rights.service import RightsService
from tests import registers_samples
from tests.conftest import auth, make_key, sample_event
from tests.consent_samples import sample_notice
from tests.smtp_server import Inbox, body_of, smtp_fixture  # noqa: F401  (the SMTP server fixture)

PROBLEM_JSON = "application/problem+json"

ADMIN, DPO, AUDITOR, OPERATOR, SERVICE = Role.ADMIN, Role.DPO, Role.AUDITOR, Role.OPERATOR, Role.SERVICE
EVERY_ROLE = frozenset(Role)
READERS = frozenset({ADMIN, DPO, AUDITOR})
VERIFIERS = frozenset({ADMIN, DPO, AUDITOR, OPERATOR})
WRITERS = frozenset({ADMIN, DPO, SERVICE, OPERATOR})
ADMIN_ONLY = frozenset({ADMIN})
SCA_DECIDERS = frozenset({ADMIN, OPERATOR, SERVICE})
SCA_POLICY_WRITERS = frozenset({ADMIN, OPERATOR})
SCA_POLICY_READERS = frozenset({ADMIN, OPERATOR, DPO, AUDITOR})
CONSENT_CONFIG_READERS = frozenset({ADMIN, DPO, OPERATOR, AUDITOR})
CONSENT_CONFIG_WRITERS = frozenset({ADMIN, DPO})
CONSENT_RECORDERS = frozenset({ADMIN, OPERATOR, SERVICE})
CONSENT_WITHDRAWERS = frozenset({ADMIN, DPO, OPERATOR, SERVICE})
RIGHTS_READERS = frozenset({ADMIN, DPO, OPERATOR, AUDITOR})
RIGHTS_MANAGERS = frozenset({ADMIN, DPO})
RIGHTS_CREATORS = frozenset({ADMIN, DPO, SERVICE})
RIGHTS_CHECKERS = frozenset({ADMIN, DPO, OPERATOR, SERVICE})
REQUEST = "/api/v1/requests/{request_id}"
DATAMAP_WRITERS = frozenset({ADMIN, DPO})
DATAMAP_READERS = frozenset({ADMIN, DPO, OPERATOR, AUDITOR})
DATAMAP_VALIDATORS = frozenset({ADMIN, DPO, OPERATOR})
PRIVACY_USERS = frozenset({ADMIN, DPO, OPERATOR, SERVICE})
REIDENTIFIERS = frozenset({DPO})
REGISTER_READERS = frozenset({ADMIN, DPO, AUDITOR, OPERATOR})
REGISTER_WRITERS = frozenset({ADMIN, DPO})
COMPLIANCE_READERS = frozenset({ADMIN, DPO, AUDITOR})
PUBLIC = None  # no key needed at all
CONSENT_PUBLIC = "/api/v1/consent/public/{site_key}"
REG = "/api/v1/registers"
RET = "/api/v1/retention"
RETENTION_READERS = frozenset({ADMIN, DPO, AUDITOR, OPERATOR})
RETENTION_WRITERS = frozenset({ADMIN, DPO})

MATRIX: dict[tuple[str, str], frozenset[Role] | None] = {
    ("GET", "/healthz"): PUBLIC,
    ("GET", "/openapi.json"): PUBLIC,
    ("GET", "/docs"): PUBLIC,
    ("GET", "/docs/oauth2-redirect"): PUBLIC,
    ("GET", "/redoc"): PUBLIC,
    ("GET", "/static-offline-docs/swagger-ui.css"): PUBLIC,
    ("GET", "/api/v1/audit/keys"): PUBLIC,
    ("GET", "/consent/banner.js"): PUBLIC,
    ("GET", "/consent/banner.css"): PUBLIC,
    ("GET", "/.well-known/gpc.json"): PUBLIC,
    ("GET", "/privacy/download/{token}"): PUBLIC,
    ("GET", "/privacy/static/privacy.css"): PUBLIC,
    ("GET", "/privacy/{slug}"): PUBLIC,
    ("POST", "/privacy/{slug}"): PUBLIC,
    ("GET", "/privacy/{slug}/requests/{request_id}"): PUBLIC,
    ("POST", "/privacy/{slug}/requests/{request_id}/code"): PUBLIC,
    ("POST", "/privacy/{slug}/requests/{request_id}/resend"): PUBLIC,
    ("GET", "/api/v1/me"): EVERY_ROLE,
    ("GET", "/api/v1/keys"): ADMIN_ONLY,
    ("POST", "/api/v1/keys"): ADMIN_ONLY,
    ("DELETE", "/api/v1/keys/{key_id}"): ADMIN_ONLY,
    ("POST", "/api/v1/audit/events"): WRITERS,
    ("POST", "/api/v1/audit/events/batch"): WRITERS,
    ("GET", "/api/v1/audit/events"): READERS,
    ("GET", "/api/v1/audit/events/{event_id}"): READERS,
    ("GET", "/api/v1/audit/events/{event_id}/proof"): VERIFIERS,
    ("GET", "/api/v1/audit/proofs/inclusion"): VERIFIERS,
    ("GET", "/api/v1/audit/proofs/consistency"): VERIFIERS,
    ("GET", "/api/v1/audit/checkpoints/latest"): VERIFIERS,
    ("GET", "/api/v1/audit/checkpoints/{size}"): VERIFIERS,
    ("POST", "/api/v1/audit/verify"): VERIFIERS,
    ("POST", "/api/v1/audit/exports"): READERS,
    ("GET", "/api/v1/audit/exports/{export_id}"): READERS,
    ("GET", "/api/v1/audit/exports/{export_id}/payload"): READERS,
    ("POST", "/api/v1/sca/decide"): SCA_DECIDERS,
    ("GET", "/api/v1/sca/policy"): SCA_POLICY_READERS,
    ("PUT", "/api/v1/sca/policy"): SCA_POLICY_WRITERS,
    ("GET", "/api/v1/sca/fraud-quarters"): SCA_POLICY_READERS,
    ("PUT", "/api/v1/sca/fraud-quarters/{quarter}/{instrument}"): SCA_POLICY_WRITERS,
    ("GET", "/api/v1/sca/payers/{payer}/counters"): SCA_DECIDERS,
    ("POST", "/api/v1/sca/payers/{payer}/authenticated"): SCA_DECIDERS,
    ("POST", "/api/v1/sca/decisions/{decision_id}/fraud"): SCA_DECIDERS,
    ("POST", "/api/v1/sca/challenges"): SCA_DECIDERS,
    ("GET", "/api/v1/sca/challenges/{challenge_id}"): SCA_DECIDERS,
    ("POST", "/api/v1/sca/challenges/{challenge_id}/verify"): SCA_DECIDERS,
    ("GET", "/api/v1/sca/reports/art21/{quarter}"): SCA_POLICY_READERS,
    ("GET", "/api/v1/consent/settings"): CONSENT_CONFIG_READERS,
    ("PUT", "/api/v1/consent/settings"): CONSENT_CONFIG_WRITERS,
    ("POST", "/api/v1/consent/notices"): CONSENT_CONFIG_WRITERS,
    ("GET", "/api/v1/consent/notices"): CONSENT_CONFIG_READERS,
    ("GET", "/api/v1/consent/notices/{version}"): CONSENT_CONFIG_READERS,
    ("POST", "/api/v1/consent/records"): CONSENT_RECORDERS,
    ("GET", "/api/v1/consent/subjects/{consent_id}"): EVERY_ROLE,
    ("GET", "/api/v1/consent/users/{user_id}"): EVERY_ROLE,
    ("POST", "/api/v1/consent/subjects/{consent_id}/withdraw"): CONSENT_WITHDRAWERS,
    ("GET", "/api/v1/consent/subjects/{consent_id}/proof"): READERS,
    ("GET", "/api/v1/consent/check"): CONSENT_RECORDERS,
    ("POST", "/api/v1/consent/check"): CONSENT_RECORDERS,
    ("GET", "/api/v1/consent/stats"): CONSENT_CONFIG_READERS,
    ("POST", "/api/v1/requests"): RIGHTS_CREATORS,
    ("GET", "/api/v1/requests"): RIGHTS_READERS,
    ("GET", "/api/v1/requests/due"): RIGHTS_READERS,
    ("GET", "/api/v1/requests/settings"): RIGHTS_READERS,
    ("PUT", "/api/v1/requests/settings"): RIGHTS_MANAGERS,
    ("GET", REQUEST): EVERY_ROLE,
    ("GET", f"{REQUEST}/history"): RIGHTS_READERS,
    ("POST", f"{REQUEST}/transitions"): RIGHTS_CREATORS,
    ("POST", f"{REQUEST}/extend"): RIGHTS_MANAGERS,
    ("POST", f"{REQUEST}/execute"): RIGHTS_MANAGERS,
    ("POST", f"{REQUEST}/package/link"): RIGHTS_CREATORS,
    ("POST", f"{REQUEST}/identity/code"): RIGHTS_CREATORS,
    ("POST", f"{REQUEST}/identity/verify"): RIGHTS_CREATORS,
    ("POST", f"{REQUEST}/identity/operator"): RIGHTS_MANAGERS,
    ("GET", "/api/v1/restrictions"): RIGHTS_READERS,
    ("POST", "/api/v1/restrictions/{block_id}/lift"): RIGHTS_MANAGERS,
    ("GET", "/api/v1/can-process"): RIGHTS_CHECKERS,
    ("POST", "/api/v1/privacy/pseudonyms"): PRIVACY_USERS,
    ("POST", "/api/v1/privacy/reidentify"): REIDENTIFIERS,
    ("POST", "/api/v1/privacy/redact"): PRIVACY_USERS,
    ("GET", f"{CONSENT_PUBLIC}/notice"): PUBLIC,
    ("OPTIONS", f"{CONSENT_PUBLIC}/notice"): PUBLIC,
    ("POST", f"{CONSENT_PUBLIC}/choices"): PUBLIC,
    ("OPTIONS", f"{CONSENT_PUBLIC}/choices"): PUBLIC,
    ("GET", f"{CONSENT_PUBLIC}/choices/{{consent_id}}"): PUBLIC,
    ("OPTIONS", f"{CONSENT_PUBLIC}/choices/{{consent_id}}"): PUBLIC,
    ("PUT", "/api/v1/datamaps/{key}"): DATAMAP_WRITERS,
    ("GET", "/api/v1/datamaps"): DATAMAP_READERS,
    ("GET", "/api/v1/datamaps/{key}"): DATAMAP_READERS,
    ("POST", "/api/v1/datamaps/{key}/validate"): DATAMAP_VALIDATORS,
    ("GET", f"{REG}/settings"): REGISTER_READERS,
    ("PUT", f"{REG}/settings"): REGISTER_WRITERS,
    ("GET", f"{REG}/activities"): REGISTER_READERS,
    ("POST", f"{REG}/activities"): REGISTER_WRITERS,
    ("GET", f"{REG}/activities/export"): COMPLIANCE_READERS,
    ("GET", f"{REG}/activities/{{entry_id}}"): REGISTER_READERS,
    ("PUT", f"{REG}/activities/{{entry_id}}"): REGISTER_WRITERS,
    ("DELETE", f"{REG}/activities/{{entry_id}}"): REGISTER_WRITERS,
    ("GET", f"{REG}/processors"): REGISTER_READERS,
    ("GET", f"{REG}/processors/alerts"): REGISTER_READERS,
    ("POST", f"{REG}/processors"): REGISTER_WRITERS,
    ("GET", f"{REG}/processors/{{entry_id}}"): REGISTER_READERS,
    ("PUT", f"{REG}/processors/{{entry_id}}"): REGISTER_WRITERS,
    ("DELETE", f"{REG}/processors/{{entry_id}}"): REGISTER_WRITERS,
    ("GET", f"{REG}/breaches"): REGISTER_READERS,
    ("POST", f"{REG}/breaches"): REGISTER_WRITERS,
    ("GET", f"{REG}/breaches/{{entry_id}}"): REGISTER_READERS,
    ("PUT", f"{REG}/breaches/{{entry_id}}"): REGISTER_WRITERS,
    ("POST", f"{REG}/breaches/{{entry_id}}/notifications"): REGISTER_WRITERS,
    ("GET", f"{REG}/breaches/{{entry_id}}/notification-form"): COMPLIANCE_READERS,
    ("GET", f"{REG}/breaches/{{entry_id}}/communication"): REGISTER_WRITERS,
    ("GET", f"{REG}/dpias"): COMPLIANCE_READERS,
    ("POST", f"{REG}/dpias"): REGISTER_WRITERS,
    ("POST", f"{REG}/dpias/import-pia"): REGISTER_WRITERS,
    ("GET", f"{REG}/dpias/{{entry_id}}"): COMPLIANCE_READERS,
    ("GET", f"{REG}/dpias/{{entry_id}}/pia"): COMPLIANCE_READERS,
    ("PUT", f"{REG}/dpias/{{entry_id}}"): REGISTER_WRITERS,
    ("DELETE", f"{REG}/dpias/{{entry_id}}"): REGISTER_WRITERS,
    ("GET", f"{REG}/dpia-events"): COMPLIANCE_READERS,
    ("GET", f"{REG}/notices"): COMPLIANCE_READERS,
    ("POST", f"{REG}/notices"): REGISTER_WRITERS,
    ("GET", f"{REG}/notices/draft"): COMPLIANCE_READERS,
    ("GET", f"{REG}/notices/{{version}}"): COMPLIANCE_READERS,
    ("GET", f"{REG}/compliance"): COMPLIANCE_READERS,
    ("GET", f"{REG}/report"): COMPLIANCE_READERS,
    ("GET", "/privacy-notice/{ref}"): PUBLIC,
    ("GET", f"{RET}/defaults"): RETENTION_READERS,
    ("GET", f"{RET}/policies"): RETENTION_READERS,
    ("POST", f"{RET}/policies"): RETENTION_WRITERS,
    ("GET", f"{RET}/policies/{{policy_id}}"): RETENTION_READERS,
    ("PUT", f"{RET}/policies/{{policy_id}}"): RETENTION_WRITERS,
    ("DELETE", f"{RET}/policies/{{policy_id}}"): RETENTION_WRITERS,
    ("GET", f"{RET}/holds"): RETENTION_READERS,
    ("POST", f"{RET}/holds"): RETENTION_WRITERS,
    ("GET", f"{RET}/holds/{{hold_id}}"): RETENTION_READERS,
    ("POST", f"{RET}/holds/{{hold_id}}/release"): RETENTION_WRITERS,
    ("GET", f"{RET}/runs"): RETENTION_READERS,
    ("GET", f"{RET}/runs/{{run_id}}"): RETENTION_READERS,
    ("GET", f"{RET}/quota"): RETENTION_READERS,
    ("PUT", f"{RET}/quota"): frozenset({ADMIN, OPERATOR}),
}
RETENTION_POLICY = {
    "name": "users after two years",
    "target": {"kind": "table", "map": "app", "table": "app.users"},
    "period": "P2Y",
    "reference": "id",
    "action": "delete",
}
RETENTION_HOLD = {"scope": "table", "target": "app.users", "reason": "matrix", "owner": "Legal"}
AWARE = datetime(2026, 3, 27, 14, 0, tzinfo=UTC)
REGISTER_BODIES: dict[str, Callable[[], dict[str, Any]]] = {
    "activities": registers_samples.controller_activity,
    "processors": registers_samples.processor,
    "breaches": lambda: registers_samples.breach(AWARE),
    "dpias": registers_samples.dpia,
}
RIGHTS_ACTOR = {"type": "test", "id": "access-matrix"}
# The smallest valid map; its store is an empty in-memory database, so validation reports problems.
DATAMAP = """
dataset:
  - fides_key: app
    collections:
      - name: users
        fields:
          - {name: id, fides_meta: {primary_key: true}}
          - {name: email, data_categories: [user.contact.email], fides_meta: {identity: email}}
gardien:
  stores:
    app: {url: "sqlite:///:memory:"}
"""
SCA_PAYMENT = {"amount": "42.00", "channel": "remote", "instrument": "card", "payer": "p-1", "payee": "shop"}


def served_routes(app: FastAPI) -> set[tuple[str, str]]:
    """Every (method, path) the app answers, HEAD aside, walking app.routes (and included routers)."""
    # FastAPI ≥ 0.16x keeps included routers nested in app.routes; its iterator flattens them.
    iterate = getattr(fastapi.routing, "iter_route_contexts", None)
    routes: list[Any] = list(iterate(app.routes)) if iterate is not None else list(app.routes)
    found: set[tuple[str, str]] = set()
    for route in routes:
        inner = getattr(route, "route", route)
        if isinstance(inner, Mount) and inner.path == "/console":
            # The console's pages answer sessions, not API keys: their own role × page matrix is
            # in tests/console_support.py, checked by tests/test_console_http.py and the browser.
            continue
        if isinstance(inner, Mount) and isinstance(inner.app, StaticFiles):
            # Static files (the bundled API-docs assets): stand for the mount with one of its files.
            found.add(("GET", f"{inner.path}/swagger-ui.css"))
            continue
        methods, path = getattr(route, "methods", None), getattr(route, "path", None)
        assert methods and path, f"a route the access matrix cannot classify: {route!r}"
        found.update((method, path) for method in methods if method != "HEAD")
    return found


def key_id(token: str) -> str:
    return token.split("_")[1]


def checkpoint_size(note: str) -> int:
    return Checkpoint.parse(Note.parse(note).body).size


def event_count(runtime: Runtime, org_id: str) -> int:
    with runtime.engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(EVENTS).where(EVENTS.c.org_id == org_id)).scalar_one())


def assert_problem(response: Any, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == PROBLEM_JSON
    body: dict[str, Any] = response.json()
    assert body["status"] == status
    assert body["type"].startswith("https://gardien.dev/problems/")
    return body


@dataclass
class World:
    """One organisation with events, two checkpoints and an export: valid inputs for every route."""

    runtime: Runtime
    org: str
    tokens: dict[Role, str]
    event_id: str
    old_size: int
    new_size: int
    export_id: str
    decision_id: str
    challenge_id: str
    site_key: str
    notice_sha256: str
    consent_id: str
    user_id: str
    pseudonym: str
    rights: RightsService
    inbox: Inbox
    request_id: str
    registers: dict[str, str]
    # Creates a register entry (activities, processors, breaches, dpias) and returns its id.
    fresh: Callable[[str], str]
    # A retention policy, a legal hold and a (failed) run: their ids; "fresh_policy" makes another.
    retention: dict[str, str]
    fresh_policy: Callable[[], str]

    def fresh_request(self, **body: Any) -> str:
        """A new data-subject request: changing routes need one each, as their changes are one-way."""
        body.setdefault("type", "access")
        body.setdefault("email", f"m-{uuid.uuid4().hex[:8]}@example.org")
        return self.rights.create(self.org, RequestIn.model_validate(body), RIGHTS_ACTOR, "service").id

    def _executed(self, request_id: str, *, with_package: bool) -> DatamapExecutor:
        """The request in progress: the app's engine runs it over DATAMAP, whose empty store makes it fail."""
        self.rights.verify_by_operator(self.org, request_id, "matrix", RIGHTS_ACTOR)
        executor = self._executor()
        executor.wait(30)
        if with_package:
            executor.packages.create(self.org, request_id, "access", lambda out: out.write(b"PK"))
        return executor

    def _executor(self) -> DatamapExecutor:
        executor = self.rights.executor
        assert isinstance(executor, DatamapExecutor)
        return executor

    def download_token(self) -> str:
        request_id = self.fresh_request()
        return self._executed(request_id, with_package=True).packages.link(self.org, request_id).token

    def privacy_center(self, method: str, path: str) -> tuple[str, dict[str, Any]]:
        """A page of the organisation's privacy center and its form, as the person would send them."""
        with self.runtime.writes.begin() as session:
            slug = service.get_org(session, self.org).slug
        if "{request_id}" not in path:
            form = {"type": "access", "email": f"pc-{uuid.uuid4().hex[:8]}@example.org", "lang": "fr"}
            return path.replace("{slug}", slug), {"data": form} if method == "POST" else {}
        request_id = self.fresh_request()
        token = self.rights.status_token(self.org, request_id)
        url = path.replace("{slug}", slug).replace("{request_id}", request_id)
        form = {"k": token}
        if path.endswith("/code"):
            address = self.rights.get(self.org, request_id, reveal=True).email
            self.rights.send_code(self.org, request_id, RIGHTS_ACTOR)
            code = re.search(r"\b(\d{6})\b", body_of(self.inbox.to(address)[-1]))
            assert code is not None
            form["code"] = code.group(1)
        return (url, {"data": form}) if method == "POST" else (f"{url}?k={token}", {})

    def _rights_path(self, method: str, path: str, bodies: dict[tuple[str, str], Any]) -> str:
        request_id = self.fresh_request() if method == "POST" else self.request_id
        if path.endswith("/identity/verify"):
            address = self.rights.get(self.org, request_id, reveal=True).email
            self.rights.send_code(self.org, request_id, RIGHTS_ACTOR)
            code = re.search(r"\b(\d{6})\b", body_of(self.inbox.to(address)[-1]))
            assert code is not None
            bodies[(method, path)] = {"code": code.group(1)}
        if path.endswith(("/execute", "/package/link")):
            self._executed(request_id, with_package=path.endswith("/package/link"))
        if "{block_id}" in path:
            restricted = self.fresh_request(type="restriction", subject_id=f"c-{uuid.uuid4().hex[:6]}")
            self.rights.verify_by_operator(self.org, restricted, "matrix", RIGHTS_ACTOR)
            self._executor().wait(30)  # the engine closes the restriction in the background: let it finish
            block = self.rights.blocks(self.org, self.rights.identities(self.org, restricted).email).blocks[0]
            return path.replace("{block_id}", block.id)
        return path.replace("{request_id}", request_id)

    def request(self, method: str, path: str) -> tuple[str, dict[str, Any]]:
        """A valid request for a route: the URL with its path filled in, and its parameters/body."""
        kwargs: dict[str, Any] = {}
        bodies: dict[tuple[str, str], Any] = {}
        if path.startswith("/privacy/{slug}"):
            return self.privacy_center(method, path)
        if "{request_id}" in path or "{block_id}" in path:
            path_filled = self._rights_path(method, path, bodies)
        else:
            path_filled = path
        url = path_filled.replace("{event_id}", self.event_id).replace("{export_id}", self.export_id)
        url = url.replace("{size}", str(self.new_size))
        url = url.replace("{decision_id}", self.decision_id).replace("{challenge_id}", self.challenge_id)
        url = url.replace("{quarter}", "2026-Q3").replace("{instrument}", "card").replace("{payer}", "p-1")
        url = url.replace("{site_key}", self.site_key).replace("{consent_id}", self.consent_id)
        url = url.replace("{ref}", self.site_key)
        url = url.replace("{version}", "1").replace("{user_id}", self.user_id).replace("{key}", "app")
        if "{entry_id}" in url:
            kind = path.removeprefix(f"{REG}/").split("/")[0]
            # Each allowed role deletes an entry of its own: the second delete of one would be a 404.
            url = url.replace("{entry_id}", self.fresh(kind) if method == "DELETE" else self.registers[kind])
        if "{policy_id}" in url:
            policy = self.fresh_policy() if method == "DELETE" else self.retention["policy"]
            url = url.replace("{policy_id}", policy)
        url = url.replace("{hold_id}", self.retention["hold"]).replace("{run_id}", self.retention["run"])
        if "{token}" in url:
            url = url.replace("{token}", self.download_token())
        if "{key_id}" in url:
            url = url.replace("{key_id}", key_id(make_key(self.runtime, self.org, SERVICE)))
        bodies |= {
            ("POST", "/api/v1/requests"): {"type": "erasure", "email": "matrix@example.org"},
            ("PUT", "/api/v1/requests/settings"): {"due_soon_days": 7},
            ("POST", f"{REQUEST}/transitions"): {"to": "cancelled", "reason": "matrix"},
            ("POST", f"{REQUEST}/extend"): {"reason": "matrix"},
            ("POST", f"{REQUEST}/identity/operator"): {"reason": "matrix"},
            ("POST", "/api/v1/restrictions/{block_id}/lift"): {"reason": "matrix"},
            ("POST", "/api/v1/keys"): {"name": "matrix", "role": "auditor"},
            ("POST", "/api/v1/audit/events"): sample_event(),
            ("POST", "/api/v1/audit/events/batch"): {"events": [sample_event(), sample_event(action="artist.read")]},
            ("POST", "/api/v1/audit/verify"): {},
            ("POST", "/api/v1/audit/exports"): {"format": "csv", "filter": {"module": "bookings"}},
            ("POST", "/api/v1/sca/decide"): {"payment": SCA_PAYMENT},
            ("PUT", "/api/v1/sca/policy"): {"counter_mode": "count"},
            ("PUT", "/api/v1/sca/fraud-quarters/{quarter}/{instrument}"): {"rate_percent": "0.02"},
            ("POST", "/api/v1/sca/decisions/{decision_id}/fraud"): {},
            ("POST", "/api/v1/sca/challenges"): {"payer": "p-1", "amount": "42.00", "payee": "shop"},
            ("POST", "/api/v1/sca/challenges/{challenge_id}/verify"): {"code": "000000", "amount": "1", "payee": "x"},
            ("PUT", "/api/v1/consent/settings"): {"validity_months": 6},
            ("POST", "/api/v1/consent/notices"): sample_notice(uuid.uuid4().hex),
            ("POST", "/api/v1/consent/records"): {"method": "accept_all"},
            ("POST", "/api/v1/consent/subjects/{consent_id}/withdraw"): {},
            ("POST", "/api/v1/consent/check"): {"checks": [{"subject": self.consent_id, "purpose": "analytics"}]},
            ("POST", f"{CONSENT_PUBLIC}/choices"): {"method": "reject_all", "notice_sha256": self.notice_sha256},
            ("PUT", "/api/v1/datamaps/{key}"): {"document": DATAMAP},
            ("POST", "/api/v1/privacy/pseudonyms"): {"values": ["u-7"]},
            ("POST", "/api/v1/privacy/reidentify"): {"token": self.pseudonym, "reason": "matrix"},
            ("POST", "/api/v1/privacy/redact"): {"text": "u-7 <u7@example.fr>"},
            ("PUT", f"{REG}/settings"): registers_samples.settings(),
            ("POST", f"{REG}/breaches/{{entry_id}}/notifications"): {
                "kind": "complementary",
                "sent_at": registers_samples.iso(AWARE + timedelta(hours=80)),
                "authority": "cnil",
            },
            ("POST", f"{REG}/dpias/import-pia"): {"pia": {"name": "Imported"}, "answers": []},
            ("POST", f"{RET}/policies"): RETENTION_POLICY,
            ("PUT", f"{RET}/policies/{{policy_id}}"): {**RETENTION_POLICY, "period": "P3Y"},
            ("POST", f"{RET}/holds"): RETENTION_HOLD,
            ("PUT", f"{RET}/quota"): {"max_ledger_events": 1_000_000},
        }
        for kind, body in REGISTER_BODIES.items():
            bodies[("POST", f"{REG}/{kind}")] = body()
            bodies[("PUT", f"{REG}/{kind}/{{entry_id}}")] = body()
        params: dict[tuple[str, str], Any] = {
            ("GET", "/api/v1/audit/events"): {"module": "bookings", "limit": 2},
            ("GET", "/api/v1/audit/proofs/inclusion"): {"seq": 0, "size": self.new_size},
            ("GET", "/api/v1/audit/proofs/consistency"): {"old": self.old_size, "new": self.new_size},
            ("GET", "/api/v1/consent/check"): {"subject": self.consent_id, "purpose": "analytics"},
            ("GET", "/api/v1/restrictions"): {"subject": "c-1"},
            ("GET", "/api/v1/can-process"): {"subject": "c-1", "purpose": "analytics"},
        }
        if (method, path) in bodies:
            kwargs["json"] = bodies[(method, path)]
        if (method, path) in params:
            kwargs["params"] = params[(method, path)]
        return url, kwargs


@pytest.fixture
def world(runtime: Runtime, org: str, tokens: dict[Role, str], client: TestClient, smtp: Inbox) -> World:
    batch = client.post(
        "/api/v1/audit/events/batch",
        json={"events": [sample_event(), sample_event(action="artist.create", crud="create")]},
        headers=auth(tokens[SERVICE]),
    )
    assert batch.status_code == 201, batch.text
    first = client.post("/api/v1/audit/exports", json={}, headers=auth(tokens[ADMIN]))
    assert first.status_code == 201, first.text
    second = client.post("/api/v1/audit/exports", json={"format": "json"}, headers=auth(tokens[ADMIN]))
    assert second.status_code == 201, second.text
    old_size = checkpoint_size(first.json()["manifest"]["checkpoint"])
    new_size = checkpoint_size(second.json()["manifest"]["checkpoint"])
    assert old_size < new_size
    decision = client.post("/api/v1/sca/decide", json={"payment": SCA_PAYMENT}, headers=auth(tokens[SERVICE]))
    assert decision.status_code == 200, decision.text
    challenge = client.post(
        "/api/v1/sca/challenges", json={"payer": "p-1", "amount": "42", "payee": "shop"}, headers=auth(tokens[SERVICE])
    )
    assert challenge.status_code == 201, challenge.text
    settings = client.get("/api/v1/consent/settings", headers=auth(tokens[ADMIN]))
    assert settings.status_code == 200, settings.text
    notice = client.post("/api/v1/consent/notices", json=sample_notice(), headers=auth(tokens[DPO]))
    assert notice.status_code == 201, notice.text
    choice = client.post(
        "/api/v1/consent/records", json={"method": "accept_all", "user_id": "u-7"}, headers=auth(tokens[SERVICE])
    )
    assert choice.status_code == 201, choice.text
    rights: RightsService = client.app.state.rights  # type: ignore[attr-defined]
    rights.mailer = Mailer(smtp.settings(runtime.settings))
    datamap = client.put("/api/v1/datamaps/app", json={"document": DATAMAP}, headers=auth(tokens[DPO]))
    assert datamap.status_code == 200, datamap.text
    pseudonym = client.post(
        "/api/v1/privacy/pseudonyms", json={"operator": "encrypt", "values": ["u-7"]}, headers=auth(tokens[SERVICE])
    )
    assert pseudonym.status_code == 200, pseudonym.text
    dpo = auth(tokens[DPO])
    assert client.put(f"{REG}/settings", json=registers_samples.settings(), headers=dpo).status_code == 200

    def fresh(kind: str) -> str:
        created = client.post(f"{REG}/{kind}", json=REGISTER_BODIES[kind](), headers=dpo)
        assert created.status_code == 201, created.text
        entry_id: str = created.json()["id"]
        return entry_id

    registers = {kind: fresh(kind) for kind in REGISTER_BODIES}
    initial = {"kind": "initial", "sent_at": registers_samples.iso(AWARE + timedelta(hours=70)), "authority": "cnil"}
    notified = client.post(f"{REG}/breaches/{registers['breaches']}/notifications", json=initial, headers=dpo)
    assert notified.status_code == 201, notified.text
    published = client.post(f"{REG}/notices", headers=dpo)
    assert published.status_code == 201, published.text

    def fresh_policy() -> str:
        created = client.post(f"{RET}/policies", json=RETENTION_POLICY, headers=dpo)
        assert created.status_code == 201, created.text
        policy_id: str = created.json()["id"]
        return policy_id

    policy = fresh_policy()
    hold = client.post(f"{RET}/holds", json=RETENTION_HOLD, headers=dpo)
    assert hold.status_code == 201, hold.text
    ledger = client.app.state.ledger  # type: ignore[attr-defined]
    runner = Runner(runtime, ledger, client.app.state.datamaps)  # type: ignore[attr-defined]
    retention: RetentionService = client.app.state.retention  # type: ignore[attr-defined]
    run = runner.run_policy(org, retention.policy_row(org, policy), dry_run=True, trigger="api", actor=RIGHTS_ACTOR)
    return World(
        runtime=runtime,
        org=org,
        tokens=tokens,
        event_id=batch.json()["receipts"][0]["id"],
        old_size=old_size,
        new_size=new_size,
        export_id=first.json()["id"],
        decision_id=decision.json()["decision_id"],
        challenge_id=challenge.json()["id"],
        site_key=settings.json()["site_key"],
        notice_sha256=notice.json()["sha256"],
        consent_id=choice.json()["consent_id"],
        user_id="u-7",
        rights=rights,
        inbox=smtp,
        request_id=rights.create(
            org, RequestIn(type=RequestType.ACCESS, email="matrix@example.org"), RIGHTS_ACTOR, "service"
        ).id,
        pseudonym=pseudonym.json()["pseudonyms"][0],
        registers=registers,
        fresh=fresh,
        retention={"policy": policy, "hold": hold.json()["id"], "run": run},
        fresh_policy=fresh_policy,
    )


def test_every_served_route_has_a_matrix_entry(client: TestClient) -> None:
    served = served_routes(client.app)  # type: ignore[arg-type]
    assert served - set(MATRIX) == set(), "new endpoints need an entry in the access matrix"
    assert set(MATRIX) - served == set(), "the matrix names endpoints the app no longer serves"


def _route_id(route: tuple[str, str]) -> str:
    return f"{route[0]} {route[1]}"


@pytest.mark.parametrize("route", sorted(MATRIX), ids=_route_id)
def test_each_role_is_allowed_or_refused_as_the_matrix_says(
    route: tuple[str, str], world: World, client: TestClient
) -> None:
    method, path = route
    allowed = MATRIX[route]
    for role in Role:
        url, kwargs = world.request(method, path)
        before = event_count(world.runtime, world.org)
        response = client.request(method, url, headers=auth(world.tokens[role]), **kwargs)
        if allowed is PUBLIC or role in allowed:
            assert 200 <= response.status_code < 300, f"{role.value}: {response.status_code} {response.text}"
        else:
            body = assert_problem(response, 403)
            assert body["type"].endswith("/forbidden")
            assert role.value in body["detail"]
            if method == "POST" and "/events" in path:
                assert event_count(world.runtime, world.org) == before, "a refused append wrote to the ledger"


@pytest.mark.parametrize("route", sorted(r for r, roles in MATRIX.items() if roles is PUBLIC), ids=_route_id)
def test_public_routes_need_no_key(route: tuple[str, str], world: World, client: TestClient) -> None:
    method, path = route
    url, kwargs = world.request(method, path)
    assert 200 <= client.request(method, url, **kwargs).status_code < 300
    # A key that is not valid does not turn a public route into a refusal either.
    nonsense = {"Authorization": "Bearer nonsense"}
    assert 200 <= client.request(method, url, headers=nonsense, **kwargs).status_code < 300


def _revoked_admin_token(world: World, client: TestClient) -> str:
    token = make_key(world.runtime, world.org, ADMIN)
    assert client.get("/api/v1/me", headers=auth(token)).status_code == 200  # now cached as valid
    revoked = client.delete(f"/api/v1/keys/{key_id(token)}", headers=auth(world.tokens[ADMIN]))
    assert revoked.status_code == 200, revoked.text
    assert revoked.json()["revoked_at"] is not None
    return token


@pytest.mark.parametrize("route", sorted(r for r, roles in MATRIX.items() if roles is not PUBLIC), ids=_route_id)
def test_protected_routes_refuse_missing_malformed_wrong_and_revoked_keys(
    route: tuple[str, str], world: World, client: TestClient
) -> None:
    method, path = route
    admin_key = world.tokens[ADMIN]
    impostor = f"gdn_{key_id(admin_key)}_{'A' * 43}"  # a real key id with a wrong secret
    attempts: dict[str, dict[str, str]] = {
        "no key": {},
        "empty bearer": {"Authorization": "Bearer "},
        "not bearer": {"Authorization": f"Basic {admin_key}"},
        "malformed": {"Authorization": "Bearer gdn_not-a-key"},
        "unknown": {"Authorization": f"Bearer gdn_{'a' * 12}_{'B' * 43}"},
        "wrong secret": auth(impostor),
        "revoked": auth(_revoked_admin_token(world, client)),
    }
    for label, headers in attempts.items():
        url, kwargs = world.request(method, path)
        before = event_count(world.runtime, world.org)
        response = client.request(method, url, headers=headers, **kwargs)
        body = assert_problem(response, 401)
        assert response.headers.get("www-authenticate") == "Bearer", label
        assert body["type"].endswith("/unauthorized"), label
        assert event_count(world.runtime, world.org) == before, f"{label}: an unauthenticated call left a trace"


@pytest.fixture
def other_org(runtime: Runtime, client: TestClient) -> Iterator[dict[str, Any]]:
    """A second organisation with data of its own, larger than the first one's ledger."""
    with runtime.writes.begin() as session:
        org_id = service.create_org(session, slug=f"other-{uuid.uuid4().hex[:10]}", name="Other").id
    tokens = {role: make_key(runtime, org_id, role) for role in (ADMIN, SERVICE)}
    marker = f"secret-{uuid.uuid4().hex}"
    events = [sample_event(actor={"type": "user", "id": marker, "display": marker}) for _ in range(40)]
    batch = client.post("/api/v1/audit/events/batch", json={"events": events}, headers=auth(tokens[SERVICE]))
    assert batch.status_code == 201, batch.text
    export = client.post("/api/v1/audit/exports", json={}, headers=auth(tokens[ADMIN]))
    assert export.status_code == 201, export.text
    checkpoint = export.json()["manifest"]["checkpoint"]
    yield {
        "org": org_id,
        "tokens": tokens,
        "marker": marker,
        "event_id": batch.json()["receipts"][30]["id"],
        "export_id": export.json()["id"],
        "size": checkpoint_size(checkpoint),
        "root": Checkpoint.parse(Note.parse(checkpoint).body).root,
        "key_id": key_id(tokens[SERVICE]),
    }


def test_another_organisations_objects_are_not_found_and_never_shown(
    world: World, other_org: dict[str, Any], client: TestClient
) -> None:
    mine = world.tokens
    theirs = other_org
    assert world.new_size < theirs["size"], "the other ledger must have checkpoint sizes this one lacks"
    secrets_of_theirs = [theirs["marker"], base64.b64encode(theirs["root"]).decode(), theirs["org"]]
    not_found = {
        "event": ("GET", f"/api/v1/audit/events/{theirs['event_id']}", {}, READERS),
        "event proof": ("GET", f"/api/v1/audit/events/{theirs['event_id']}/proof", {}, VERIFIERS),
        "export manifest": ("GET", f"/api/v1/audit/exports/{theirs['export_id']}", {}, READERS),
        "export payload": ("GET", f"/api/v1/audit/exports/{theirs['export_id']}/payload", {}, READERS),
        "checkpoint": ("GET", f"/api/v1/audit/checkpoints/{theirs['size']}", {}, VERIFIERS),
        "inclusion at their size": (
            "GET",
            "/api/v1/audit/proofs/inclusion",
            {"params": {"seq": 0, "size": theirs["size"]}},
            VERIFIERS,
        ),
        "consistency to their size": (
            "GET",
            "/api/v1/audit/proofs/consistency",
            {"params": {"old": world.old_size, "new": theirs["size"]}},
            VERIFIERS,
        ),
        "api key": ("DELETE", f"/api/v1/keys/{theirs['key_id']}", {}, ADMIN_ONLY),
    }
    for label, (method, url, kwargs, roles) in not_found.items():
        for role in roles:
            response = client.request(method, url, headers=auth(mine[role]), **kwargs)
            assert_problem(response, 404)
            for secret in secrets_of_theirs:
                assert secret not in response.text, f"{label} as {role.value} leaked the other organisation's data"

    # Their key survived the attempt to revoke it, and their data is intact and still theirs.
    assert client.get("/api/v1/me", headers=auth(theirs["tokens"][SERVICE])).status_code == 200
    own = client.get(f"/api/v1/audit/events/{theirs['event_id']}", headers=auth(theirs["tokens"][ADMIN]))
    assert own.status_code == 200 and own.json()["actor"]["id"] == theirs["marker"]

    # Listings, exports, checkpoints and key lists only ever show the caller's organisation.
    listing = client.get("/api/v1/audit/events", params={"limit": 1000}, headers=auth(mine[AUDITOR]))
    assert listing.status_code == 200
    assert {e["org"] for e in listing.json()["events"]} == {world.org}
    assert theirs["marker"] not in listing.text
    export = client.post("/api/v1/audit/exports", json={}, headers=auth(mine[DPO]))
    assert export.status_code == 201 and export.json()["manifest"]["org"] == world.org
    payload = client.get(export.json()["payload_url"], headers=auth(mine[DPO]))
    assert payload.status_code == 200 and theirs["marker"] not in payload.text
    latest = client.get("/api/v1/audit/checkpoints/latest", headers=auth(mine[OPERATOR])).json()
    assert f"/audit/{world.org}\n" in latest["note"] and latest["size"] < theirs["size"]
    keys = client.get("/api/v1/keys", headers=auth(mine[ADMIN])).json()
    assert theirs["key_id"] not in {k["id"] for k in keys}
    me = client.get("/api/v1/me", headers=auth(mine[AUDITOR])).json()
    assert me["organisation"]["id"] == world.org and me["role"] == "auditor"
    # Asked by their actor id, last: the question itself is recorded in this organisation's ledger.
    by_actor = client.get("/api/v1/audit/events", params={"actor": theirs["marker"]}, headers=auth(mine[AUDITOR]))
    assert by_actor.json() == {"events": [], "next_cursor": None}
