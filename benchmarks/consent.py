"""Consent: the in-process check (≥ 200,000 checks/s) and recording a choice over HTTP
(≥ 1,500 requests/s with p99 ≤ 30 ms).

`consent_is_allowed` times `ConsentService.is_allowed(org, subject, purpose)` over a mix of
subjects and purposes, after every subject has recorded a choice through the service (the ledger
writer running, as in the server) and one untimed pass has filled the cache. Baseline, in the same
run on the same table: what an application without a cache does, one
`SELECT states, expires_at, notice_version FROM consent_states WHERE org_id = ? AND consent_id = ?`
per check, the states parsed and the expiry compared in Python.

`consent_record_http` and `consent_record_http_p99` send `POST /api/v1/consent/records` (a
`service` key, 6,000 distinct ChoiceIn bodies: accept all, reject all, customised, set by a server, over 20,000
consent ids) to a real `gardien serve`. The first figure is its capacity: closed loop over 32
keep-alive connections, the rate answered 201 in the window. The second is the p99 at the rate the
issue names, in OPEN LOOP at 1,500 requests/s (benchmarks.loadgen --rate), over the requests due
in the window. Every request appends a consent event, updates the subject's current state and the
day's statistics and seals an audit event, in one commit. Baseline, in the same run and the same
two modes: the seed applications' consent, four booleans and a date upserted per choice behind the
same FastAPI validation (benchmarks.baseline_server).
"""

from __future__ import annotations

import asyncio
import http.client
import json
import random
import secrets
import sys
import time
from typing import Any

from benchmarks import http_append, workload
from benchmarks.common import (
    Baseline,
    CheckFigure,
    Config,
    EngineEnv,
    Reporter,
    Target,
    gardien_command,
    guarded,
    log,
    new_org,
    open_runtime,
    time_check,
)

CHECK_TARGET = Target(">=", 200_000)
RATE_TARGET = Target(">=", 1_500)
P99_TARGET = Target("<=", 30)
RATE = 1_500.0
IN_PROCESS_SUBJECTS = 5_000
CHECK_BASELINE = "a query per check, no cache: SELECT of the subject's consent_states row, states parsed in Python"
SEED_BASELINE = "seed: four booleans and a date upserted per choice, same FastAPI validation, one COMMIT"
ACTOR = {"type": "service", "id": "bench"}

FIGURE = CheckFigure(
    bench="consent_is_allowed",
    target=CHECK_TARGET,
    baseline=CHECK_BASELINE,
    timed="ConsentService.is_allowed(org, subject, purpose), cache warm (other replicas followed every few seconds)",
)


def run(env: EngineEnv, cfg: Config, reporter: Reporter) -> None:
    with guarded(reporter, "consent_is_allowed", env.engine):
        _in_process(env, cfg, reporter)
    with guarded(reporter, "consent_record_http", env.engine):
        _http(env, cfg, reporter)


# --- in process --------------------------------------------------------------------------------


def _in_process(env: EngineEnv, cfg: Config, reporter: Reporter) -> None:
    from gardien.audit.service import Ledger
    from gardien.consent.schemas import ChoiceIn, NoticeIn
    from gardien.consent.service import ConsentService

    checks = 200_000 if cfg.quick else 1_000_000
    with env.database("consent") as scratch:
        runtime = open_runtime(scratch)
        ledger = Ledger(runtime)
        try:
            org = new_org(runtime, "consent")
            service = ConsentService(runtime, ledger)
            service.create_notice(org, NoticeIn.model_validate(workload.consent_notice()), ACTOR)
            choices = workload.consent_choice_pool(IN_PROCESS_SUBJECTS * 2, seed=cfg.seed)
            subjects = [workload.consent_subject(i) for i in range(IN_PROCESS_SUBJECTS)]
            for index, subject in enumerate(subjects):
                choices[index]["consent_id"] = subject
            log(f"{env.engine}: consent: recording {IN_PROCESS_SUBJECTS:,} subjects' choices")
            ledger.start()
            try:
                asyncio.run(_record_all(service, org, [ChoiceIn.model_validate(c) for c in choices[: len(subjects)]]))
            finally:
                ledger.stop()
            rng = random.Random(cfg.seed)
            purposes = workload.CONSENT_PURPOSES
            pairs = [(rng.choice(subjects), rng.choice(purposes)) for _ in range(50_000)]
            log(f"{env.engine}: consent: timing {checks:,} checks, then the query-per-check baseline")
            timings = time_check(
                service.is_allowed, org, pairs, checks, lambda sample: _query_per_check(runtime, org, sample)
            )
        finally:
            runtime.close()
    FIGURE.emit(reporter, env.engine, cfg, timings, subjects=IN_PROCESS_SUBJECTS, distinct_pairs=len(pairs))


async def _record_all(service: Any, org: str, bodies: list[Any]) -> None:
    for start in range(0, len(bodies), 500):
        await asyncio.gather(*(service.record_async(org, body, ACTOR) for body in bodies[start : start + 500]))


