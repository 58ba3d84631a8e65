"""Data-subject requests over HTTP and the command line, on SQLite and PostgreSQL: roles, tenant
isolation, problem+json errors, pagination, identity codes through a real SMTP server, reminders to
a real webhook, and `can-process`."""

from __future__ import annotations

import json
import re
import threading
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from gardien.core import service as core
from gardien.core.roles import Role
from gardien.core.runtime import Runtime
from gardien.rights.mail import Mailer
from tests.conftest import auth, make_key
from tests.smtp_server import Inbox, body_of, smtp_fixture  # noqa: F401  (the SMTP server fixture)
from tests.test_cli import cli, run  # noqa: F401  (the CLI runner fixture)

PROBLEM = "application/problem+json"


class Api:
    def __init__(self, client: TestClient, tokens: dict[Role, str]) -> None:
        self.client = client
        self.headers = {role: auth(token) for role, token in tokens.items()}

    def file(self, role: Role = Role.SERVICE, status: int = 201, **body: Any) -> dict[str, Any]:
        body.setdefault("type", "access")
        body.setdefault("email", f"p-{uuid.uuid4().hex[:8]}@example.org")
        response = self.client.post("/api/v1/requests", json=body, headers=self.headers[role])
        assert response.status_code == status, response.text
        result: dict[str, Any] = response.json()
        return result

    def call(self, method: str, path: str, role: Role = Role.DPO, status: int = 200, **kwargs: Any) -> Any:
        response = self.client.request(method, f"/api/v1{path}", headers=self.headers[role], **kwargs)
        assert response.status_code == status, response.text
        if status >= 400:
            assert response.headers["content-type"].startswith(PROBLEM)
        return response.json()


@pytest.fixture
def api(client: TestClient, tokens: dict[Role, str], smtp: Inbox, runtime: Runtime) -> Api:
    client.app.state.rights.mailer = Mailer(smtp.settings(runtime.settings))  # type: ignore[attr-defined]
    return Api(client, tokens)


def ago(days: int) -> str:
    return (datetime.now(UTC) - timedelta(days=days)).isoformat()


def test_a_request_from_filing_to_completion(api: Api, smtp: Inbox) -> None:
    filed = api.file(email="ana@example.org", subject_id="cust-1", locale="fr")
    assert filed["status"] == "received" and filed["email"] == "ana@example.org"
    rid = filed["id"]

    sent = api.call("POST", f"/requests/{rid}/identity/code", Role.SERVICE)
    assert sent["sent_to"] == "a***@example.org" and sent["attempts_allowed"] == 5
    message = smtp.to("ana@example.org")[-1]
    assert message["Subject"].startswith("Votre code de vérification")
    code = re.search(r"\b(\d{6})\b", body_of(message))
    assert code is not None

    wrong = f"{(int(code.group(1)) + 1) % 10**6:06d}"
    failed = api.call("POST", f"/requests/{rid}/identity/verify", Role.SERVICE, 422, json={"code": wrong})
    assert failed["errors"][0]["field"] == "code" and "4 attempts left" in failed["detail"]
    api.call("POST", f"/requests/{rid}/identity/verify", Role.SERVICE, 422, json={"code": "12ab56"})
    verified = api.call("POST", f"/requests/{rid}/identity/verify", Role.SERVICE, json={"code": code.group(1)})
    assert verified["status"] == "in_progress" and verified["identity_method"] == "email_code"

    done = api.call("POST", f"/requests/{rid}/transitions", json={"to": "completed", "reason": "package sent"})
    assert done["status"] == "completed" and done["closed_at"] is not None
    history = api.call("GET", f"/requests/{rid}/history", Role.OPERATOR)["history"]
    assert [h["action"] for h in history] == [
        "created",
        "identity_code_sent",
        "identity_failed",
        "identity_verified",
        "completed",
    ]
    assert history[-1]["reason"] == "package sent" and history[-1]["actor"]["type"] == "api_key"


def test_who_may_do_what(api: Api) -> None:
    rid = api.file()["id"]
    api.file(Role.OPERATOR, 403)
    api.file(Role.AUDITOR, 403)
    api.call("GET", "/requests", Role.SERVICE, 403)
    for role in (Role.OPERATOR, Role.AUDITOR, Role.DPO, Role.ADMIN):
        api.call("GET", "/requests", role)
        api.call("GET", f"/requests/{rid}/history", role)
    api.call("GET", f"/requests/{rid}", Role.SERVICE)
    reason = {"reason": "checked"}
    api.call("POST", f"/requests/{rid}/identity/operator", Role.OPERATOR, 403, json=reason)
    api.call("POST", f"/requests/{rid}/identity/operator", Role.SERVICE, 403, json=reason)
    api.call("POST", f"/requests/{rid}/extend", Role.SERVICE, 403, json=reason)
    api.call("POST", f"/requests/{rid}/transitions", Role.SERVICE, 403, json={"to": "rejected", "reason": "x"})
    api.call("POST", f"/requests/{rid}/transitions", Role.OPERATOR, 403, json={"to": "cancelled", "reason": "x"})
    api.call("PUT", "/requests/settings", Role.OPERATOR, 403, json={})
    # A host application withdraws a request for the person.
    cancelled = api.call("POST", f"/requests/{rid}/transitions", Role.SERVICE, json={"to": "cancelled", "reason": "x"})
    assert cancelled["status"] == "cancelled"


