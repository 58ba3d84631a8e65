"""A small HTTP/1.1 load generator: N keep-alive connections, each one request at a time.

Run as its own process (`python -m benchmarks.loadgen`) so that its CPU is not the server's.
Raw asyncio streams (uvloop when installed) and requests serialised in advance: on a 2-core box a
general-purpose client such as httpx spends more CPU per request than the server and would measure
itself. Loopback only, bounded in time: warm-up, then a fixed measurement window, then stop.

Prints one JSON line: throughput over the window, latency percentiles of the requests that both
started and finished inside it, status counts, and the CPU the client and the server used.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import sys
import time
from dataclasses import dataclass, field
from typing import Any

from benchmarks import workload
from benchmarks.common import percentile

PATH = "/api/v1/audit/events"


@dataclass
class Stats:
    window_start: float
    window_end: float
    latencies: list[float] = field(default_factory=list)
    completed_in_window: int = 0
    statuses: dict[int, int] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    requests: int = 0
    max_requests: int = 1_000_000


def build_requests(host: str, port: int, token: str, count: int, seed: int) -> list[bytes]:
    head = (
        f"POST {PATH} HTTP/1.1\r\nHost: {host}:{port}\r\nAuthorization: Bearer {token}\r\n"
        "Content-Type: application/json\r\nAccept: application/json\r\n"
    )
    out = []
    for event in workload.event_pool(count, seed=seed):
        body = json.dumps(event, ensure_ascii=False, separators=(",", ":")).encode()
        out.append(f"{head}Content-Length: {len(body)}\r\n\r\n".encode() + body)
    return out


async def read_response(reader: asyncio.StreamReader) -> tuple[int, bool]:
    """(status, server closes the connection). Bodies are read by Content-Length."""
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head[9:12])
    length = None
    close = False
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        name = name.strip().lower()
        if name == b"content-length":
            length = int(value)
        elif name == b"connection" and value.strip().lower() == b"close":
            close = True
        elif name == b"transfer-encoding":
            raise ValueError("chunked responses are not expected from this endpoint")
    if length is None:
        raise ValueError("response without Content-Length")
    if length:
        await reader.readexactly(length)
    return status, close


async def connection(
    host: str, port: int, requests: list[bytes], offset: int, step: int, stats: Stats, deadline: float
) -> None:
    index = offset
    reader = writer = None
    while time.perf_counter() < deadline and stats.requests < stats.max_requests:
        if writer is None:
            reader, writer = await asyncio.open_connection(host, port)
        assert reader is not None
        t0 = time.perf_counter()
        if t0 >= deadline:
            break
        writer.write(requests[index % len(requests)])
        index += step
        stats.requests += 1
        try:
            status, close = await read_response(reader)
        except (OSError, asyncio.IncompleteReadError, ValueError) as exc:
            if len(stats.errors) < 20:
                stats.errors.append(f"{type(exc).__name__}: {exc}")
            stats.statuses[0] = stats.statuses.get(0, 0) + 1
            writer.close()
            reader = writer = None
            await asyncio.sleep(0.01)
            continue
        t1 = time.perf_counter()
        if stats.window_start <= t1 <= stats.window_end:
            stats.completed_in_window += 1
            stats.statuses[status] = stats.statuses.get(status, 0) + 1
            if t0 >= stats.window_start:
                stats.latencies.append(t1 - t0)
        if close:
            writer.close()
            reader = writer = None
    if writer is not None:
        writer.close()


def _cpu_ticks(pid: int) -> int | None:
    """utime + stime of a process, in clock ticks, from /proc (None when unavailable)."""
    try:
        with open(f"/proc/{pid}/stat") as handle:
            fields = handle.read().rsplit(")", 1)[1].split()
        return int(fields[11]) + int(fields[12])
    except (OSError, IndexError, ValueError):
        return None


def _self_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def main_async(args: argparse.Namespace) -> dict[str, Any]:
    token = os.environ["BENCH_TOKEN"]
    requests = build_requests(args.host, args.port, token, args.distinct, args.seed)
    start = time.perf_counter()
    stats = Stats(
        window_start=start + args.warmup,
        window_end=start + args.warmup + args.duration,
        max_requests=args.max_requests,
    )
    deadline = stats.window_end
    tasks = [
        asyncio.create_task(connection(args.host, args.port, requests, i, args.concurrency, stats, deadline))
        for i in range(args.concurrency)
    ]
    samples: dict[str, Any] = {}

    async def sample_cpu() -> None:
        await asyncio.sleep(max(0.0, stats.window_start - time.perf_counter()))
        samples["server0"], samples["self0"] = _cpu_ticks(args.server_pid), _self_cpu()
        await asyncio.sleep(max(0.0, stats.window_end - time.perf_counter()))
        samples["server1"], samples["self1"] = _cpu_ticks(args.server_pid), _self_cpu()

    sampler = asyncio.create_task(sample_cpu())
    results = await asyncio.wait_for(asyncio.gather(*tasks, return_exceptions=True), args.warmup + args.duration + 30)
    await sampler
    failures = [f"{type(r).__name__}: {r}" for r in results if isinstance(r, BaseException)]
    window = stats.window_end - stats.window_start
    lat = sorted(stats.latencies)

    def pct(fraction: float) -> float | None:
        return round(percentile(lat, fraction) * 1000, 3) if lat else None

    tick = os.sysconf("SC_CLK_TCK")
    server_cpu = None
    if samples.get("server0") is not None and samples.get("server1") is not None:
        server_cpu = round((samples["server1"] - samples["server0"]) / tick / window * 100, 1)
    ok = sum(count for status, count in stats.statuses.items() if 200 <= status < 300)
    return {
        "window_seconds": round(window, 3),
        "completed": stats.completed_in_window,
        "ok": ok,
        "throughput": round(ok / window, 1),
        "statuses": {str(k): v for k, v in sorted(stats.statuses.items())},
        "latency_ms": {
            "p50": pct(0.5),
            "p90": pct(0.9),
            "p99": pct(0.99),
            "p999": pct(0.999),
            "max": round(lat[-1] * 1000, 3) if lat else None,
            "samples": len(lat),
        },
        "requests_sent": stats.requests,
        "errors": stats.errors + failures,
        "client_cpu_percent": round((samples["self1"] - samples["self0"]) / window * 100, 1),
        "server_cpu_percent": server_cpu,
        "event_loop": type(asyncio.get_running_loop()).__module__.split(".")[0],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--warmup", type=float, default=3.0)
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--distinct", type=int, default=2_000, help="distinct request bodies")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--max-requests", type=int, default=1_000_000, help="hard cap on requests sent")
    parser.add_argument("--server-pid", type=int, default=0, help="to report the server's CPU")
    args = parser.parse_args()
    if args.host not in ("127.0.0.1", "::1", "localhost"):
        parser.error("the load generator only targets loopback")
    try:
        import uvloop

        runner: Any = uvloop.run
    except ImportError:
        runner = asyncio.run
    result = runner(main_async(args))
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    sys.exit(main())