def _query_per_check(runtime: Any, org: str, pairs: list[tuple[str, str]]) -> tuple[float, int]:
    """The baseline: one SELECT per check on the same table, no cache."""
    from datetime import UTC, datetime

    marker = "?" if runtime.engine.dialect.paramstyle == "qmark" else "%s"
    sql = (
        f"SELECT states, expires_at, notice_version FROM consent_states WHERE org_id = {marker} "
        f"AND consent_id = {marker}"
    )
    allowed = 0
    with runtime.engine.connect() as conn:
        raw = conn.connection.driver_connection
        cursor = raw.cursor()
        started = time.perf_counter()
        for subject, purpose in pairs:
            cursor.execute(sql, (org, subject))
            row = cursor.fetchone()
            if row is None:
                continue
            expires = row[1] if isinstance(row[1], datetime) else datetime.fromisoformat(str(row[1]))
            if expires.tzinfo is None:
                expires = expires.replace(tzinfo=UTC)
            allowed += expires > datetime.now(UTC) and json.loads(row[0]).get(purpose) == "granted"
        elapsed = time.perf_counter() - started
        cursor.close()
    return elapsed, allowed


# --- over HTTP ---------------------------------------------------------------------------------


def _http(env: EngineEnv, cfg: Config, reporter: Reporter) -> None:
    distinct = ("--workload", "consent", "--distinct", str(int(RATE * 4)))
    open_loop = ("--rate", str(RATE), *distinct)
    with env.database("consent-http") as scratch:
        child_env, token = http_append.deploy_gardien(scratch)
        admin = http_append.gardien_cli(
            ["admin", "create-key", "bench", "--role", "admin", "--name", "notice"], child_env, scratch.directory
        ).split()[-1]
        with http_append.server(scratch, [*gardien_command(), "serve"], child_env, "gardien") as running:
            _post(running.port, admin, "/api/v1/consent/notices", workload.consent_notice(), 201)
            _post(running.port, token, "/api/v1/consent/records", workload.consent_choice_pool(1, seed=1)[0], 201)
            capacity = http_append.load(running, token, cfg, distinct, "consent record, closed loop")
            gardien = http_append.load(running, token, cfg, open_loop, "consent record")
    with env.database("consent-seed") as scratch:
        seed_token = f"gdn_{secrets.token_urlsafe(32)}"
        seed_env = scratch.child_env(BENCH_TOKEN=seed_token)
        command = [sys.executable, "-m", "benchmarks.baseline_server"]
        with http_append.server(scratch, command, seed_env, "seed") as running:
            seed_capacity = http_append.load(running, seed_token, cfg, distinct, "seed consent, closed loop")
            seed = http_append.load(running, seed_token, cfg, open_loop, "seed consent")
    context: dict[str, Any] = {
        "rate": RATE,
        "saturated": gardien["throughput"] < 0.98 * RATE,
        "closed_loop_latency_ms": capacity["latency_ms"],
        "closed_loop_server_cpu_percent": capacity["server_cpu_percent"],
        "baseline_closed_loop_latency_ms": seed_capacity["latency_ms"],
        "latency_ms": gardien["latency_ms"],
        "statuses": gardien["statuses"],
        "unanswered": gardien["unanswered"],
        "errors": gardien["errors"][:5],
        "send_lag_ms": gardien["send_lag_ms"],
        "server_cpu_percent": gardien["server_cpu_percent"],
        "client_cpu_percent": gardien["client_cpu_percent"],
        "baseline_latency_ms": seed["latency_ms"],
        "baseline_statuses": seed["statuses"],
        "baseline_server_cpu_percent": seed["server_cpu_percent"],
        "subjects": workload.CONSENT_SUBJECTS,
        "connections": cfg.http_concurrency,
        "warmup_seconds": cfg.http_warmup,
        "window_seconds": gardien["window_seconds"],
        "server": "gardien serve (uvicorn, 1 process)",
        "client": f"raw asyncio HTTP/1.1 keep-alive ({gardien['event_loop']}), open loop, separate process",
        "endpoint": "POST /api/v1/consent/records",
        **cfg.as_context(),
    }
    problems = [
        f"{name}: non-201 answers {result['statuses']}"
        for name, result in (("gardien", capacity), ("gardien", gardien), ("seed", seed_capacity), ("seed", seed))
        if set(result["statuses"]) - {"201"}
    ]
    if problems or gardien["latency_ms"]["p99"] is None or capacity["latency_ms"]["p99"] is None:
        for bench in ("consent_record_http", "consent_record_http_p99"):
            reporter.error(bench=bench, engine=env.engine, error="; ".join(problems) or "nothing answered", **context)
        return
    reporter.emit(
        bench="consent_record_http",
        engine=env.engine,
        value=capacity["throughput"],
        unit="requests/s",
        target=RATE_TARGET,
        baseline=Baseline(SEED_BASELINE + ", closed loop", seed_capacity["throughput"], "requests/s"),
        n=capacity["latency_ms"]["samples"],
        **context,
    )
    reporter.emit(
        bench="consent_record_http_p99",
        engine=env.engine,
        value=gardien["latency_ms"]["p99"],
        unit="ms",
        target=P99_TARGET,
        baseline=Baseline(SEED_BASELINE + ", p99", seed["latency_ms"]["p99"], "ms"),
        n=gardien["latency_ms"]["samples"],
        **context,
    )


def _post(port: int, token: str, path: str, body: dict[str, Any], expected: int) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
        conn.request("POST", path, body=json.dumps(body).encode(), headers=headers)
        response = conn.getresponse()
        text = response.read()
    finally:
        conn.close()
    if response.status != expected:
        raise RuntimeError(f"POST {path} answered {response.status}: {text[:500]!r}")