def test_the_address_is_shown_only_to_those_who_answer(api: Api) -> None:
    rid = api.file(email="bruno.martin@example.org")["id"]
    assert api.call("GET", f"/requests/{rid}", Role.DPO)["email"] == "bruno.martin@example.org"
    for role in (Role.OPERATOR, Role.AUDITOR, Role.SERVICE):
        assert api.call("GET", f"/requests/{rid}", role)["email"] == "b***@example.org"
    listed = api.call("GET", "/requests", Role.OPERATOR, params={"email": "Bruno.Martin@example.org"})["requests"]
    assert [(r["id"], r["email"]) for r in listed] == [(rid, "b***@example.org")]


def test_another_organisations_request_is_not_found(api: Api, runtime: Runtime) -> None:
    rid = api.file()["id"]
    with runtime.writes.begin() as session:
        other = core.create_org(session, slug=f"o-{uuid.uuid4().hex[:12]}", name="Other", country="NL").id
    stranger = Api(api.client, {Role.DPO: make_key(runtime, other, Role.DPO)})
    for method, path, body in [
        ("GET", f"/requests/{rid}", None),
        ("GET", f"/requests/{rid}/history", None),
        ("POST", f"/requests/{rid}/transitions", {"to": "cancelled", "reason": "x"}),
        ("POST", f"/requests/{rid}/extend", {"reason": "x"}),
        ("POST", f"/requests/{rid}/identity/code", None),
        ("POST", f"/requests/{rid}/identity/verify", {"code": "123456"}),
        ("POST", f"/requests/{rid}/identity/operator", {"reason": "x"}),
    ]:
        problem = stranger.call(method, path, Role.DPO, 404, json=body)
        assert problem["type"].endswith("/not-found")
    assert stranger.call("GET", "/requests")["requests"] == []
    assert api.call("GET", f"/requests/{rid}")["status"] == "received"


def test_bad_input_is_a_422_with_the_field_and_changes_nothing(api: Api) -> None:
    before = api.call("GET", "/requests")["requests"]
    for body, field in [
        ({"type": "access", "email": "not-an-address"}, "email"),
        ({"type": "deletion", "email": "a@example.org"}, "type"),
        ({"type": "objection", "email": "a@example.org"}, "purposes"),
        ({"type": "access", "email": "a@example.org", "received_at": "2099-01-01T00:00:00Z"}, "received_at"),
        ({"type": "access", "email": "a@example.org", "purposes": ["Not A Purpose"]}, "purposes.0"),
    ]:
        problem = api.call("POST", "/requests", Role.SERVICE, 422, json=body)
        assert problem["errors"][0]["field"] == field, problem
    assert api.call("GET", "/requests")["requests"] == before
    api.call("GET", "/requests", params={"cursor": "bm90IGFuIGlk"}, status=422)
    api.call("GET", "/requests/not-a-uuid", status=422)
    rid = api.file()["id"]
    problem = api.call("POST", f"/requests/{rid}/transitions", json={"to": "rejected", "reason": "no"}, status=422)
    assert problem["errors"][0]["field"] == "reason_code"
    problem = api.call("POST", f"/requests/{rid}/transitions", json={"to": "in_progress", "reason": "go"}, status=409)
    assert problem["type"].endswith("/conflict")


