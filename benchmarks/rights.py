"""Data-subject rights: the in-process `can_process(subject, purpose)` check.

`rights_can_process` times `RightsService.can_process(org, subject, purpose)` over a mix of
subjects and purposes: a fifth of the subjects objected to direct marketing, a fifth have a
restriction in progress (all purposes), the rest no block; one untimed pass fills the cache. The
issue names no figure for this check; the target is the consent check's (≥ 200,000 checks/s), the
other question a host application asks before processing. Baseline, in the same run on the same
table: what an application without a cache does, the subject's pseudonym computed and one
`SELECT purpose, kind FROM rights_blocks WHERE org_id = ? AND subject_ref = ? AND active` per check.
"""

from __future__ import annotations

import random
import time
from typing import Any

from benchmarks.common import (
    CheckFigure,
    Config,
    EngineEnv,
    Reporter,
    Target,
    guarded,
    log,
    new_org,
    open_runtime,
    time_check,
)

CHECK_TARGET = Target(">=", 200_000)
SUBJECTS = 2_500
PURPOSES = ("direct_marketing", "analytics", "billing", "profiling")
BASELINE = "a query per check, no cache: the subject's pseudonym, then a SELECT of its active rights_blocks"
DPO = {"type": "benchmark", "id": "dpo"}
APP = {"type": "benchmark", "id": "app"}

FIGURE = CheckFigure(
    bench="rights_can_process",
    target=CHECK_TARGET,
    baseline=BASELINE,
    timed="RightsService.can_process(org, subject, purpose), cache warm (GARDIEN_RIGHTS_CACHE_SECONDS)",
)


def run(env: EngineEnv, cfg: Config, reporter: Reporter) -> None:
    with guarded(reporter, "rights_can_process", env.engine):
        _in_process(env, cfg, reporter)


def _in_process(env: EngineEnv, cfg: Config, reporter: Reporter) -> None:
    from gardien.audit.service import Ledger
    from gardien.rights.schemas import RequestIn
    from gardien.rights.service import RightsService

    checks = 200_000 if cfg.quick else 1_000_000
    with env.database("rights") as scratch:
        runtime = open_runtime(scratch)
        try:
            org = new_org(runtime, "rights")
            service = RightsService(runtime, Ledger(runtime))
            subjects = [f"customer-{i}" for i in range(SUBJECTS)]
            log(f"{env.engine}: rights: filing {SUBJECTS * 2 // 5:,} objections and restrictions")
            for index, subject in enumerate(subjects[: SUBJECTS * 2 // 5]):
                email = f"{subject}@example.org"
                if index % 2:
                    body = {"type": "objection", "direct_marketing": True, "email": email, "subject_id": subject}
                    service.create(org, RequestIn.model_validate(body), APP, "service")
                else:
                    body = {"type": "restriction", "email": email, "subject_id": subject}
                    filed = service.create(org, RequestIn.model_validate(body), APP, "service")
                    service.verify_by_operator(org, filed.id, "benchmark", DPO)
            rng = random.Random(cfg.seed)
            pairs = [(rng.choice(subjects), rng.choice(PURPOSES)) for _ in range(50_000)]
            log(f"{env.engine}: rights: timing {checks:,} checks, then the query-per-check baseline")
            timings = time_check(
                service.can_process, org, pairs, checks, lambda sample: _query_per_check(runtime, service, org, sample)
            )
        finally:
            runtime.close()
    FIGURE.emit(reporter, env.engine, cfg, timings, subjects=SUBJECTS, distinct_pairs=len(pairs))


def _query_per_check(runtime: Any, service: Any, org: str, pairs: list[tuple[str, str]]) -> tuple[float, int]:
    """The baseline: the pseudonym and one SELECT per check on the same table, no cache."""
    from gardien.rights.personal import subject_id_ref

    marker = "?" if runtime.engine.dialect.paramstyle == "qmark" else "%s"
    true = "1" if marker == "?" else "true"
    sql = (
        f"SELECT purpose, kind FROM rights_blocks WHERE org_id = {marker} "
        f"AND subject_ref = {marker} AND active = {true}"
    )
    key = service._key()
    allowed = 0
    with runtime.engine.connect() as conn:
        cursor = conn.connection.driver_connection.cursor()
        started = time.perf_counter()
        for subject, purpose in pairs:
            cursor.execute(sql, (org, subject_id_ref(key, subject)))
            blocked = {row[0] for row in cursor.fetchall()}
            allowed += purpose not in blocked and "*" not in blocked
        elapsed = time.perf_counter() - started
        cursor.close()
    return elapsed, allowed
