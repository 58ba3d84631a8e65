"""Figure 4: Ledger.export of the large ledger (1M events) as JSONL and as CSV.

Two figures per format: the seconds spent in Ledger.export (streaming the events to a file with
its SHA-256 and base64-HMAC computed on the fly, fsync, signed manifest), and the peak RSS of the
process that exported. Each export runs in a fresh child process (benchmarks.export_child) that
reports its own VmHWM, so the parent, which filled the ledger, does not count (see run_child for
why not ru_maxrss). The peak includes the interpreter and Gardien's imports (reported as
rss_before_export_mb).

Baseline: a child process that streams the baseline table and writes each row as a JSON line
(json.dumps) or a CSV row, then fsyncs: a plain dump, no hashing, no manifest, no signature.
"""

from __future__ import annotations

from benchmarks.common import Baseline, Config, Reporter, Target, guarded, log, rounded, run_child
from benchmarks.ledger import LargeLedger

GROUP = "export"
FORMATS = ("jsonl", "csv")
SECONDS = Target("<=", 15.0)
PEAK_RSS_MB = Target("<=", 200.0)


def _mb(kib: float | None) -> float | None:
    """KiB (what the kernel reports) to decimal megabytes, the stricter reading of "200 MB"."""
    return rounded(kib * 1024 / 1e6) if kib is not None else None


def run(large: LargeLedger, cfg: Config, reporter: Reporter) -> None:
    env = large.scratch.child_env()
    timeout = max(600.0, large.n / 1_000)
    for fmt in FORMATS:
        with guarded(reporter, f"export_{fmt}", large.engine):
            log(f"{large.engine}: export: Ledger.export {fmt} of {large.n:,} events in a child process")
            mine = run_child(
                "benchmarks.export_child",
                ["gardien", "--org", large.org_id, "--format", fmt],
                env=env,
                timeout=timeout,
            )
            log(f"{large.engine}: export: baseline {fmt} dump in a child process")
            base = run_child(
                "benchmarks.export_child",
                ["baseline", "--format", fmt, "--out", str(large.scratch.directory / "baseline-exports")],
                env=env,
                timeout=timeout,
            )
            out, base_out = mine.output, base.output
            if out["count"] < large.n:
                raise RuntimeError(f"the export holds {out['count']} events, expected {large.n}")
            context = {
                "format": fmt,
                "exported_events": out["count"],
                "payload_mb": _mb(out["payload_bytes"] / 1024),
                "export_seconds": rounded(out["seconds"]),
                "peak_rss_mb": _mb(out["vmhwm_kb"]),
                "rss_before_export_mb": _mb(out["rss_before_kb"]),
                "baseline_payload_mb": _mb(base_out["payload_bytes"] / 1024),
                "baseline_rss_before_export_mb": _mb(base_out["rss_before_kb"]),
                "baseline_export_seconds": rounded(base_out["seconds"]),
                "measured_in": "fresh child process; peak RSS is its VmHWM from /proc/self/status",
                **large.context(),
                **cfg.as_context(),
            }
            baseline_name = f"plain dump of the baseline table as {fmt} (streamed, no hash or signature)"
            reporter.emit(
                bench=f"export_{fmt}_seconds",
                engine=large.engine,
                value=out["seconds"],
                unit="s",
                target=SECONDS,
                baseline=Baseline(baseline_name, base_out["seconds"], "s"),
                n=out["count"],
                **context,
            )
            reporter.emit(
                bench=f"export_{fmt}_peak_rss",
                engine=large.engine,
                value=out["vmhwm_kb"] * 1024 / 1e6,
                unit="MB",
                target=PEAK_RSS_MB,
                baseline=Baseline(baseline_name + ", peak RSS", base_out["vmhwm_kb"] * 1024 / 1e6, "MB"),
                n=out["count"],
                **context,
            )