def test_listing_pages_and_filters(api: Api) -> None:
    ids = [api.file(type="erasure" if i % 2 else "access")["id"] for i in range(5)]
    seen: list[str] = []
    cursor = None
    while True:
        params: dict[str, Any] = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        page = api.call("GET", "/requests", params=params)
        seen += [r["id"] for r in page["requests"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == list(reversed(ids))
    erasures = api.call("GET", "/requests", params={"type": "erasure"})["requests"]
    assert {r["id"] for r in erasures} == {ids[1], ids[3]}
    api.call("POST", f"/requests/{ids[0]}/transitions", json={"to": "cancelled", "reason": "duplicate"})
    cancelled = api.call("GET", "/requests", params={"status": "cancelled"})["requests"]
    assert [r["id"] for r in cancelled] == [ids[0]]


def test_due_soon_and_overdue(api: Api) -> None:
    late = api.file(received_at=ago(40))["id"]
    soon = api.file(received_at=ago(20))["id"]
    fresh = api.file()["id"]
    due = api.call("GET", "/requests/due", Role.OPERATOR, params={"within_days": 30})
    assert [r["id"] for r in due["overdue"]] == [late]
    assert [r["id"] for r in due["due_soon"]] == [soon]
    assert all(r["overdue"] for r in due["overdue"]) and not any(r["overdue"] for r in due["due_soon"])
    overdue = api.call("GET", "/requests", params={"overdue": True})["requests"]
    assert [r["id"] for r in overdue] == [late]
    assert fresh not in [r["id"] for r in api.call("GET", "/requests/due", params={"within_days": 0})["due_soon"]]
    # Extending a request whose first month has run out is refused.
    problem = api.call("POST", f"/requests/{late}/extend", json={"reason": "complex"}, status=409)
    assert "first deadline ran out" in problem["detail"]
    extended = api.call("POST", f"/requests/{soon}/extend", json={"reason": "complex"})
    assert extended["extended"] and extended["due_on"] > extended["first_due_on"]


@pytest.fixture
def webhook() -> Iterator[tuple[str, list[dict[str, Any]]]]:
    received: list[dict[str, Any]] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers["Content-Length"])
            received.append(json.loads(self.rfile.read(length)))
            self.send_response(204)
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = HTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}/hooks/dsr", received
    finally:
        server.shutdown()
        thread.join(5)


def test_reminders_reach_the_webhook_and_the_dpo_mailbox(
    api: Api, smtp: Inbox, webhook: tuple[str, list[dict[str, Any]]], org: str
) -> None:
    url, received = webhook
    settings = {"due_soon_days": 30, "reminder_webhook": url, "reminder_emails": ["dpo@ogres.example"]}
    assert api.call("PUT", "/requests/settings", json=settings)["reminder_webhook"] == url
    late = api.file(email="late.person@example.org", received_at=ago(40))["id"]
    soon = api.file(received_at=ago(20))["id"]
    sent = api.client.app.state.rights.remind(org, {"type": "cli", "id": "test"})  # type: ignore[attr-defined]
    assert (sent.overdue, sent.due_soon, sent.webhook, sent.emails) == (1, 1, True, 1)
    assert [r["id"] for r in received[0]["overdue"]] == [late]
    assert [r["id"] for r in received[0]["due_soon"]] == [soon]
    assert "late.person" not in json.dumps(received[0])
    text = body_of(smtp.to("dpo@ogres.example")[-1])
    assert late in text and soon in text and "late.person" not in text


def test_can_process_over_http(api: Api) -> None:
    api.file(type="objection", direct_marketing=True, subject_id="cust-77")
    answer = api.call("GET", "/can-process", Role.SERVICE, params={"subject": "cust-77", "purpose": "direct_marketing"})
    assert answer == {
        "subject": "cust-77",
        "purpose": "direct_marketing",
        "allowed": False,
        "blocked_by": ["direct_marketing"],
    }
    other = api.call("GET", "/can-process", Role.SERVICE, params={"subject": "cust-77", "purpose": "billing"})
    assert other["allowed"] is True
    blocks = api.call("GET", "/restrictions", params={"subject": "cust-77"})["blocks"]
    assert [(b["purpose"], b["kind"], b["active"]) for b in blocks] == [("direct_marketing", "direct_marketing", True)]
    api.call("POST", f"/restrictions/{blocks[0]['id']}/lift", json={"reason": "x"}, status=409)
    api.call("GET", "/can-process", Role.AUDITOR, 403, params={"subject": "cust-77", "purpose": "billing"})


@pytest.mark.usefixtures("cli")
def test_cli_lists_shows_and_tells_what_is_due(api: Api, org: str) -> None:
    runner = CliRunner()
    late = api.file(received_at=ago(40), type="erasure")["id"]
    listed = run(runner, "requests", "list", "--org", org)
    assert listed.exit_code == 0, listed.output
    assert late in listed.stdout and "erasure" in listed.stdout and "@" not in listed.stdout
    shown = run(runner, "requests", "show", late, "--org", org)
    assert shown.exit_code == 0, shown.output
    assert json.loads(shown.stdout)["history"][0]["action"] == "created"
    due = run(runner, "requests", "due", "--org", org)
    assert due.exit_code == 0 and "OVERDUE" in due.stdout and late in due.stdout
    missing = run(runner, "requests", "show", str(uuid.uuid4()), "--org", org)
    assert missing.exit_code == 1
