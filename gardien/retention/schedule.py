"""The worker's retention duty: start each policy when its cron schedule falls due, once across replicas.

Every `tick` seconds the worker looks for enabled policies whose next run (after the last one it
started) has come. It takes the policy's advisory lock (PostgreSQL: `pg_try_advisory_lock`), reads
the policy again under the lock, and only if it is still due marks it started and runs it: two
replicas that wake together run it once. A policy whose run was interrupted (a replica died) is
resumed by the next tick. On SQLite there is no cross-process lock: run one worker.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

from gardien.audit.service import SYSTEM_ACTOR
from gardien.core import service as core
from gardien.core.errors import Problem
from gardien.retention.jobs import Runner
from gardien.retention.quotas import QuotaService
from gardien.retention.service import RetentionService, next_run

log = logging.getLogger(__name__)
WORKER_ACTOR = {"type": "system", "id": "gardien-worker", "display": "gardien worker"}


class Scheduler:
    def __init__(self, runner: Runner, policies: RetentionService, quotas: QuotaService | None = None) -> None:
        self.runner = runner
        self.policies = policies
        self.quotas = quotas
        self.clock: Callable[[], datetime] = runner.clock

    def orgs(self) -> list[str]:
        with self.runner.runtime.sessions() as session:
            return [o.id for o in core.list_orgs(session)]

    def tick(self) -> list[str]:
        """Start every due policy of every organisation; the ids of the runs started or resumed."""
        runs: list[str] = []
        for org_id in self.orgs():
            if self.quotas is not None:
                self.quotas.check(org_id, SYSTEM_ACTOR)
            for row in self.policies.policy_rows(org_id):
                if self._due(row) or self.runner.has_interrupted(org_id, row["id"]):
                    run_id = self._start(org_id, row["id"])
                    if run_id is not None:
                        runs.append(run_id)
        return runs

    def _due(self, row: Mapping[str, Any]) -> bool:
        if not row["enabled"] or not row["schedule"]:
            return False
        due = next_run(row["schedule"], row["last_scheduled_at"] or row["created_at"])
        return due is not None and due <= self.clock()

    def _start(self, org_id: str, policy_id: str) -> str | None:
        with self.runner.policy_lock(policy_id) as locked:
            if not locked:
                return None  # another replica has it
            try:
                row = self.policies.policy_row(org_id, policy_id)  # again, under the lock
            except Problem:
                return None
            interrupted = self.runner.has_interrupted(org_id, policy_id)
            if not interrupted and not self._due(row):
                return None  # another replica ran it between our look and our lock
            if not interrupted:
                self.policies.mark_scheduled(org_id, policy_id, self.clock())
            try:
                return self.runner.run_policy(
                    org_id, row, dry_run=False, trigger="worker", actor=WORKER_ACTOR, locked=True
                )
            except Problem as exc:
                log.warning("retention policy %s of %s: %s", policy_id, org_id, exc.detail)
                return None

    def loop(self, stop: threading.Event, tick: float) -> None:
        while not stop.is_set():
            try:
                self.tick()
            except Exception:  # the worker keeps going; the next tick retries
                log.exception("retention scheduler tick failed")
            stop.wait(tick)
