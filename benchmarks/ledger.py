"""The large ledger behind figures 3 to 5, built once per engine and shared by verify, proofs, export.

N realistic events (1,000,000; 100,000 with --quick; integers and strings in `changes`, no
floats) are appended to one organisation in batches of 1,000, then the tree is checkpointed. To
save time the pool of distinct events is validated once (Ledger.prepare_batch) and its batches are
sealed again and again with Ledger.append_prepared: the stored events are exactly what
append_batch would store (Gardien assigns id, seq and times at sealing). The same N events go into
the baseline table as plain rows. Filling is not a figure; its rate is reported as context only.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from dataclasses import dataclass

from benchmarks import baseline, workload
from benchmarks.common import Config, EngineEnv, Scratch, log, new_org, open_runtime, rounded
from gardien.audit.service import Ledger
from gardien.core.runtime import Runtime

POOL = 10_000


@dataclass
class LargeLedger:
    engine: str
    scratch: Scratch
    runtime: Runtime
    ledger: Ledger
    org_id: str
    n: int
    fill_seconds: float
    baseline_fill_seconds: float

    def context(self) -> dict[str, object]:
        return {
            "ledger_events": self.n,
            "fill_events_per_s": rounded(self.n / self.fill_seconds),
            "baseline_fill_rows_per_s": rounded(self.n / self.baseline_fill_seconds),
        }


@contextlib.contextmanager
def large_ledger(env: EngineEnv, cfg: Config) -> Iterator[LargeLedger]:
    with env.database("large") as scratch:
        runtime = open_runtime(scratch)
        try:
            ledger = Ledger(runtime)
            org_id = new_org(runtime, "large")
            pool = workload.event_pool(POOL, seed=cfg.seed + 100)
            prepared = [ledger.prepare_batch(b) for b in workload.batches(pool, POOL, cfg.batch_size)]
            total = cfg.large_events
            log(f"{env.engine}: filling a ledger of {total:,} events ({cfg.batch_size:,} per transaction)")
            started = time.perf_counter()
            report_every = max(cfg.batch_size, total // 10)
            done = 0
            while done < total:
                batch = prepared[(done // cfg.batch_size) % len(prepared)][: total - done]
                ledger.append_prepared(org_id, batch)
                done += len(batch)
                if done % report_every < cfg.batch_size and done < total:
                    rate = done / (time.perf_counter() - started)
                    log(f"{env.engine}:   {done:,} events ({rate:,.0f}/s)")
            ledger.checkpoint_now(org_id)
            fill_seconds = time.perf_counter() - started
            log(f"{env.engine}: ledger filled in {fill_seconds:.1f} s ({total / fill_seconds:,.0f} events/s)")

            started = time.perf_counter()
            baseline.create_table(runtime.engine, indexes=False)
            baseline.fill(runtime.engine, pool, total)
            baseline.create_indexes(runtime.engine)
            base_seconds = time.perf_counter() - started
            log(f"{env.engine}: baseline table filled and indexed in {base_seconds:.1f} s")
            yield LargeLedger(env.engine, scratch, runtime, ledger, org_id, total, fill_seconds, base_seconds)
        finally:
            runtime.close()
