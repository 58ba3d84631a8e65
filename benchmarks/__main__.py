"""`make bench`: measure the issue's figures on SQLite and PostgreSQL, one JSON line per figure.

    python -m benchmarks [--quick] [--only GROUP[,GROUP]] [--engine sqlite|postgresql|all]

Figures go to stdout and to bench-results/<timestamp>.jsonl; progress goes to stderr. Groups:
append_batch (fig. 1), http_append (fig. 2), verify (fig. 3), export (fig. 4), inclusion_proof
(fig. 5), sca (the PSD2 SCA advisor's decision, in process and over HTTP at a fixed rate), consent
(the in-process consent check and recording a choice over HTTP at a fixed rate), rights (the
in-process restriction and objection check), dsr (access and erasure of one person on a generated
host database, against a naive script), redact (PII detection against Presidio on a labelled log
corpus; no database, run once). Verify,
export and inclusion_proof share one large ledger per engine. See docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import os
import platform
import signal
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType

from benchmarks.common import DEFAULT_POSTGRES_URL, ROOT, Config, EngineEnv, Reporter, log

GROUPS = (
    "append_batch",
    "http_append",
    "sca",
    "consent",
    "rights",
    "dsr",
    "retention",
    "verify",
    "inclusion_proof",
    "export",
    "redact",
)
NO_DATABASE = ("redact",)  # groups that run once, whatever --engine says
LARGE_GROUPS = ("verify", "inclusion_proof", "export")  # in this order, on one shared ledger
ENGINES = ("sqlite", "postgresql")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks",
        description="Gardien's performance figures against a no-integrity baseline.",
    )
    parser.add_argument("--quick", action="store_true", help="smaller N (100k-event ledger, 5 s HTTP window)")
    parser.add_argument(
        "--only",
        action="append",
        default=[],
        metavar="GROUP",
        help=f"run only these groups (repeatable or comma-separated): {', '.join(GROUPS)}",
    )
    parser.add_argument("--engine", choices=[*ENGINES, "all"], default="all")
    parser.add_argument(
        "--postgres-url",
        default=os.environ.get(
            "GARDIEN_BENCH_POSTGRES_URL", os.environ.get("GARDIEN_TEST_POSTGRES_URL", DEFAULT_POSTGRES_URL)
        ),
        help="server where temporary databases are created and dropped "
        "(default $GARDIEN_BENCH_POSTGRES_URL, $GARDIEN_TEST_POSTGRES_URL, or the local server)",
    )
    parser.add_argument("--events", type=int, help="size of the large ledger (default 1,000,000; quick 100,000)")
    parser.add_argument("--append-events", type=int, help="events timed in figure 1 (default 100,000; quick 30,000)")
    parser.add_argument("--duration", type=float, help="HTTP measurement window, seconds (default 10)")
    parser.add_argument("--warmup", type=float, help="HTTP warm-up, seconds (default 3)")
    parser.add_argument("--concurrency", type=int, default=32, help="HTTP connections (default 32)")
    parser.add_argument("--proofs", type=int, help="inclusion proofs timed (default 2,000)")
    parser.add_argument("--sca-requests", type=int, default=20_000, help="SCA decisions timed in process")
    parser.add_argument(
        "--sca-rate", type=float, default=500.0, help="open-loop requests/s of the SCA HTTP figure (default 500)"
    )
    parser.add_argument(
        "--dsr-customers", type=int, help="customers in the dsr group's host database (default 1,000,000; quick 20,000)"
    )
    parser.add_argument(
        "--retention-rows", type=int, help="host rows in the retention group (default 1,000,000; quick 100,000)"
    )
    parser.add_argument(
        "--retention-baseline-rows",
        type=int,
        default=50_000,
        help="rows the row-by-row baseline runs on before extrapolation (default 50,000)",
    )
    parser.add_argument("--seed", type=int, default=20261122)
    parser.add_argument("--results-dir", type=Path, default=ROOT / "bench-results")
    args = parser.parse_args(argv)
    selected = [name.strip() for item in args.only for name in item.split(",") if name.strip()]
    unknown = sorted(set(selected) - set(GROUPS))
    if unknown:
        parser.error(f"unknown group(s) {', '.join(unknown)}; choose from {', '.join(GROUPS)}")
    args.groups = [g for g in GROUPS if g in selected] if selected else list(GROUPS)
    return args


def make_config(args: argparse.Namespace) -> Config:
    quick = args.quick
    append_events = args.append_events or (30_000 if quick else 100_000)
    return Config(
        quick=quick,
        seed=args.seed,
        batch_size=1_000,
        append_events=append_events,
        append_float_events=max(1_000, append_events // 4),
        large_events=args.events or (100_000 if quick else 1_000_000),
        http_concurrency=args.concurrency,
        http_warmup=args.warmup if args.warmup is not None else (2.0 if quick else 3.0),
        http_duration=args.duration or (5.0 if quick else 10.0),
        proofs=args.proofs or (500 if quick else 2_000),
        sca_requests=args.sca_requests,
        sca_rate=args.sca_rate,
    )


def _terminate(signum: int, _frame: FrameType | None) -> None:
    # Turn SIGTERM into an exception so that temporary databases and servers are cleaned up.
    raise KeyboardInterrupt(f"signal {signum}")


def run_engine(engine: str, args: argparse.Namespace, cfg: Config, reporter: Reporter) -> None:
    if all(group in NO_DATABASE for group in args.groups):
        return
    from benchmarks import append, consent, dsr, export, http_append, ledger, proofs, retention, rights, sca, verify

    env = EngineEnv(engine, args.postgres_url)
    try:
        try:
            version = env.check()
        except Exception as exc:
            for group in args.groups:
                reporter.error(bench=group, engine=engine, error=f"{engine} unavailable: {exc}")
            return
        reporter.common["engine_version"] = version
        log(f"=== {engine} ({version}) ===")
        if "append_batch" in args.groups:
            append.run(env, cfg, reporter)
        if "http_append" in args.groups:
            http_append.run(env, cfg, reporter)
        if "sca" in args.groups:
            sca.run(env, cfg, reporter)
        if "consent" in args.groups:
            consent.run(env, cfg, reporter)
        if "rights" in args.groups:
            rights.run(env, cfg, reporter)
        if "dsr" in args.groups:
            dsr.run(env, cfg, reporter, args.dsr_customers or (20_000 if cfg.quick else 1_000_000))
        if "retention" in args.groups:
            rows = args.retention_rows or (100_000 if cfg.quick else 1_000_000)
            retention.run(env, cfg, reporter, rows, args.retention_baseline_rows)
        large_groups = [g for g in LARGE_GROUPS if g in args.groups]
        if not large_groups:
            return
        modules = {"verify": verify, "inclusion_proof": proofs, "export": export}
        pending = list(large_groups)
        try:
            with ledger.large_ledger(env, cfg) as large:
                while pending:
                    modules[pending[0]].run(large, cfg, reporter)
                    pending.pop(0)
        except KeyboardInterrupt:
            raise
        except Exception as exc:
            import traceback

            traceback.print_exc(file=sys.stderr)
            for group in pending:
                reporter.error(bench=group, engine=engine, error=f"large ledger: {type(exc).__name__}: {exc}")
    finally:
        env.close()


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    cfg = make_config(args)
    signal.signal(signal.SIGTERM, _terminate)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    from gardien import __version__

    reporter = Reporter(
        args.results_dir / f"{stamp}.jsonl",
        {
            "run": stamp,
            "gardien_version": __version__,
            "python": platform.python_version(),
            "cpus": os.cpu_count(),
            "platform": platform.platform(terse=True),
        },
    )
    engines = list(ENGINES) if args.engine == "all" else [args.engine]
    log(
        f"groups {', '.join(args.groups)} on {', '.join(engines)}"
        f"{' (quick)' if cfg.quick else ''}; results in {reporter.path}"
    )
    load, cpus = os.getloadavg()[0], os.cpu_count() or 1
    if load > cpus / 2:
        log(
            f"warning: load average {load:.1f} on {cpus} CPUs before starting; other work shares the "
            "cores with Gardien, its database and the load generator, so the figures will be pessimistic"
        )
    started = time.monotonic()
    interrupted = False
    try:
        if "redact" in args.groups:
            from benchmarks import redact

            redact.run(cfg, reporter)
        for engine in engines:
            run_engine(engine, args, cfg, reporter)
    except KeyboardInterrupt:
        interrupted = True
        log("interrupted; temporary databases and servers were cleaned up")
    finally:
        reporter.close()
    minutes = (time.monotonic() - started) / 60
    log(
        f"done in {minutes:.1f} min: {reporter.figures} figures, {reporter.errors} errors, "
        f"targets missed: {', '.join(reporter.missed) or 'none'}; results in {reporter.path}"
    )
    if interrupted:
        return 130
    return 1 if reporter.errors else 0


if __name__ == "__main__":
    sys.exit(main())
