"""A small HTTP/1.1 load generator: N keep-alive connections, each one request at a time.

Run as its own process (`python -m benchmarks.loadgen`) so that its CPU is not the server's.
Raw asyncio streams (uvloop when installed) and requests serialised in advance: on a 2-core box a
general-purpose client such as httpx spends more CPU per request than the server and would measure
itself. Loopback only, bounded in time: warm-up, then a fixed measurement window, then stop.

Two modes. Closed loop (the default): every connection sends its next request as soon as the
previous one is answered, so the rate is whatever the server sustains. Open loop (`--rate R`):
requests are due on a fixed schedule, one every 1/R s, whatever the answers; each due request goes
to an idle connection of the pool (or waits for one), and its latency runs from the time it was
due, not from the time it was sent, so that a slow answer delays nothing unmeasured (no
coordinated omission). The requests due in the window are all waited for, up to a drain timeout.

Workloads (`--workload`): `audit` (POST /api/v1/audit/events), `sca` (POST /api/v1/sca/decide),
`consent` (POST /api/v1/consent/records) and `healthz` (GET /healthz, the framework floor).

Prints one JSON line: throughput over the window, latency percentiles (closed loop: of the requests
that both started and finished inside it; open loop: of the requests due inside it), status counts,
and the CPU the client and the server used.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import resource
import sys
import time
from dataclasses import dataclass, field
from typing import Any

from benchmarks import workload
from benchmarks.common import percentile

PATH = "/api/v1/audit/events"
SCA_PATH = "/api/v1/sca/decide"
CONSENT_PATH = "/api/v1/consent/records"
WORKLOADS = ("audit", "sca", "consent", "healthz")
DRAIN_SECONDS = 60.0


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
    # Open loop only: how late each request due in the window was written, and what was not answered.
    lags: list[float] = field(default_factory=list)
    due_in_window: int = 0
    answered_due_in_window: int = 0
    sent_in_window: int = 0
    # `--tally FIELD`: how often each string value of that member occurs in the answers.
    tally: dict[str, int] = field(default_factory=dict)
    tally_pattern: re.Pattern[bytes] | None = None

    def count_body(self, body: bytes) -> None:
        if self.tally_pattern is None:
            return
        found = self.tally_pattern.search(body)
        value = found.group(1).decode() if found else "(absent)"
        self.tally[value] = self.tally.get(value, 0) + 1


def build_requests(host: str, port: int, token: str, count: int, seed: int, kind: str = "audit") -> list[bytes]:
    if kind == "healthz":
        return [f"GET /healthz HTTP/1.1\r\nHost: {host}:{port}\r\nAccept: application/json\r\n\r\n".encode()]
    if kind == "sca":
        path, bodies = SCA_PATH, [body for _, body in workload.sca_request_pool(count, seed=seed)]
    elif kind == "consent":
        path, bodies = CONSENT_PATH, workload.consent_choice_pool(count, seed=seed)
    else:
        path, bodies = PATH, workload.event_pool(count, seed=seed)
    head = (
        f"POST {path} HTTP/1.1\r\nHost: {host}:{port}\r\nAuthorization: Bearer {token}\r\n"
        "Content-Type: application/json\r\nAccept: application/json\r\n"
    )
    out = []
    for item in bodies:
        body = json.dumps(item, ensure_ascii=False, separators=(",", ":")).encode()
        out.append(f"{head}Content-Length: {len(body)}\r\n\r\n".encode() + body)
    return out


async def read_response(reader: asyncio.StreamReader) -> tuple[int, bool, bytes]:
    """(status, server closes the connection, body). Bodies are read by Content-Length."""
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
    body = await reader.readexactly(length) if length else b""
    return status, close, body


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
            status, close, body = await read_response(reader)
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
            stats.count_body(body)
            if t0 >= stats.window_start:
                stats.latencies.append(t1 - t0)
        if close:
            writer.close()
            reader = writer = None
    if writer is not None:
        writer.close()


async def open_loop(host: str, port: int, requests: list[bytes], rate: float, pool: int, stats: Stats) -> None:
    """Requests due every 1/rate s from the start of the warm-up to the end of the window.

    `pool` connections take the due requests in turn; a request that finds them all busy waits in
    the queue, and that wait is part of its latency, which runs from the time it was due.
    """
    queue: asyncio.Queue[tuple[int, float] | None] = asyncio.Queue()
    interval = 1.0 / rate
    first = time.perf_counter()

    async def dispatch() -> None:
        index = 0
        while stats.requests < stats.max_requests:
            due = first + index * interval
            if due >= stats.window_end:
                break
            delay = due - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            queue.put_nowait((index, due))
            stats.requests += 1
            if due >= stats.window_start:
                stats.due_in_window += 1
            index += 1
        for _ in range(pool):
            queue.put_nowait(None)

    def answered(due: float, status: int, body: bytes, sent: float | None, done: float) -> None:
        if 200 <= status < 300 and stats.window_start <= done <= stats.window_end:
            stats.completed_in_window += 1
        if sent is not None and stats.window_start <= sent <= stats.window_end:
            stats.sent_in_window += 1
        if due < stats.window_start:
            return
        stats.answered_due_in_window += 1
        stats.statuses[status] = stats.statuses.get(status, 0) + 1
        if status:
            stats.count_body(body)
            stats.latencies.append(done - due)
        if sent is not None:
            stats.lags.append(sent - due)

    async def connection() -> None:
        reader: asyncio.StreamReader | None = None
        writer: asyncio.StreamWriter | None = None
        while (item := await queue.get()) is not None:
            index, due = item
            sent = None
            try:
                if writer is None:
                    reader, writer = await asyncio.open_connection(host, port)
                assert reader is not None
                sent = time.perf_counter()
                writer.write(requests[index % len(requests)])
                status, close, body = await read_response(reader)
            except (OSError, asyncio.IncompleteReadError, ValueError) as exc:
                if len(stats.errors) < 20:
                    stats.errors.append(f"{type(exc).__name__}: {exc}")
                answered(due, 0, b"", sent, time.perf_counter())
                if writer is not None:
                    writer.close()
                reader = writer = None
                continue
            answered(due, status, body, sent, time.perf_counter())
            if close:
                writer.close()
                reader = writer = None
        if writer is not None:
            writer.close()

    tasks = [asyncio.create_task(dispatch()), *(asyncio.create_task(connection()) for _ in range(pool))]
    timeout = stats.window_end + DRAIN_SECONDS - time.perf_counter()
    done, pending = await asyncio.wait(tasks, timeout=timeout)
    for task in pending:
        task.cancel()
    for task in done:
        if task.exception() is not None:
            stats.errors.append(f"{type(task.exception()).__name__}: {task.exception()}")
    if pending:
        stats.errors.append(f"{len(pending)} connections still waiting {DRAIN_SECONDS:g} s after the window")


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
    requests = build_requests(args.host, args.port, token, args.distinct, args.seed, args.workload)
    start = time.perf_counter()
    stats = Stats(
        window_start=start + args.warmup,
        window_end=start + args.warmup + args.duration,
        max_requests=args.max_requests,
    )
    if args.tally:
        stats.tally_pattern = re.compile(b'"' + re.escape(args.tally.encode()) + rb'"\s*:\s*"([^"]{0,64})"')
    deadline = stats.window_end
    if args.rate:
        tasks = [asyncio.create_task(open_loop(args.host, args.port, requests, args.rate, args.concurrency, stats))]
    else:
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
    limit = args.warmup + args.duration + DRAIN_SECONDS + 10
    results = await asyncio.wait_for(asyncio.gather(*tasks, return_exceptions=True), limit)
    await sampler
    failures = [f"{type(r).__name__}: {r}" for r in results if isinstance(r, BaseException)]
    window = stats.window_end - stats.window_start
    lat = sorted(stats.latencies)

    def pct(fraction: float, values: list[float] = lat) -> float | None:
        return round(percentile(values, fraction) * 1000, 3) if values else None

    tick = os.sysconf("SC_CLK_TCK")
    server_cpu = None
    if samples.get("server0") is not None and samples.get("server1") is not None:
        server_cpu = round((samples["server1"] - samples["server0"]) / tick / window * 100, 1)
    ok = sum(count for status, count in stats.statuses.items() if 200 <= status < 300)
    result: dict[str, Any] = {
        "window_seconds": round(window, 3),
        "completed": stats.completed_in_window,
        "ok": ok,
        "throughput": round(ok / window, 1),
        "statuses": {str(k): v for k, v in sorted(stats.statuses.items())},
        "latency_ms": {
            "p50": pct(0.5),
            "p90": pct(0.9),
            "p95": pct(0.95),
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
        "mode": "open" if args.rate else "closed",
    }
    if args.tally:
        result["tally"] = dict(sorted(stats.tally.items(), key=lambda item: -item[1]))
    if args.rate:
        # `ok` and `throughput` count the answers that arrived inside the window, whenever due.
        result["ok"] = stats.completed_in_window
        result["throughput"] = round(stats.completed_in_window / window, 1)
        lags = sorted(stats.lags)
        result.update(
            rate=args.rate,
            due=stats.due_in_window,
            unanswered=stats.due_in_window - stats.answered_due_in_window,
            sent_rate=round(stats.sent_in_window / window, 1),
            send_lag_ms={"p50": pct(0.5, lags), "p99": pct(0.99, lags), "max": pct(1.0, lags)},
            connections=args.concurrency,
        )
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--concurrency", type=int, default=32, help="connections (open loop: the pool)")
    parser.add_argument("--workload", choices=WORKLOADS, default="audit")
    parser.add_argument("--rate", type=float, default=0.0, help="open loop at this many requests/s (0: closed loop)")
    parser.add_argument("--tally", default="", help="count the values of this string member of the answers")
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
