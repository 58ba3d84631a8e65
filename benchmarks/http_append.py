"""Figure 2: single-event appends over HTTP at concurrency 32, against a real `gardien serve`.

The server is a subprocess on a free loopback port with its own database and keys folder: the
benchmark runs `gardien migrate`, `gardien admin create-org` and `gardien admin create-key --role
service` as a deployment would, then `gardien serve`. The load comes from another process
(benchmarks.loadgen: raw asyncio HTTP/1.1 keep-alive, one request in flight per connection), which
warms up, then counts 201 answers over a fixed window and times the requests inside it.

Baseline: the same requests against benchmarks.baseline_server (same uvicorn and FastAPI setup,
same request validation, one plain INSERT + COMMIT per event into a django-auditlog-like table),
on its own fresh database of the same engine, measured the same way.
"""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
from pathlib import Path
from typing import Any

from benchmarks.common import (
    ROOT,
    Baseline,
    Config,
    EngineEnv,
    Reporter,
    Scratch,
    Target,
    free_port,
    gardien_command,
    guarded,
    log,
    run_child,
    stop_process,
    tail,
    wait_http_ready,
)

GROUP = "http_append"
THROUGHPUT = Target(">=", 3_000)
P99 = Target("<=", 50)
BASELINE_NAME = (
    "same requests, uvicorn + FastAPI handler doing one plain INSERT + COMMIT per event "
    "(django-auditlog-like row, no integrity)"
)


def run(env: EngineEnv, cfg: Config, reporter: Reporter) -> None:
    with guarded(reporter, GROUP, env.engine):
        with env.database("http-gardien") as scratch:
            gardien = _gardien(scratch, cfg)
        with env.database("http-baseline") as scratch:
            base = _baseline(scratch, cfg)
        common: dict[str, Any] = {
            "concurrency": cfg.http_concurrency,
            "warmup_seconds": cfg.http_warmup,
            "window_seconds": gardien["window_seconds"],
            "statuses": gardien["statuses"],
            "errors": gardien["errors"][:5],
            "latency_ms": gardien["latency_ms"],
            "server_cpu_percent": gardien["server_cpu_percent"],
            "client_cpu_percent": gardien["client_cpu_percent"],
            "baseline_latency_ms": base["latency_ms"],
            "baseline_statuses": base["statuses"],
            "baseline_server_cpu_percent": base["server_cpu_percent"],
            "server": "gardien serve (uvicorn, 1 process, group commit)",
            "client": f"raw asyncio HTTP/1.1 keep-alive ({gardien['event_loop']}), separate process",
            "endpoint": "POST /api/v1/audit/events",
            **cfg.as_context(),
        }
        reporter.emit(
            bench="http_append_throughput",
            engine=env.engine,
            value=gardien["throughput"],
            unit="events/s",
            target=THROUGHPUT,
            baseline=Baseline(BASELINE_NAME, base["throughput"], "events/s"),
            n=gardien["ok"],
            **common,
        )
        p99 = gardien["latency_ms"]["p99"]
        if p99 is None:
            raise RuntimeError("no request completed inside the measurement window")
        reporter.emit(
            bench="http_append_latency_p99",
            engine=env.engine,
            value=p99,
            unit="ms",
            target=P99,
            baseline=Baseline(BASELINE_NAME + ", p99", base["latency_ms"]["p99"] or 0.0, "ms"),
            n=gardien["latency_ms"]["samples"],
            p50_ms=gardien["latency_ms"]["p50"],
            baseline_p50_ms=base["latency_ms"]["p50"],
            **common,
        )


def _cli(args: list[str], env: dict[str, str], cwd: Path) -> str:
    done = subprocess.run(
        [*gardien_command(), *args],
        env=env,
        cwd=cwd,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"gardien {' '.join(args[:3])} failed ({done.returncode}): {done.stderr[-800:]}")
    return done.stdout


def _gardien(scratch: Scratch, cfg: Config) -> dict[str, Any]:
    env = scratch.child_env()
    log(f"{scratch.engine}: http: gardien migrate, create-org, create-key")
    _cli(["migrate"], env, scratch.directory)
    _cli(["admin", "create-org", "bench", "--name", "Benchmark"], env, scratch.directory)
    token = _cli(
        ["admin", "create-key", "bench", "--role", "service", "--name", "loadgen"], env, scratch.directory
    ).split()[-1]
    return _serve(scratch, [*gardien_command(), "serve"], env, token, cfg, "gardien")


def _baseline(scratch: Scratch, cfg: Config) -> dict[str, Any]:
    token = f"gdn_{secrets.token_urlsafe(32)}"
    env = scratch.child_env(BENCH_TOKEN=token)
    command = [sys.executable, "-m", "benchmarks.baseline_server"]
    return _serve(scratch, command, env, token, cfg, "baseline")


def _serve(
    scratch: Scratch, command: list[str], env: dict[str, str], token: str, cfg: Config, label: str
) -> dict[str, Any]:
    port = free_port()
    server_log = scratch.directory / f"{label}-server.log"
    log(f"{scratch.engine}: http: starting the {label} server on 127.0.0.1:{port}")
    with server_log.open("wb") as handle:
        proc = subprocess.Popen(
            [*command, "--host", "127.0.0.1", "--port", str(port)],
            stdout=handle,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=env,
            cwd=scratch.directory,
        )
    try:
        wait_http_ready(port, proc)
        log(
            f"{scratch.engine}: http: {label}: {cfg.http_concurrency} connections, "
            f"{cfg.http_warmup:g} s warm-up + {cfg.http_duration:g} s measured"
        )
        client_env = {k: v for k, v in os.environ.items() if not k.startswith("GARDIEN_")}
        client_env.update(
            BENCH_TOKEN=token,
            PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
        )
        result = run_child(
            "benchmarks.loadgen",
            [
                "--port",
                str(port),
                "--concurrency",
                str(cfg.http_concurrency),
                "--warmup",
                str(cfg.http_warmup),
                "--duration",
                str(cfg.http_duration),
                "--server-pid",
                str(proc.pid),
                "--seed",
                str(cfg.seed),
            ],
            env=client_env,
            timeout=cfg.http_warmup + cfg.http_duration + 120,
        ).output
        if proc.poll() is not None:
            raise RuntimeError(f"the {label} server died during the run:\n{tail(server_log)}")
        latency = result["latency_ms"]
        log(
            f"{scratch.engine}: http: {label}: {result['throughput']:.0f} ok/s, p50 {latency['p50']} ms, "
            f"p99 {latency['p99']} ms, statuses {result['statuses']}"
        )
        if result["errors"]:
            log(f"{scratch.engine}: http: {label}: client errors: {result['errors'][:3]}")
        return result
    except Exception:
        log(f"{label} server log:\n{tail(server_log)}")
        raise
    finally:
        stop_process(proc)
