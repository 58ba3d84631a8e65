"""Figure 3: Ledger.verify over the large ledger (1M events), in seconds.

Verification recomputes every leaf hash, the HMAC chain, the Merkle tree and every checkpoint
signature. It is timed once, with the database warm (it was just written), in this process.

Baseline: a full SELECT scan of the baseline table in key order, every column fetched straight
from the driver and nothing checked: the least any whole-log read costs.
"""

from __future__ import annotations

import time

from benchmarks import baseline
from benchmarks.common import Baseline, Config, Reporter, Target, guarded, log, rounded
from benchmarks.ledger import LargeLedger

GROUP = "verify"
TARGET = Target("<=", 5.0)


def run(large: LargeLedger, cfg: Config, reporter: Reporter) -> None:
    with guarded(reporter, GROUP, large.engine):
        log(f"{large.engine}: verify: Ledger.verify over {large.n:,} events")
        started = time.perf_counter()
        report = large.ledger.verify(large.org_id)
        elapsed = time.perf_counter() - started
        if report.status != "ok":
            log(f"{large.engine}: verify: status {report.status}: {report.findings[:3]}")
        base_seconds, base_rows = baseline.scan(large.runtime.engine)
        reporter.emit(
            bench=GROUP,
            engine=large.engine,
            value=elapsed,
            unit="s",
            target=TARGET,
            baseline=Baseline(
                "full SELECT scan of the baseline table (all columns, driver only, nothing checked)",
                base_seconds,
                "s",
            ),
            n=large.n,
            status=report.status,
            events_checked=report.events_checked,
            checkpoints_checked=report.checkpoints_checked,
            events_per_s=rounded(report.events_checked / elapsed) if elapsed else None,
            baseline_rows=base_rows,
            **large.context(),
            **cfg.as_context(),
        )
