"""The fast lane for single appends serves valid events itself and replays everything else."""

from __future__ import annotations

import asyncio

import pytest
from fastapi.testclient import TestClient

from gardien.audit.service import Ledger
from gardien.core.errors import Problem
from gardien.core.roles import Role
from gardien.core.runtime import Runtime
from tests.conftest import auth, sample_event

URL = "/api/v1/audit/events"


def test_valid_events_take_the_fast_lane_and_match_the_regular_route(
    client: TestClient, tokens: dict[Role, str]
) -> None:
    counters = client.app.state.fast_routes[URL].counters  # type: ignore[attr-defined]
    before = dict(counters)
    fast = client.post(URL, json=sample_event(), headers=auth(tokens[Role.SERVICE]))
    assert fast.status_code == 201, fast.text
    assert counters["served"] == before["served"] + 1
    # The batch route never takes the fast lane: the stored events must not differ but for ids and times.
    batch = client.post(f"{URL}/batch", json={"events": [sample_event()]}, headers=auth(tokens[Role.SERVICE]))
    assert batch.status_code == 201
    reader = auth(tokens[Role.AUDITOR])
    one = client.get(f"{URL}/{fast.json()['id']}", headers=reader).json()
    two = client.get(f"{URL}/{batch.json()['receipts'][0]['id']}", headers=reader).json()
    varying = {"id", "seq", "recorded_at", "occurred_at"}
    assert {k: v for k, v in one.items() if k not in varying} == {k: v for k, v in two.items() if k not in varying}


def test_everything_else_is_replayed_to_the_regular_route(client: TestClient, tokens: dict[Role, str]) -> None:
    counters = client.app.state.fast_routes[URL].counters  # type: ignore[attr-defined]
    before = dict(counters)
    invalid = client.post(URL, json=sample_event(crud="erase"), headers=auth(tokens[Role.SERVICE]))
    assert invalid.status_code == 422
    assert invalid.json()["errors"][0]["field"] == "crud"
    assert client.post(URL, json=sample_event(), headers=auth(tokens[Role.AUDITOR])).status_code == 403
    assert client.post(URL, json=sample_event()).status_code == 401
    not_json = client.post(URL, content=b"{}", headers={**auth(tokens[Role.SERVICE]), "content-type": "text/plain"})
    assert not_json.status_code == 422
    assert counters["replayed"] == before["replayed"] + 4
    assert counters["served"] == before["served"]


def test_an_append_after_shutdown_is_a_503_not_a_crash(runtime: Runtime, org: str) -> None:
    ledger = Ledger(runtime)
    prepared = [ledger.prepare(sample_event())]
    with pytest.raises(Problem) as refused:
        asyncio.run(ledger.append_async(org, prepared))
    assert refused.value.status == 503
