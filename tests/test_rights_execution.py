"""Requests run over the data map: access and portability packages (encrypted, linked, expiring),
erasure under legal holds with failure and retry, rectification, restriction; the DPIA event log.

Host databases are the shop and CRM of tests/datamap_samples.py, on SQLite, PostgreSQL and MariaDB.
Expected counts come from the sample rows: Ana (ana@example.org) has 1 customer row, 2 addresses,
2 orders (one found through her customer id, one guest order through its billing e-mail),
3 order items, 2 invoices (2024, held ten years; 2014, hold over) and 1 CRM ticket.
"""

from __future__ import annotations

import base64
import io
import zipfile
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import update
from typer.testing import CliRunner

from gardien.audit.schemas import EventFilter
from gardien.audit.service import Ledger
from gardien.core import service as core
from gardien.core.errors import Conflict, InvalidInput, Problem
from gardien.core.roles import Role
from gardien.core.runtime import Runtime
from gardien.datamap.service import DatamapService
from gardien.registers.service import RegistersService
from gardien.rights.execution import DatamapExecutor
from gardien.rights.models import PACKAGES
from gardien.rights.packages import PackageStore, sign_link
from gardien.rights.schemas import ExecutionState, RequestIn, SettingsIn, Status
from gardien.rights.service import RightsService
from tests.conftest import auth
from tests.datamap_samples import TODAY, Host, host_fixture, sqlite_host_fixture  # noqa: F401
from tests.test_cli import cli, run  # noqa: F401  (the CLI runner fixture)

DPO = {"type": "api_key", "id": "dpo-key", "display": "DPO"}
APP = {"type": "api_key", "id": "app-key", "display": "shop backend"}
ANA_ROWS = {
    "shop.customers": 1,
    "shop.addresses": 2,
    "shop.orders": 2,
    "shop.order_items": 3,
    "shop.invoices": 2,
    "crm.tickets": 1,
}


