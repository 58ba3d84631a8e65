"""Figure 1: in-process batched append, Ledger.append_batch with 1,000 realistic events per call.

Two figures: `append_batch` (changes hold integers and strings, the common case) and
`append_batch_floats` (changes hold money amounts, rates and coordinates; a quarter of the events
also hold an integral or tiny float, which take RFC 8785's slow path). Each runs on its own
organisation in a fresh database, after one untimed warm-up batch. The events are built before the
clock starts; the timed part is exactly what an embedding program pays: validation, canonical
bytes, hashing, the MAC chain, tree nodes, checkpoints, and the commit.

Baseline: the same events written as django-auditlog-like rows, executemany of 1,000 rows per
transaction, in the same database and run.
"""

from __future__ import annotations

import time

from benchmarks import baseline, workload
from benchmarks.common import (
    Baseline,
    Config,
    EngineEnv,
    Reporter,
    Target,
    guarded,
    log,
    new_org,
    open_runtime,
    percentile,
    rounded,
)
from gardien.audit.service import Ledger
from gardien.core.runtime import Runtime

GROUP = "append_batch"
TARGET = Target(">=", 20_000)
POOL = 5_000


def run(env: EngineEnv, cfg: Config, reporter: Reporter) -> None:
    with env.database("append") as scratch:
        runtime = open_runtime(scratch)
        try:
            ledger = Ledger(runtime)
            baseline.create_table(runtime.engine)
            variants = (
                ("append_batch", False, cfg.append_events),
                ("append_batch_floats", True, cfg.append_float_events),
            )
            for bench, floats, total in variants:
                if total <= 0:
                    continue
                with guarded(reporter, bench, env.engine):
                    _measure(ledger, runtime, env.engine, cfg, reporter, bench, floats, total)
        finally:
            runtime.close()


def _measure(
    ledger: Ledger,
    runtime: Runtime,
    engine: str,
    cfg: Config,
    reporter: Reporter,
    bench: str,
    floats: bool,
    total: int,
) -> None:
    pool = workload.event_pool(min(POOL, total), seed=cfg.seed + int(floats), floats=floats)
    org_id = new_org(runtime, f"append-{'floats' if floats else 'ints'}")
    ledger.append_batch(org_id, pool[: cfg.batch_size])  # warm-up: head row, caches, statements

    log(f"{engine}: {bench}: appending {total:,} events in batches of {cfg.batch_size:,}")
    batch_seconds: list[float] = []
    started = time.perf_counter()
    for batch in workload.batches(pool, total, cfg.batch_size):
        t0 = time.perf_counter()
        ledger.append_batch(org_id, batch)
        batch_seconds.append(time.perf_counter() - t0)
    elapsed = time.perf_counter() - started
    rate = total / elapsed

    log(f"{engine}: {bench}: baseline, {total:,} plain rows")
    engine_obj = runtime.engine
    baseline.insert_batches(engine_obj, pool[: cfg.batch_size], cfg.batch_size, cfg.batch_size)  # warm-up
    base_elapsed, base_batches = baseline.insert_batches(engine_obj, pool, total, cfg.batch_size)
    base_rate = total / base_elapsed

    batch_seconds.sort()
    base_batches.sort()
    settings = runtime.settings
    reporter.emit(
        bench=bench,
        engine=engine,
        value=rate,
        unit="events/s",
        target=TARGET,
        baseline=Baseline(baseline.BATCHED, base_rate, "events/s"),
        n=total,
        seconds=rounded(elapsed),
        batch_size=cfg.batch_size,
        batch_ms_p50=rounded(percentile(batch_seconds, 0.5) * 1000),
        batch_ms_p99=rounded(percentile(batch_seconds, 0.99) * 1000),
        baseline_seconds=rounded(base_elapsed),
        baseline_batch_ms_p50=rounded(percentile(base_batches, 0.5) * 1000),
        events=(
            "realistic, changes with floats (1 in 4 with an integral or tiny float)"
            if floats
            else "realistic, changes with integers and strings, no floats"
        ),
        distinct_events=len(pool),
        sqlite_synchronous=settings.sqlite_synchronous if engine == "sqlite" else None,
        checkpoint_every_events=settings.checkpoint_every_events,
        **cfg.as_context(),
    )
