"""The SDK's data-subject request methods, sync and async, against a real server on SQLite and
PostgreSQL, with a real SMTP server and a host database the requests run over."""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Iterator
from typing import Any

import pytest

from gardien.app import create_app
from gardien.client.sdk import AsyncGardienClient, GardienClient, GardienError
from gardien.core.roles import Role
from gardien.core.runtime import Runtime
from gardien.rights.mail import Mailer
from tests.conftest import serve
from tests.datamap_samples import Host, sqlite_host_fixture  # noqa: F401
from tests.smtp_server import Inbox, body_of, smtp_fixture  # noqa: F401

DPO = {"type": "api_key", "id": "dpo-key", "display": "DPO"}


@pytest.fixture
def server(runtime: Runtime, smtp: Inbox, org: str, sqlite_host: Host) -> Iterator[str]:
    app = create_app(runtime=runtime)
    app.state.rights.mailer = Mailer(smtp.settings(runtime.settings))
    app.state.datamaps.register(org, "shop", sqlite_host.map_yaml(), DPO)
    with serve(app) as url:
        yield url


def code_in(smtp: Inbox, address: str) -> str:
    found = re.search(r"\b(\d{6})\b", body_of(smtp.to(address)[-1]))
    assert found is not None
    return found.group(1)


def until_completed(read: Any) -> dict[str, Any]:
    deadline = time.monotonic() + 20
    while (request := read())["status"] != "completed":
        assert time.monotonic() < deadline, request
        time.sleep(0.1)
    result: dict[str, Any] = request
    return result


def test_a_host_application_files_follows_and_links_with_the_sync_client(
    server: str, tokens: dict[Role, str], smtp: Inbox
) -> None:
    with GardienClient(server, tokens[Role.SERVICE], retries=0) as app:
        filed = app.create_request("access", "ana@example.org", locale="nl", subject_id="cust-1")
        assert (filed["status"], filed["locale"]) == ("received", "nl")
        assert app.get_request(filed["id"])["email"] == "a***@example.org"
        sent = app.send_identity_code(filed["id"])
        assert sent["sent_to"] == "a***@example.org"
        with pytest.raises(GardienError) as wrong:
            app.verify_identity_code(filed["id"], "000000" if code_in(smtp, "ana@example.org") != "000000" else "1")
        assert wrong.value.status == 422
        app.verify_identity_code(filed["id"], code_in(smtp, "ana@example.org"))
        done = until_completed(lambda: app.get_request(filed["id"]))
        assert done["outcome"]["summary"]["shop.customers"] == 1
        link = app.package_link(done["id"])
        assert link["path"].startswith("/privacy/download/") and link["package"]["kind"] == "access"

        objection = app.create_request("objection", "bob@example.org", direct_marketing=True)
        assert app.can_process("bob@example.org", "direct_marketing") is False
        assert app.can_process("bob@example.org", "billing") is True
        cancelled = app.cancel_request(objection["id"], "withdrawn by the person")
        assert cancelled["status"] == "cancelled"
        with pytest.raises(GardienError) as refused:
            list(app.requests())
        assert refused.value.status == 403  # listing is for the people who run the queue
    with GardienClient(server, tokens[Role.DPO], retries=0) as dpo:
        listed = list(dpo.requests(page_size=1, type="access"))
        assert [r["id"] for r in listed] == [filed["id"]]
        assert [r["type"] for r in dpo.requests(status="cancelled")] == ["objection"]


def test_the_async_client_has_the_same_methods(server: str, tokens: dict[Role, str], smtp: Inbox) -> None:
    async def scenario() -> None:
        async with AsyncGardienClient(server, tokens[Role.SERVICE], retries=0) as app:
            filed = await app.create_request("rectification", "ana@example.org", changes={"name": "Ana Janssens"})
            await app.send_identity_code(filed["id"])
            await app.verify_identity_code(filed["id"], code_in(smtp, "ana@example.org"))
            deadline = time.monotonic() + 20
            while (request := await app.get_request(filed["id"]))["status"] != "completed":
                assert time.monotonic() < deadline, request
                await asyncio.sleep(0.1)
            assert request["outcome"]["summary"] == {"shop.customers": 1}
            with pytest.raises(GardienError) as invalid:
                await app.create_request("rectification", "ana@example.org", changes={"postcode": "ABC"})
            assert invalid.value.status == 422 and invalid.value.fields == ["changes.postcode"]
            assert await app.can_process("ana@example.org", "analytics") is True
            with pytest.raises(GardienError):
                await app.package_link(filed["id"])  # a rectification has no package: 404
        async with AsyncGardienClient(server, tokens[Role.AUDITOR], retries=0) as auditor:
            assert [r["id"] async for r in auditor.requests(type="rectification")] == [filed["id"]]

    asyncio.run(scenario())