class Clock:
    def __init__(self) -> None:
        self.now = datetime(TODAY.year, TODAY.month, TODAY.day, 10, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now


class Setup:
    def __init__(self, runtime: Runtime, ledger: Ledger, org: str, *, background: bool = False) -> None:
        self.clock = Clock()
        self.org = org
        self.ledger = ledger
        self.rights = RightsService(runtime, ledger, clock=self.clock)
        self.maps = DatamapService(runtime, ledger, clock=self.clock)
        self.packages = PackageStore(runtime, ledger, clock=self.clock)
        self.executor = DatamapExecutor(self.rights, self.maps, self.packages, background=background)
        self.rights.executor = self.executor

    def file(self, **body: Any) -> str:
        body.setdefault("email", "ana@example.org")
        return self.rights.create(self.org, RequestIn.model_validate(body), APP, "service").id

    def run(self, **body: Any) -> str:
        request_id = self.file(**body)
        self.rights.verify_by_operator(self.org, request_id, "request from the customer's account", DPO)
        self.executor.wait(30)
        return request_id

    def events(self, module: str, action: str | None = None) -> list[dict[str, Any]]:
        page = self.ledger.list_events(
            self.org, EventFilter(module=module, action=action), cursor=None, limit=1000, actor=DPO
        )
        return page.events

    def close(self) -> None:
        self.executor.close()
        self.maps.close()


@pytest.fixture
def world(runtime: Runtime, ledger: Ledger, org: str) -> Any:
    made = Setup(runtime, ledger, org)
    yield made
    made.close()


def package_bytes(world: Setup, request_id: str) -> bytes:
    link = world.packages.link(world.org, request_id)
    _, body = world.packages.open(link.token)
    return b"".join(body)


def test_an_access_request_yields_an_encrypted_package_behind_an_expiring_link(
    world: Setup, host: Host, runtime: Runtime
) -> None:
    world.maps.register(world.org, "shop", host.map_yaml(), DPO)
    # The address typed in another case still finds Ana: the map is searched with both forms.
    request_id = world.run(type="access", email="Ana@Example.org")
    done = world.rights.get(world.org, request_id, reveal=False)
    assert done.status is Status.COMPLETED
    assert done.outcome is not None and done.outcome.summary == ANA_ROWS
    assert done.execution is not None and (done.execution.state, done.execution.attempts) == (ExecutionState.DONE, 1)
    package = done.outcome.package
    assert package is not None and package.kind == "access"
    assert package.expires_at == world.clock.now + timedelta(days=14)

    # At rest: neither her name nor her address is readable in the file.
    [stored] = (runtime.settings.rights_packages_dir / world.org).glob("*.gdnpkg")
    raw = stored.read_bytes()
    assert raw.startswith(b"GDNPKG1\n")
    for value in (b"Ana Peeters", b"ana@example.org", b"Rue Haute", b"data.json"):
        assert value not in raw

    archive = zipfile.ZipFile(io.BytesIO(package_bytes(world, request_id)))
    assert sorted(archive.namelist())[:2] == ["README.md", "crm.tickets.csv"]
    data = orjson.loads(archive.read("data.json"))
    assert data["counts"] == ANA_ROWS
    assert [c["name"] for c in data["tables"]["shop.customers"]] == ["Ana Peeters"]
    assert len(package_bytes(world, request_id)) == package.size

    downloaded = world.events("rights", "rights.package.downloaded")[0]
    assert downloaded["fields"] == {"request_id": request_id, "kind": "access", "size": package.size}
    # The ledger has counts, never values.
    text = orjson.dumps(world.events("rights") + world.events("datamap")).decode()
    for value in ("ana@example.org", "Ana Peeters", "Rue Haute"):
        assert value not in text

    # A link dies at its own expiry (72 hours by default); a new one can be made until the package expires.
    link = world.packages.link(world.org, request_id)
    assert link.expires_at == world.clock.now + timedelta(hours=72)
    world.clock.now += timedelta(hours=73)
    with pytest.raises(Problem) as caught:
        world.packages.open(link.token)
    assert (caught.value.status, caught.value.slug) == (410, "link-expired")
    assert zipfile.ZipFile(io.BytesIO(package_bytes(world, request_id))).namelist()
    late = sign_link(runtime.keyring, world.org, package.id, world.clock.now - timedelta(seconds=1))
    with pytest.raises(Problem) as gone:
        world.packages.open(late)
    assert gone.value.status == 410


def test_links_that_were_altered_are_refused_and_expired_packages_are_deleted(
    world: Setup, sqlite_host: Host, runtime: Runtime
) -> None:
    world.maps.register(world.org, "shop", sqlite_host.map_yaml(), DPO)
    request_id = world.run(type="access")
    token = world.packages.link(world.org, request_id).token
    payload, mac = token.split(".")
    forged_payload = orjson.loads(_unb64(payload))
    forged_payload["e"] += 10**6
    for bad in (
        "",
        "nonsense",
        f"{payload}.{mac[:-2]}AA",
        f"{_b64(orjson.dumps(forged_payload))}.{mac}",
        f"{payload}.{mac}.{mac}",
        "\u00e9.\u00e9",
    ):
        with pytest.raises(Problem) as caught:
            world.packages.open(bad)
        assert (caught.value.status, caught.value.slug) == (403, "link-invalid"), bad

    # A damaged file answers 410, not a broken download.
    [stored] = (runtime.settings.rights_packages_dir / world.org).glob("*.gdnpkg")
    raw = bytearray(stored.read_bytes())
    raw[-5] ^= 1
    stored.write_bytes(bytes(raw))
    with pytest.raises(Problem) as damaged:
        world.packages.open(token)
    assert (damaged.value.status, damaged.value.slug) == (410, "package-corrupt")

    world.clock.now += timedelta(days=14, seconds=1)
    assert world.packages.purge(world.org) == 1
    assert not stored.exists()
    with pytest.raises(Problem) as gone:
        world.packages.open(token)
    assert gone.value.status == 410
    [deleted] = world.events("rights", "rights.package.deleted")
    assert deleted["fields"]["reason"] == "expired"
    assert world.packages.purge(world.org) == 0


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def test_erasure_reports_the_legal_hold_and_tags_the_dpia_log(world: Setup, host: Host, runtime: Runtime) -> None:
    world.maps.register(world.org, "shop", host.map_yaml(), DPO)
    request_id = world.run(type="erasure")
    done = world.rights.get(world.org, request_id, reveal=False)
    assert done.status is Status.COMPLETED and done.outcome is not None
    [hold] = done.outcome.holds or []
    assert (hold.table, hold.rows, hold.until, hold.basis) == ("shop.invoices", 1, date(2034, 3, 1), "legal_obligation")
    assert done.outcome.erased is not None
    assert done.outcome.erased["shop.invoices"] == {"deleted": 1, "updated": 1, "held": 1}
    assert done.outcome.summary is not None and done.outcome.summary["shop.customers"] == 1
    assert {r.name for r in done.outcome.recipients or []} == {"Parcel Co", "Payments Ltd", "Helpdesk SaaS"}
    assert [c["id"] for c in host.rows("shop.customers")] == [2, 3]
    [kept] = [i for i in host.rows("shop.invoices") if i["id"] == 1000]
    assert (kept["customer_name"], kept["customer_id"]) == ("Ana Peeters", None)

    registers = RegistersService(runtime, world.ledger)
    since, until = datetime(2000, 1, 1, tzinfo=UTC), datetime(2100, 1, 1, tzinfo=UTC)
    [period] = registers.dpia_events(world.org, since, until, "all").periods
    counts = {e.event.value: e.count for e in period.events}
    assert (counts["DATA_DELETION"], counts["DATA_ACCESS"], counts["DATA_EXPORT"]) == (1, 0, 0)


def test_a_failed_erasure_stays_in_progress_with_its_error_and_a_retry_resumes_it(world: Setup, host: Host) -> None:
    world.maps.register(world.org, "shop", host.map_yaml(), DPO)
    with host.crm.begin() as conn:
        conn.execute(host.table("crm.ticket_locks").insert().values(ticket_id=7))
    request_id = world.run(type="erasure")
    failed = world.rights.get(world.org, request_id, reveal=False)
    assert failed.status is Status.IN_PROGRESS
    assert failed.execution is not None and failed.execution.state is ExecutionState.FAILED
    assert failed.execution.error is not None and "store 'crm'" in failed.execution.error
    steps = [h.action for h in world.rights.history(world.org, request_id).history]
    assert steps[-2:] == ["execution_started", "execution_failed"]
    assert [c["id"] for c in host.rows("shop.customers")] == [2, 3]  # the shop's store committed

    with host.crm.begin() as conn:
        conn.execute(host.table("crm.ticket_locks").delete())
    # Her e-mail address is gone from the shop: only the saved plan still reaches her ticket.
    retried = world.rights.execute(world.org, request_id, DPO)
    assert retried.status is Status.COMPLETED
    assert retried.execution is not None and retried.execution.attempts == 2
    assert [t["id"] for t in host.rows("crm.tickets")] == [8]
    assert retried.outcome is not None and retried.outcome.erased is not None
    assert retried.outcome.erased["crm.tickets"] == {"deleted": 1, "updated": 0, "held": 0}
    with pytest.raises(Conflict):
        world.rights.execute(world.org, request_id, DPO)


def test_rectification_is_checked_when_filed_and_applied_when_verified(world: Setup, host: Host) -> None:
    world.maps.register(world.org, "shop", host.map_yaml(), DPO)
    with pytest.raises(InvalidInput) as caught:
        world.file(type="rectification", changes={"postcode": "ABC", "nickname": "Nana", "name": "A" * 51})
    assert {e["field"] for e in caught.value.extra["errors"]} == {"changes.nickname"}
    with pytest.raises(InvalidInput) as invalid:
        world.file(type="rectification", changes={"postcode": "ABC", "name": "A" * 51})
    assert {e["field"] for e in invalid.value.extra["errors"]} == {"changes.postcode", "changes.name"}

    request_id = world.run(type="rectification", changes={"name": "Ana Janssens", "shop.addresses.postcode": "1050"})
    done = world.rights.get(world.org, request_id, reveal=False)
    assert done.status is Status.COMPLETED
    assert done.outcome is not None and done.outcome.summary == {"shop.customers": 1, "shop.addresses": 2}
    assert {r.name for r in done.outcome.recipients or []} == {"Parcel Co"}
    assert {c["id"]: c["name"] for c in host.rows("shop.customers")}[1] == "Ana Janssens"
    assert {a["postcode"] for a in host.rows("shop.addresses") if a["customer_id"] == 1} == {"1050"}


def test_portability_holds_only_what_the_person_provided(world: Setup, sqlite_host: Host) -> None:
    document = sqlite_host.map_yaml().replace(
        "    shop.addresses:\n      fields:\n",
        "    shop.addresses:\n      provided: false\n      fields:\n",
    )
    world.maps.register(world.org, "shop", document, DPO)
    request_id = world.run(type="portability")
    done = world.rights.get(world.org, request_id, reveal=False)
    assert done.outcome is not None and done.outcome.package is not None
    assert done.outcome.package.kind == "portability"
    archive = zipfile.ZipFile(io.BytesIO(package_bytes(world, request_id)))
    data = orjson.loads(archive.read("data.json"))
    assert data["format"] == "gardien-portability/1"
    tables = data["tables"]
    # Addresses are marked not provided; order items' product is system data, their message is hers.
    assert "shop.addresses" not in tables
    assert list(tables["shop.customers"][0]) == ["id", "email", "name", "phone", "birth_date"]
    assert sorted(tables["shop.invoices"][0]) == ["amount", "customer_id", "customer_name", "id"]
    assert sorted(tables["shop.order_items"][0]) == ["gift_message", "line_no", "order_id"]
    header = archive.read("shop.customers.csv").decode().splitlines()[0]
    assert header == "id,email,name,phone,birth_date"
    assert "Art. 20" in archive.read("README.md").decode()
    [exported] = world.events("datamap", "datamap.portability")
    assert exported["fields"]["dpia_event"] == "DATA_EXPORT"


def test_restriction_completes_with_its_recipients_and_an_objection_waits_for_the_dpo(
    world: Setup, sqlite_host: Host
) -> None:
    world.maps.register(world.org, "shop", sqlite_host.map_yaml(), DPO)
    restricted = world.rights.get(world.org, world.run(type="restriction"), reveal=False)
    assert restricted.status is Status.COMPLETED
    assert restricted.outcome is not None and len(restricted.outcome.recipients or []) == 3
    assert not world.rights.can_process(world.org, "ana@example.org", "analytics")
    objection = world.rights.get(world.org, world.run(type="objection", purposes=["analytics"]), reveal=False)
    assert objection.status is Status.IN_PROGRESS and objection.execution is None


def test_requests_run_in_the_background_and_several_maps_need_a_choice(
    runtime: Runtime, ledger: Ledger, org: str, sqlite_host: Host
) -> None:
    world = Setup(runtime, ledger, org, background=True)
    try:
        world.maps.register(org, "shop", sqlite_host.map_yaml(), DPO)
        assert world.rights.get(org, world.run(type="access"), reveal=False).status is Status.COMPLETED
        world.maps.register(org, "other", sqlite_host.map_yaml(), DPO)
        request_id = world.run(type="access")
        waiting = world.rights.get(org, request_id, reveal=False)
        assert waiting.status is Status.IN_PROGRESS
        [failure] = [h for h in world.rights.history(org, request_id).history if h.action == "execution_failed"]
        assert failure.reason is not None and "datamap_key" in failure.reason
        world.rights.put_settings(org, SettingsIn(datamap_key="other"), DPO)
        world.rights.execute(org, request_id, DPO)
        world.executor.wait(30)
        assert world.rights.get(org, request_id, reveal=False).status is Status.COMPLETED
    finally:
        world.close()


def test_without_a_map_requests_are_completed_by_hand(world: Setup, runtime: Runtime) -> None:
    request_id = world.run(type="access")
    assert world.rights.get(world.org, request_id, reveal=False).execution is None
    with pytest.raises(Conflict):
        world.rights.execute(world.org, request_id, DPO)
    with runtime.writes.begin() as session:
        other = core.create_org(session, slug=f"x-{request_id[-12:]}", name="Other").id
    with pytest.raises(Problem) as caught:
        world.rights.execute(other, request_id, DPO)
    assert caught.value.status == 404


def test_package_directory_is_private(world: Setup, sqlite_host: Host, runtime: Runtime) -> None:
    world.maps.register(world.org, "shop", sqlite_host.map_yaml(), DPO)
    world.run(type="access")
    [stored] = (runtime.settings.rights_packages_dir / world.org).glob("*.gdnpkg")
    assert stored.stat().st_mode & 0o077 == 0
    assert Path(stored.parent).stat().st_mode & 0o077 == 0


def test_over_http_a_dpo_gets_the_link_and_a_bad_link_is_a_clear_403_or_410(
    client: TestClient, tokens: dict[Role, str], sqlite_host: Host
) -> None:
    dpo, app = auth(tokens[Role.DPO]), auth(tokens[Role.SERVICE])
    assert (
        client.put("/api/v1/datamaps/shop", json={"document": sqlite_host.map_yaml()}, headers=dpo).status_code == 200
    )
    filed = client.post("/api/v1/requests", json={"type": "access", "email": "ana@example.org"}, headers=app)
    request_id = filed.json()["id"]
    verified = client.post(f"/api/v1/requests/{request_id}/identity/operator", json={"reason": "desk"}, headers=dpo)
    assert verified.status_code == 200, verified.text
    client.app.state.rights.executor.wait(30)  # type: ignore[attr-defined]
    done = client.get(f"/api/v1/requests/{request_id}", headers=app).json()
    assert done["status"] == "completed" and done["execution"]["state"] == "done"
    assert done["outcome"]["summary"] == ANA_ROWS
    link = client.post(f"/api/v1/requests/{request_id}/package/link", headers=app)
    assert link.status_code == 200, link.text
    download = client.get(link.json()["path"])
    assert download.status_code == 200 and download.headers["content-type"] == "application/zip"
    assert download.headers["cache-control"] == "no-store"
    assert "data.json" in zipfile.ZipFile(io.BytesIO(download.content)).namelist()
    token = link.json()["token"]
    for bad, status in ((token[:-3] + "abc", 403), ("x" * 999, 403), ("a.b", 403), (token + "%00", 403)):
        answer = client.get(f"/privacy/download/{bad}")
        assert answer.status_code == status, (bad, answer.text)
        assert answer.headers["content-type"] == "application/problem+json"
    assert client.get(f"/privacy/download/{'y' * 2000}").status_code == 422
    again = client.post(f"/api/v1/requests/{request_id}/execute", headers=dpo)
    assert again.status_code == 409 and "completed" in again.json()["detail"]


@pytest.mark.usefixtures("cli")
def test_the_command_line_retries_a_failed_request_and_purges_expired_packages(
    world: Setup, sqlite_host: Host, runtime: Runtime
) -> None:
    runner = CliRunner()
    world.maps.register(world.org, "shop", sqlite_host.map_yaml(), DPO)
    with sqlite_host.crm.begin() as conn:
        conn.execute(sqlite_host.table("crm.ticket_locks").insert().values(ticket_id=7))
    request_id = world.run(type="erasure")
    failed = run(runner, "requests", "execute", request_id, "--org", world.org)
    assert failed.exit_code == 1 and "attempt 2 failed" in failed.output and "store 'crm'" in failed.output
    with sqlite_host.crm.begin() as conn:
        conn.execute(sqlite_host.table("crm.ticket_locks").delete())
    done = run(runner, "requests", "execute", request_id, "--org", world.org)
    assert done.exit_code == 0, done.output
    assert f"{request_id}  erasure       completed" in done.output
    assert run(runner, "requests", "execute", request_id, "--org", world.org).exit_code == 1

    access = world.run(type="access")
    package = world.rights.get(world.org, access, reveal=False).outcome.package  # type: ignore[union-attr]
    assert package is not None
    assert run(runner, "requests", "purge-packages", "--org", world.org).output == "0 expired packages deleted\n"
    with runtime.engine.begin() as conn:
        conn.execute(update(PACKAGES).where(PACKAGES.c.id == package.id).values(expires_at=world.clock.now))
    assert run(runner, "requests", "purge-packages", "--org", world.org).output == "1 expired packages deleted\n"
