"""Fixtures: every test that touches storage runs on SQLite and on PostgreSQL.

PostgreSQL comes from GARDIEN_TEST_POSTGRES_URL (default: the local server, trust auth); each run
creates its own database and drops it at the end. Without a reachable server the PostgreSQL half
is skipped, except under CI=true, where that is a failure.
"""

from __future__ import annotations

import asyncio
import os
import socket
import threading
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any

import psycopg
import pytest
import uvicorn
from fastapi.testclient import TestClient
from playwright.sync_api import Browser, BrowserContext, Playwright, sync_playwright
from sqlalchemy import Connection
from sqlalchemy.engine import make_url

from gardien.app import create_app
from gardien.audit.schemas import VerifyReport
from gardien.audit.sealing import PreparedEvent
from gardien.audit.service import Ledger
from gardien.audit.signing import trusted_verifiers
from gardien.audit.verify import verify_org
from gardien.core import service
from gardien.core.roles import Role
from gardien.core.runtime import Runtime
from gardien.core.settings import Settings
from gardien.migrations import upgrade

POSTGRES_URL = os.environ.get("GARDIEN_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def _create_pg_database() -> tuple[str, str]:
    admin = make_url(POSTGRES_URL)
    name = f"gardien_test_{uuid.uuid4().hex[:10]}"
    try:
        with psycopg.connect(
            admin.set(drivername="postgresql").render_as_string(False), autocommit=True, connect_timeout=5
        ) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
    except psycopg.OperationalError as exc:
        message = f"PostgreSQL at {POSTGRES_URL} is unreachable: {exc}"
        if IN_CI:
            pytest.fail(f"{message} (CI=true: the PostgreSQL suite is mandatory)", pytrace=False)
        pytest.skip(message)
    return name, admin.set(database=name).render_as_string(False)


def _drop_pg_database(name: str) -> None:
    admin = make_url(POSTGRES_URL).set(drivername="postgresql").render_as_string(False)
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session", params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path_factory.mktemp('db') / 'gardien.db'}"
        return
    name, url = _create_pg_database()
    try:
        yield url
    finally:
        _drop_pg_database(name)


@pytest.fixture(scope="session")
def settings(database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Settings:
    base = tmp_path_factory.mktemp("var")
    return Settings(
        database_url=database_url,
        keys_dir=base / "keys",
        exports_dir=base / "exports",
        archive_dir=base / "archive",
        rights_packages_dir=base / "packages",
        instance_name="gardien.test",
        checkpoint_every_seconds=0.2,
    )


@pytest.fixture(scope="session")
def runtime(settings: Settings) -> Iterator[Runtime]:
    rt = Runtime.start(settings)
    upgrade(rt.engine)
    Ledger(rt)  # adopts the new keyring while the ledger is still empty
    yield rt
    rt.close()


@pytest.fixture
def org(runtime: Runtime) -> str:
    """A fresh organisation: tests share the database but never each other's data."""
    with runtime.writes.begin() as session:
        return service.create_org(session, slug=f"t-{uuid.uuid4().hex[:12]}", name="Test org").id


@pytest.fixture
def ledger(runtime: Runtime) -> Ledger:
    return Ledger(runtime)


def make_key(runtime: Runtime, org_id: str, role: Role) -> str:
    with runtime.writes.begin() as session:
        return service.create_key(session, org_id=org_id, name=f"test {role.value}", role=role)[1]


@pytest.fixture
def tokens(runtime: Runtime, org: str) -> dict[Role, str]:
    """One API key per role for the test's organisation."""
    return {role: make_key(runtime, org, role) for role in Role}


@pytest.fixture
def client(runtime: Runtime) -> Iterator[TestClient]:
    """The real application in-process, with its lifespan (group commit, checkpoint timer)."""
    with TestClient(create_app(runtime=runtime)) as test_client:
        yield test_client


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def sample_event(**overrides: object) -> dict[str, object]:
    event: dict[str, object] = {
        "module": "bookings",
        "action": "artist.update",
        "crud": "update",
        "actor": {"type": "user", "id": "u-42", "display": "Émilie Dupont"},
        "target": {"type": "artist", "id": "a-9", "display": "Les Ogres"},
        "source": {"ip": "203.0.113.7", "user_agent": "Mozilla/5.0"},
        "changes": {"before": {"fee": 1200}, "after": {"fee": 1500}},
        "data_categories": ["user.financial"],
        "legal_basis": "contract",
    }
    event.update(overrides)
    return event


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def serve(app: Any) -> Iterator[str]:
    """Serve `app` with uvicorn on a free loopback port for the block; yields its base URL."""
    port = _free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if time.monotonic() > deadline:
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)


@contextmanager
def serving(runtime: Runtime) -> Iterator[str]:
    """The application on `runtime`, served by uvicorn for the block; yields its base URL."""
    with serve(create_app(runtime=runtime)) as base:
        yield base


@pytest.fixture
def live_server(runtime: Runtime) -> Iterator[str]:
    with serving(runtime) as base:
        yield base


def verify_directly(runtime: Runtime, org: str, *, workers: int, chunk: int) -> VerifyReport:
    """verify_org with the process count and chunk size forced, as Ledger.verify would call it."""
    keyring = runtime.keyring
    with runtime.engine.connect() as conn:
        return verify_org(
            conn,
            org,
            instance_name=keyring.instance_name,
            hmac_keys=keyring.hmac_keys(),
            verifiers=trusted_verifiers(keyring),
            workers=workers,
            chunk=chunk,
            keyring_complete=True,
        )


@asynccontextmanager
async def one_writer_group(ledger: Ledger, org: str) -> AsyncIterator[list[Awaitable[Any]]]:
    """Collects the ledger writes submitted in the block into one writer group.

    A first work holds the (started) writer busy; the awaitables put in the yielded list are
    submitted meanwhile, queue up behind it, and are released together at the end of the block.
    """
    gate = threading.Event()

    def hold(conn: Connection) -> tuple[None, list[PreparedEvent]]:
        gate.wait(10)
        return None, []

    held = asyncio.ensure_future(ledger.transact_async(org, hold))
    await asyncio.sleep(0.2)
    submitted: list[Awaitable[Any]] = []
    try:
        yield submitted
        waiting = asyncio.gather(*submitted, return_exceptions=True)
        await asyncio.sleep(0.2)
    finally:
        gate.set()
        await held
    submitted[:] = await waiting


# Headless Chromium for the browser tests: Debian's `chromium` driven by Playwright (never
# `playwright install`, which downloads a browser build).

CHROMIUM = Path("/usr/bin/chromium")
# Flags the machine's closed network needs: no background calls to Google's hosts.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture(scope="module")
def playwright() -> Iterator[Playwright]:
    if not CHROMIUM.exists():
        message = f"{CHROMIUM} is missing: `make test` installs Debian's chromium when run as root"
        if IN_CI:
            pytest.fail(f"{message} (CI=true: the browser tests are mandatory)", pytrace=False)
        pytest.skip(message)
    with sync_playwright() as driver:
        yield driver


@pytest.fixture(scope="module")
def browser(playwright: Playwright) -> Iterator[Browser]:
    launched = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
    yield launched
    launched.close()


@pytest.fixture
def new_context(browser: Browser) -> Iterator[Callable[..., BrowserContext]]:
    contexts: list[BrowserContext] = []

    def make(**options: Any) -> BrowserContext:
        options.setdefault("viewport", {"width": 1280, "height": 800})
        options.setdefault("locale", "en-GB")
        context = browser.new_context(**options)
        context.set_default_timeout(10_000)
        contexts.append(context)
        return context

    yield make
    for context in contexts:
        context.close()
