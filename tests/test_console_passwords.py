"""Console users who sign in with a password: argon2id hashes, the CLI that creates them, the
generic error, the lock after repeated failures, rehashing, the ledger, and the same roles as keys."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from argon2 import PasswordHasher
from argon2.exceptions import VerifyMismatchError
from fastapi.testclient import TestClient
from sqlalchemy import delete, select
from typer.testing import CliRunner

from gardien.app import create_app
from gardien.cli import app as cli_app
from gardien.core.errors import Problem
from gardien.core.models import ConsoleUser
from gardien.core.roles import Role
from gardien.core.runtime import Runtime
from gardien.core.users import create_user
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
    make_user,
    make_world,
    sign_in_with_password,
)
from tests.test_cli import cli  # noqa: F401  (the CLI runner fixture, pointed at the test database)

PERSON_ROLES = [ADMIN, DPO, AUDITOR, OPERATOR]
# docs/console.md: five failures in a row lock the address for fifteen minutes.
LOCK_AFTER = 5
LOCK_MINUTES = 15
GENERIC = "This e-mail address is unknown or the password is wrong."


@pytest.fixture
def app_client(runtime: Runtime) -> Iterator[TestClient]:
    with TestClient(create_app(runtime=runtime), base_url="https://testserver") as client:
        yield client


@pytest.fixture
def world(runtime: Runtime, app_client: TestClient) -> World:
    return make_world(runtime, app_client)


def _at(client: TestClient, moment: datetime) -> None:
    console_of(client.app).state.clock = lambda: moment  # type: ignore[arg-type]


def _stored_hash(runtime: Runtime, email: str) -> str:
    with runtime.sessions() as session:
        found = session.scalar(select(ConsoleUser.password_hash).where(ConsoleUser.email == email))
    assert found is not None
    return found


def _console_events(client: TestClient, world: World) -> list[dict[str, object]]:
    response = client.get("/api/v1/audit/events", params={"module": "console"}, headers=auth(world.tokens[ADMIN]))
    assert response.status_code == 200, response.text
    events: list[dict[str, object]] = response.json()["events"]
    return events


# Signing in --------------------------------------------------------------------------------------


def test_a_user_signs_in_with_a_password_and_the_ledger_names_them(app_client: TestClient, world: World) -> None:
    email, password = make_user(app_client.app.state.runtime, world.org, DPO)  # type: ignore[attr-defined]
    response = sign_in_with_password(app_client, email.upper(), password, next_="/console/requests")
    assert response.status_code == 303, response.text
    assert response.headers["location"] == "/console/requests"
    cookie = app_client.cookies[SESSION_COOKIE]
    assert password not in cookie and email not in cookie
    assert app_client.get("/console/registers/activities/new").status_code == 200
    page = app_client.get("/console/settings")
    assert email in page.text
    out = app_client.post("/console/sign-out", data={"csrf": csrf_of(page.text)}, follow_redirects=False)
    assert out.status_code == 303
    events = _console_events(app_client, world)
    assert [e["action"] for e in events] == ["console.sign_in", "console.sign_out"]
    assert events[0]["actor"]["type"] == "user" and events[0]["actor"]["display"] == email  # type: ignore[index]
    assert events[0]["fields"] == {"method": "password"}
    assert password not in str(events)


def test_the_password_is_stored_as_an_argon2id_hash(runtime: Runtime, world: World) -> None:
    email, password = make_user(runtime, world.org, AUDITOR)
    stored = _stored_hash(runtime, email)
    assert stored.startswith("$argon2id$") and password not in stored
    assert PasswordHasher().verify(stored, password)
    with pytest.raises(VerifyMismatchError):
        PasswordHasher().verify(stored, password + "!")


def test_unknown_address_and_wrong_password_get_the_same_answer(app_client: TestClient, world: World) -> None:
    email, password = make_user(app_client.app.state.runtime, world.org, DPO)  # type: ignore[attr-defined]
    wrong = sign_in_with_password(app_client, email, password + "x")
    unknown = sign_in_with_password(app_client, f"nobody-{uuid.uuid4().hex[:6]}@example.org", password)
    assert wrong.status_code == unknown.status_code == 401
    for response in (wrong, unknown):
        assert GENERIC in response.text
        assert f"{SESSION_COOKIE}=" not in response.headers.get("set-cookie", "")
        assert password not in response.text
    assert app_client.get("/console/", follow_redirects=False).status_code == 303
    failed = _console_events(app_client, world)
    assert [(e["action"], e["outcome"], e["reason"]) for e in failed] == [
        ("console.sign_in", "failure", "wrong password")
    ]
    assert failed[0]["target"]["display"] == email  # type: ignore[index]


def test_the_password_form_needs_its_csrf_token(app_client: TestClient, world: World) -> None:
    email, password = make_user(app_client.app.state.runtime, world.org, DPO)  # type: ignore[attr-defined]
    app_client.get("/console/sign-in")
    response = app_client.post(
        "/console/sign-in/password",
        data={"csrf": "forged", "email": email, "password": password},
        follow_redirects=False,
    )
    assert response.status_code == 403
    assert f"{SESSION_COOKIE}=" not in response.headers.get("set-cookie", "")


def test_five_failures_lock_the_address_for_fifteen_minutes_known_or_not(app_client: TestClient, world: World) -> None:
    runtime: Runtime = app_client.app.state.runtime  # type: ignore[attr-defined]
    email, password = make_user(runtime, world.org, DPO)
    nobody = f"nobody-{uuid.uuid4().hex[:6]}@example.org"
    start = datetime.now(UTC).replace(microsecond=0)
    _at(app_client, start)
    for address in (email, nobody):
        for attempt in range(1, LOCK_AFTER):
            response = sign_in_with_password(app_client, address, "not the password")
            assert response.status_code == 401, (address, attempt)
        locked = sign_in_with_password(app_client, address, "not the password")
        assert locked.status_code == 429
        until = (start + timedelta(minutes=LOCK_MINUTES)).strftime("%H:%M UTC")
        assert f"it is locked until {until}" in locked.text
    # Locked: even the right password is refused, with the same message as for the unknown address.
    refused = sign_in_with_password(app_client, email, password)
    assert refused.status_code == 429 and "locked until" in refused.text
    assert f"{SESSION_COOKIE}=" not in refused.headers.get("set-cookie", "")
    _at(app_client, start + timedelta(minutes=LOCK_MINUTES - 1))
    assert sign_in_with_password(app_client, email, password).status_code == 429
    _at(app_client, start + timedelta(minutes=LOCK_MINUTES))
    assert sign_in_with_password(app_client, email, password).status_code == 303
    reasons = [e["reason"] for e in _console_events(app_client, world) if e["outcome"] == "failure"]
    assert reasons == ["wrong password"] * (LOCK_AFTER - 1) + ["locked"] * 3


def test_a_success_clears_the_count_of_failures(app_client: TestClient, world: World) -> None:
    email, password = make_user(app_client.app.state.runtime, world.org, DPO)  # type: ignore[attr-defined]
    for _ in range(LOCK_AFTER - 1):
        assert sign_in_with_password(app_client, email, "not the password").status_code == 401
    assert sign_in_with_password(app_client, email, password).status_code == 303
    app_client.cookies.clear()
    for _ in range(LOCK_AFTER - 1):
        assert sign_in_with_password(app_client, email, "not the password").status_code == 401
    assert sign_in_with_password(app_client, email, password).status_code == 303


def test_a_hash_of_other_parameters_is_remade_at_sign_in(app_client: TestClient, world: World) -> None:
    runtime: Runtime = app_client.app.state.runtime  # type: ignore[attr-defined]
    email, password = f"old-{uuid.uuid4().hex[:8]}@example.org", "an older password hash"
    cheap = runtime.settings.model_copy(update={"console_password_time_cost": 1, "console_password_memory_kib": 8192})
    with runtime.writes.begin() as session:
        create_user(session, cheap, org_ref=world.org, email=email, role=AUDITOR, password=password)
    assert "m=8192,t=1" in _stored_hash(runtime, email)
    assert sign_in_with_password(app_client, email, password).status_code == 303
    remade = _stored_hash(runtime, email)
    assert "m=65536,t=3,p=4" in remade
    assert PasswordHasher().verify(remade, password)
    sign_in = _console_events(app_client, world)[-1]
    assert sign_in["fields"] == {"method": "password", "rehashed": True}


def test_removing_a_user_ends_their_sessions(app_client: TestClient, world: World) -> None:
    runtime: Runtime = app_client.app.state.runtime  # type: ignore[attr-defined]
    email, password = make_user(runtime, world.org, ADMIN)
    assert sign_in_with_password(app_client, email, password).status_code == 303
    assert app_client.get("/console/", follow_redirects=False).status_code == 200
    with runtime.writes.begin() as session:
        session.execute(delete(ConsoleUser).where(ConsoleUser.email == email))
    assert app_client.get("/console/", follow_redirects=False).status_code == 303


@pytest.mark.parametrize("role", PERSON_ROLES, ids=lambda r: r.value)
def test_a_user_opens_the_pages_of_their_role_and_no_other(app_client: TestClient, world: World, role: Role) -> None:
    email, password = make_user(app_client.app.state.runtime, world.org, role)  # type: ignore[attr-defined]
    assert sign_in_with_password(app_client, email, password).status_code == 303
    for path, allowed in {**PAGES, **FILES}.items():
        response = app_client.get(world.fill(path), follow_redirects=False)
        expected = 200 if role in allowed else 403
        assert response.status_code == expected, f"{role.value} {path}: {response.status_code}"


# Creating users ----------------------------------------------------------------------------------


def test_no_user_holds_the_service_role_nor_a_short_password(runtime: Runtime, world: World) -> None:
    with runtime.writes.begin() as session, pytest.raises(Problem, match="service role"):
        create_user(
            session, runtime.settings, org_ref=world.org, email="app@example.org", role=SERVICE, password="x" * 20
        )
    # CNIL deliberation 2022-100: twelve characters at the least.
    with runtime.writes.begin() as session, pytest.raises(Problem, match="at least 12 characters"):
        create_user(session, runtime.settings, org_ref=world.org, email="a@example.org", role=DPO, password="x" * 11)
    with runtime.writes.begin() as session:
        twelve = "x" * 12
        create_user(session, runtime.settings, org_ref=world.org, email="twelve@example.org", role=DPO, password=twelve)
    with runtime.writes.begin() as session, pytest.raises(Problem, match="already exists"):
        create_user(
            session, runtime.settings, org_ref=world.org, email="Twelve@Example.org", role=DPO, password="y" * 12
        )


@pytest.mark.usefixtures("cli")
def test_the_cli_creates_a_user_with_a_password_from_stdin_or_the_prompt(app_client: TestClient, world: World) -> None:
    runner = CliRunner()
    email = f"cli-{uuid.uuid4().hex[:8]}@example.org"
    created = runner.invoke(
        cli_app,
        ["admin", "create-user", world.org, email, "--role", "auditor", "--password-stdin"],
        input="a password from stdin\n",
    )
    assert created.exit_code == 0, created.output
    assert created.stdout.strip().endswith(f"\t{email}\tauditor")
    assert "a password from stdin" not in created.output
    assert sign_in_with_password(app_client, email, "a password from stdin").status_code == 303
    prompted_email = f"cli-{uuid.uuid4().hex[:8]}@example.org"
    prompted = runner.invoke(
        cli_app,
        ["admin", "create-user", world.org, prompted_email, "--role", "operator"],
        input="a typed password here\na typed password here\n",
    )
    assert prompted.exit_code == 0, prompted.output
    assert "a typed password here" not in prompted.output
    app_client.cookies.clear()
    assert sign_in_with_password(app_client, prompted_email, "a typed password here").status_code == 303
    events = app_client.get(
        "/api/v1/audit/events", params={"action": "console_user.create"}, headers=auth(world.tokens[ADMIN])
    ).json()["events"]
    assert sorted(e["target"]["display"] for e in events) == sorted([email, prompted_email])


@pytest.mark.usefixtures("cli")
def test_the_cli_takes_no_password_argument_and_refuses_bad_input(world: World) -> None:
    runner = CliRunner()
    as_argument = runner.invoke(
        cli_app, ["admin", "create-user", world.org, "x@example.org", "--role", "dpo", "--password", "visible in ps"]
    )
    assert as_argument.exit_code == 2
    service = runner.invoke(
        cli_app,
        ["admin", "create-user", world.org, "svc@example.org", "--role", "service", "--password-stdin"],
        input="long enough password\n",
    )
    assert service.exit_code == 1 and "may not hold the service role" in service.stderr
    short = runner.invoke(
        cli_app,
        ["admin", "create-user", world.org, "short@example.org", "--role", "dpo", "--password-stdin"],
        input="short\n",
    )
    assert short.exit_code == 1 and "at least 12 characters" in short.stderr
    unknown = runner.invoke(
        cli_app,
        ["admin", "create-user", "no-such-org", "a@example.org", "--role", "dpo", "--password-stdin"],
        input="long enough password\n",
    )
    assert unknown.exit_code == 1 and "does not exist" in unknown.stderr
