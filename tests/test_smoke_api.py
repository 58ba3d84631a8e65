from __future__ import annotations

import dataclasses

from fastapi.testclient import TestClient

from gardien.app import create_app
from gardien.core.roles import Role
from gardien.core.runtime import Runtime
from tests.conftest import auth, sample_event


def test_append_then_read_back(client: TestClient, tokens: dict[Role, str]) -> None:
    created = client.post("/api/v1/audit/events", json=sample_event(), headers=auth(tokens[Role.SERVICE]))
    assert created.status_code == 201, created.text
    receipt = created.json()
    assert receipt["seq"] == 0
    page = client.get("/api/v1/audit/events", headers=auth(tokens[Role.AUDITOR])).json()
    assert page["events"][0]["id"] == receipt["id"]
    assert page["events"][0]["actor"]["display"] == "Émilie Dupont"


def test_native_opentelemetry_is_off_unless_asked_for(runtime: Runtime) -> None:
    # Off: every signal disabled, so FastAPI's per-request check stops at its first test.
    quiet = create_app(runtime=runtime)
    assert not quiet._native_telemetry.enabled()
    assert not any(quiet._telemetry[signal] for signal in ("tracing", "metrics", "logs"))
    # Asked for: FastAPI's defaults come back (each signal on, sent wherever the process configures).
    asked = runtime.settings.model_copy(update={"opentelemetry": True})
    loud = create_app(runtime=dataclasses.replace(runtime, settings=asked))
    assert all(loud._telemetry[signal] for signal in ("tracing", "metrics", "logs"))
