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

import contextlib
import os
import secrets
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
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


def gardien_cli(args: list[str], env: dict[str, str], cwd: Path) -> str:
    """Run `gardien ARGS…` as an operator would; its stdout."""
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


def deploy_gardien(scratch: Scratch) -> tuple[dict[str, str], str]:
    """`gardien migrate`, `admin create-org bench`, `admin create-key --role service`: (env, token)."""
    env = scratch.child_env()
    log(f"{scratch.engine}: http: gardien migrate, create-org, create-key")
    gardien_cli(["migrate"], env, scratch.directory)
    gardien_cli(["admin", "create-org", "bench", "--name", "Benchmark"], env, scratch.directory)
    token = gardien_cli(
        ["admin", "create-key", "bench", "--role", "service", "--name", "loadgen"], env, scratch.directory
    ).split()[-1]
    return env, token


def _gardien(scratch: Scratch, cfg: Config) -> dict[str, Any]:
    env, token = deploy_gardien(scratch)
    with server(scratch, [*gardien_command(), "serve"], env, "gardien") as running:
        return load(running, token, cfg)


def _baseline(scratch: Scratch, cfg: Config) -> dict[str, Any]:
    token = f"gdn_{secrets.token_urlsafe(32)}"
    env = scratch.child_env(BENCH_TOKEN=token)
    command = [sys.executable, "-m", "benchmarks.baseline_server"]
    with server(scratch, command, env, "baseline") as running:
        return load(running, token, cfg)


@dataclass(frozen=True)
class Server:
    engine: str
    label: str
    proc: subprocess.Popen[bytes]
    port: int
    log_path: Path

    def check_alive(self) -> None:
        if self.proc.poll() is not None:
            raise RuntimeError(f"the {self.label} server died during the run:\n{tail(self.log_path)}")


@contextlib.contextmanager
def server(scratch: Scratch, command: list[str], env: dict[str, str], label: str) -> Iterator[Server]:
    """A server subprocess on a free loopback port, ready to answer; stopped on exit."""
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
        yield Server(scratch.engine, label, proc, port, server_log)
    except Exception:
        log(f"{label} server log:\n{tail(server_log)}")
        raise
    finally:
        stop_process(proc)


def load(running: Server, token: str, cfg: Config, extra: tuple[str, ...] = (), label: str = "") -> dict[str, Any]:
    """Run benchmarks.loadgen against the server (closed loop unless `extra` says otherwise)."""
    label = label or running.label
    mode = f"{'open loop over ' if '--rate' in extra else ''}{cfg.http_concurrency} connections"
    log(f"{running.engine}: http: {label}: {mode}, {cfg.http_warmup:g} s warm-up + {cfg.http_duration:g} s measured")
    client_env = {k: v for k, v in os.environ.items() if not k.startswith("GARDIEN_")}
    client_env.update(
        BENCH_TOKEN=token,
        PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
    )
    result = run_child(
        "benchmarks.loadgen",
        [
            "--port",
            str(running.port),
            "--concurrency",
            str(cfg.http_concurrency),
            "--warmup",
            str(cfg.http_warmup),
            "--duration",
            str(cfg.http_duration),
            "--server-pid",
            str(running.proc.pid),
            "--seed",
            str(cfg.seed),
            *extra,
        ],
        env=client_env,
        timeout=cfg.http_warmup + cfg.http_duration + 120,
    ).output
    running.check_alive()
    latency = result["latency_ms"]
    log(
        f"{running.engine}: http: {label}: {result['throughput']:.0f} ok/s, p50 {latency['p50']} ms, "
        f"p99 {latency['p99']} ms, statuses {result['statuses']}"
    )
    if result["errors"]:
        log(f"{running.engine}: http: {label}: client errors: {result['errors'][:3]}")
    return result
