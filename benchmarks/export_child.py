"""One export in a process of its own, so that its peak RSS is the export's, not the benchmark's.

    python -m benchmarks.export_child gardien --org ORG --format jsonl|csv
    python -m benchmarks.export_child baseline --format jsonl|csv --out DIR

Settings come from the GARDIEN_* environment. Prints one JSON line: the seconds spent in the export
call, the event count, the payload size, and VmRSS before / VmHWM after from /proc/self/status.
VmHWM is this process's peak RSS since exec; the payload is deleted afterwards, untimed.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import time
from pathlib import Path
from typing import Any


def _status_kb(name: str) -> int | None:
    try:
        with open("/proc/self/status") as handle:
            for line in handle:
                if line.startswith(name + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def _gardien(org_id: str, fmt: str) -> dict[str, Any]:
    from gardien.audit.schemas import EventFilter
    from gardien.audit.service import Ledger
    from gardien.core.runtime import Runtime
    from gardien.core.settings import Settings

    runtime = Runtime.start(Settings())
    ledger = Ledger(runtime)
    rss_before = _status_kb("VmRSS")
    started = time.perf_counter()
    result = ledger.export(org_id, fmt, EventFilter(), actor={"type": "system", "id": "benchmark"})  # type: ignore[arg-type]
    seconds = time.perf_counter() - started
    hwm = _status_kb("VmHWM")
    size = result.payload_path.stat().st_size
    count = result.manifest["count"]
    result.payload_path.unlink()
    result.manifest_path.unlink()
    runtime.close()
    return {"seconds": seconds, "count": count, "payload_bytes": size, "rss_before_kb": rss_before, "vmhwm_kb": hwm}


def _baseline(fmt: str, out: Path) -> dict[str, Any]:
    """The plain way: stream the table and write each row as JSON or CSV; no hash, no signature."""
    from benchmarks.workload import BASELINE_TABLE
    from gardien.core.db import make_engine
    from gardien.core.settings import Settings

    engine = make_engine(Settings().database_url)
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"baseline.{fmt}"
    rss_before = _status_kb("VmRSS")
    started = time.perf_counter()
    raw = engine.raw_connection()
    count = 0
    try:
        if engine.dialect.name == "sqlite":
            cursor = raw.cursor()
        else:
            cursor = raw.cursor(name="bench_baseline_export")  # type: ignore[call-arg]
            cursor.itersize = 5_000
        cursor.execute(f"SELECT * FROM {BASELINE_TABLE} ORDER BY id")
        names = [d[0] for d in cursor.description]
        with path.open("w", encoding="utf-8", newline="") as handle:
            table = csv.writer(handle, lineterminator="\r\n")
            if fmt == "csv":
                table.writerow(names)
            while rows := cursor.fetchmany(5_000):
                for row in rows:
                    if fmt == "csv":
                        table.writerow(row)
                    else:
                        handle.write(json.dumps(dict(zip(names, row, strict=True)), default=str))
                        handle.write("\n")
                count += len(rows)
            handle.flush()
            os.fsync(handle.fileno())
        cursor.close()
        raw.rollback()
    finally:
        raw.close()
    seconds = time.perf_counter() - started
    hwm = _status_kb("VmHWM")
    size = path.stat().st_size
    path.unlink()
    engine.dispose()
    return {"seconds": seconds, "count": count, "payload_bytes": size, "rss_before_kb": rss_before, "vmhwm_kb": hwm}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("what", choices=["gardien", "baseline"])
    parser.add_argument("--format", choices=["jsonl", "csv"], required=True)
    parser.add_argument("--org", help="organisation id (gardien)")
    parser.add_argument("--out", type=Path, help="output folder (baseline)")
    args = parser.parse_args()
    if args.what == "gardien":
        if not args.org:
            parser.error("--org is required")
        result = _gardien(args.org, args.format)
    else:
        if args.out is None:
            parser.error("--out is required")
        result = _baseline(args.format, args.out)
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
