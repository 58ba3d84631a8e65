"""Figure 5: inclusion proofs in the large ledger, p50 and p99 per proof in milliseconds.

Each timed proof is Ledger.inclusion_proof for a random sequence number against the latest
checkpoint, then local verification with merkle.verify_inclusion against the checkpoint's root
(decoding the base64 members as a client would). A proof that does not verify fails the figure.

Baseline: fetching one row of the baseline table by primary key (a fresh connection checkout per
lookup, as the Ledger does per call): what reading one event costs without any proof.
"""

from __future__ import annotations

import base64
import random
import time

from sqlalchemy import text

from benchmarks.common import Baseline, Config, Reporter, Target, guarded, log, percentile, rounded
from benchmarks.ledger import LargeLedger
from benchmarks.workload import BASELINE_TABLE

GROUP = "inclusion_proof"
TARGET = Target("<=", 1.0)
WARMUP = 50


def run(large: LargeLedger, cfg: Config, reporter: Reporter) -> None:
    with guarded(reporter, GROUP, large.engine):
        from gardien.audit import merkle

        ledger, org_id = large.ledger, large.org_id
        size = ledger.checkpoint(org_id).size
        rng = random.Random(cfg.seed)
        seqs = [rng.randrange(size) for _ in range(cfg.proofs)]
        b64 = base64.b64decode

        def prove(seq: int) -> tuple[bool, int]:
            proof = ledger.inclusion_proof(org_id, seq)
            ok = merkle.verify_inclusion(
                b64(proof.leaf_hash),
                seq,
                proof.tree_size,
                [b64(h) for h in proof.hashes],
                b64(proof.checkpoint.root),
            )
            return ok, len(proof.hashes)

        log(f"{large.engine}: inclusion_proof: {len(seqs):,} proofs in a tree of {size:,}")
        for seq in seqs[:WARMUP]:
            prove(seq)
        times: list[float] = []
        failed: list[int] = []
        path_lengths = 0
        for seq in seqs:
            t0 = time.perf_counter()
            ok, length = prove(seq)
            times.append(time.perf_counter() - t0)
            path_lengths += length
            if not ok:
                failed.append(seq)
        if failed:
            raise RuntimeError(f"{len(failed)} inclusion proofs did not verify, e.g. seq {failed[:5]}")

        engine = large.runtime.engine
        lookup = text(f"SELECT * FROM {BASELINE_TABLE} WHERE id = :id")
        ids = [rng.randrange(1, large.n + 1) for _ in range(len(seqs))]
        base_times: list[float] = []
        for position, row_id in enumerate([*ids[:WARMUP], *ids]):
            t0 = time.perf_counter()
            with engine.connect() as conn:
                conn.execute(lookup, {"id": row_id}).one()
            if position >= WARMUP:
                base_times.append(time.perf_counter() - t0)

        times.sort()
        base_times.sort()
        context = {
            "tree_size": size,
            "mean_path_hashes": rounded(path_lengths / len(seqs), 3),
            "p50_ms": rounded(percentile(times, 0.5) * 1000),
            "p90_ms": rounded(percentile(times, 0.9) * 1000),
            "p99_ms": rounded(percentile(times, 0.99) * 1000),
            "max_ms": rounded(times[-1] * 1000),
            "includes": "Ledger.inclusion_proof + base64 decoding + merkle.verify_inclusion",
            **large.context(),
            **cfg.as_context(),
        }
        for name, fraction in (("p50", 0.5), ("p99", 0.99)):
            reporter.emit(
                bench=f"inclusion_proof_{name}",
                engine=large.engine,
                value=percentile(times, fraction) * 1000,
                unit="ms",
                target=TARGET,
                baseline=Baseline(
                    f"SELECT one baseline row by primary key, {name}",
                    percentile(base_times, fraction) * 1000,
                    "ms",
                ),
                n=len(times),
                **context,
            )
