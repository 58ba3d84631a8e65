"""Policies on their cron schedules, once across replicas; storage quotas with alert events."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import select

from gardien.audit.models import EVENTS
from gardien.audit.service import Ledger
from gardien.core.clock import utcnow
from gardien.core.db import is_sqlite
from gardien.core.roles import Role
from gardien.core.runtime import Runtime
from gardien.datamap.service import DatamapService
from gardien.retention.jobs import Runner
from gardien.retention.quotas import QuotaService
from gardien.retention.schedule import Scheduler
from gardien.retention.schemas import PolicyIn, QuotaIn
from gardien.retention.service import RetentionService, next_run
from tests.conftest import auth, sample_event
from tests.retention_samples import make_app

ACTOR = {"type": "user", "id": "dpo-1", "display": "DPO"}
YEARLY = "0 0 1 1 *"  # once a year: a test never sees the next firing


def _policy(schedule: str | None = YEARLY) -> PolicyIn:
    return PolicyIn.model_validate(
        {
            "name": "inactive accounts",
            "target": {"kind": "table", "map": "app", "table": "app.accounts"},
            "period": "P2Y",
            "reference": "last_login",
            "action": "delete",
            "schedule": schedule,
        }
    )


def _worker_runs(service: RetentionService, org: str) -> list[Any]:
    return [r for r in service.list_runs(org).items if r.trigger == "worker"]


def test_next_run_follows_the_cron_expression() -> None:
    start = utcnow().replace(year=2026, month=3, day=14, hour=10, minute=7, second=0, microsecond=0)
    assert next_run("0 3 * * *", start) == start.replace(day=15, hour=3, minute=0)
    assert next_run("*/15 * * * *", start) == start.replace(minute=15)
    assert next_run("0 0 1 1 *", start) == start.replace(year=2027, month=1, day=1, hour=0, minute=0)
    assert next_run(None, start) is None


def test_a_due_policy_runs_once_even_when_two_schedulers_wake_together(
    runtime: Runtime, org: str, tmp_path: Path
) -> None:
    ledger = Ledger(runtime)
    maps = DatamapService(runtime, ledger)
    service = RetentionService(runtime, ledger)
    with make_app("sqlite", tmp_path) as app:
        maps.register(org, "app", app.map_yaml(), ACTOR)
        policy = service.create_policy(org, _policy(), ACTOR)
        not_due = service.create_policy(org, _policy("0 3 * * *").model_copy(update={"name": "later"}), ACTOR)
        service.mark_scheduled(org, not_due.id, utcnow())
        service.mark_scheduled(org, policy.id, utcnow() - timedelta(days=400))  # last fired over a year ago
        replicas = [Scheduler(Runner(runtime, ledger, maps), service) for _ in range(2)]
        if is_sqlite(runtime.engine):
            replicas = replicas[:1]  # SQLite: one worker per database, as documented
        barrier = threading.Barrier(len(replicas))
        started: list[list[str]] = []

        def wake(scheduler: Scheduler) -> None:
            barrier.wait()
            started.append(scheduler.tick())

        threads = [threading.Thread(target=wake, args=(s,)) for s in replicas]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
        assert sorted(len(s) for s in started)[-1] == 1 and sum(len(s) for s in started) == 1
        runs = _worker_runs(service, org)
        assert [r.policy_id for r in runs] == [policy.id]
        assert runs[0].status == "completed" and runs[0].counts["app.accounts"]["deleted"] > 0
        # Marked as fired: the next tick does nothing until next year.
        assert replicas[0].tick() == []
        assert service.get_policy(org, policy.id).next_run_at.year == utcnow().year + 1  # type: ignore[union-attr]


def test_gardien_worker_runs_due_policies_in_the_background(runtime: Runtime, org: str, tmp_path: Path) -> None:
    ledger = Ledger(runtime)
    maps = DatamapService(runtime, ledger)
    service = RetentionService(runtime, ledger)
    with make_app("sqlite", tmp_path) as app:
        maps.register(org, "app", app.map_yaml(), ACTOR)
        policy = service.create_policy(org, _policy(), ACTOR)
        service.mark_scheduled(org, policy.id, utcnow() - timedelta(days=400))
        settings = runtime.settings
        env = {
            **os.environ,
            "GARDIEN_DATABASE_URL": settings.database_url,
            "GARDIEN_KEYS_DIR": str(settings.keys_dir),
            "GARDIEN_INSTANCE_NAME": settings.instance_name,
            "GARDIEN_RETENTION_TICK_SECONDS": "0.3",
        }
        log = (tmp_path / "worker.log").open("wb")
        worker = subprocess.Popen([sys.executable, "-m", "gardien", "worker"], env=env, stdout=log, stderr=log)
        try:
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline and not [r for r in _worker_runs(service, org) if r.finished_at]:
                time.sleep(0.2)
        finally:
            worker.send_signal(signal.SIGTERM)
            assert worker.wait(30) == 0, (tmp_path / "worker.log").read_text()
        runs = _worker_runs(service, org)
        assert len(runs) == 1 and runs[0].status == "completed", (tmp_path / "worker.log").read_text()
        assert app.count(app.accounts) == 300 - runs[0].counts["app.accounts"]["deleted"]


def _alerts(runtime: Runtime, org: str) -> list[str]:
    with runtime.engine.connect() as conn:
        actions = conn.execute(
            select(EVENTS.c.action)
            .where(EVENTS.c.org_id == org, EVENTS.c.action.like("retention.quota.%"))
            .order_by(EVENTS.c.seq)
        ).scalars()
        return [a for a in actions if a != "retention.quota.updated"]


def test_quotas_alert_once_per_crossing_and_clear(runtime: Runtime, org: str) -> None:
    ledger = Ledger(runtime)
    quotas = QuotaService(runtime, ledger)
    ledger.append_batch(org, [sample_event() for _ in range(10)])
    out = quotas.put(org, QuotaIn(max_ledger_events=20, warn_ratio=50), ACTOR)
    assert {u.measure: u.level for u in out.usage}["ledger_events"] == "warn"  # 11 of 20: over half
    assert _alerts(runtime, org) == ["retention.quota.warning"]
    quotas.check(org, ACTOR)
    assert _alerts(runtime, org) == ["retention.quota.warning"]  # no new crossing, no new alert
    ledger.append_batch(org, [sample_event() for _ in range(10)])
    assert {u.measure: u.level for u in quotas.check(org, ACTOR).usage}["ledger_events"] == "over"
    assert _alerts(runtime, org) == ["retention.quota.warning", "retention.quota.exceeded"]
    quotas.put(org, QuotaIn(max_ledger_events=10_000), ACTOR)
    assert _alerts(runtime, org)[-1] == "retention.quota.cleared"
    usage = {u.measure: u for u in quotas.get(org).usage}
    assert usage["ledger_bytes"].used > 0 and usage["ledger_bytes"].limit is None


def test_quota_api(client: TestClient, tokens: dict[Role, str]) -> None:
    body = {"max_ledger_events": 1_000_000, "max_export_bytes": 10**9, "warn_ratio": 90}
    assert client.put("/api/v1/retention/quota", json=body, headers=auth(tokens[Role.DPO])).status_code == 403
    answer = client.put("/api/v1/retention/quota", json=body, headers=auth(tokens[Role.OPERATOR]))
    assert answer.status_code == 200, answer.text
    assert answer.json()["quota"]["warn_ratio"] == 90
    bad = client.put("/api/v1/retention/quota", json={"warn_ratio": 0}, headers=auth(tokens[Role.ADMIN]))
    assert bad.status_code == 422 and "warn_ratio" in bad.text
    shown = client.get("/api/v1/retention/quota", headers=auth(tokens[Role.AUDITOR])).json()
    assert {u["measure"] for u in shown["usage"]} == {"ledger_events", "ledger_bytes", "export_bytes"}
