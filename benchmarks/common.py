"""Plumbing shared by the benchmark groups: figures, scratch databases, child processes, progress."""

from __future__ import annotations

import contextlib
import json
import math
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import timeit
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_POSTGRES_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
INSTANCE_NAME = "gardien.bench"

_START = time.monotonic()


def log(message: str) -> None:
    """Progress goes to stderr; stdout carries only the figures."""
    print(f"[bench {time.monotonic() - _START:7.1f}s] {message}", file=sys.stderr, flush=True)


def percentile(sorted_values: Sequence[float], fraction: float) -> float:
    """Nearest-rank percentile of an already sorted, non-empty sequence."""
    rank = max(1, math.ceil(fraction * len(sorted_values)))
    return sorted_values[min(rank, len(sorted_values)) - 1]


def rounded(value: float, digits: int = 4) -> float:
    """Round to `digits` significant digits (figures are measurements, not exact numbers)."""
    if value == 0 or not math.isfinite(value):
        return value
    return round(value, max(0, digits - 1 - math.floor(math.log10(abs(value)))))


# --- figures ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Target:
    op: str  # ">=" or "<="
    value: float

    def met(self, value: float) -> bool:
        return value >= self.value if self.op == ">=" else value <= self.value

    def as_json(self) -> dict[str, Any]:
        return {"op": self.op, "value": self.value}


@dataclass(frozen=True)
class Baseline:
    name: str
    value: float
    unit: str

    def as_json(self) -> dict[str, Any]:
        return {"name": self.name, "value": rounded(self.value), "unit": self.unit}


def cpu_speed_us() -> float:
    """How fast this machine runs plain Python right now: µs for ``sum(range(1000))``, best of 3.

    A virtual machine's speed drifts (on one, this moved from 13 to 21 µs within an hour), and
    the baseline of the same run moves with it; this reading lets two runs be compared. ~0.1 s.
    """
    best = min(timeit.repeat("sum(range(1000))", number=2_000, repeat=3))
    return round(best / 2_000 * 1e6, 2)


class Reporter:
    """Writes one JSON line per figure to stdout and to bench-results/<timestamp>.jsonl."""

    def __init__(self, path: Path, common: dict[str, Any]) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.common = common
        self.handle: IO[str] = path.open("a", encoding="utf-8")
        self.figures = 0
        self.errors = 0
        self.missed: list[str] = []

    def close(self) -> None:
        self.handle.close()

    def _write(self, line: dict[str, Any]) -> None:
        text = json.dumps(line, ensure_ascii=False, default=str)
        print(text, flush=True)
        self.handle.write(text + "\n")
        self.handle.flush()

    def emit(
        self,
        *,
        bench: str,
        engine: str,
        value: float,
        unit: str,
        target: Target,
        baseline: Baseline,
        n: int,
        **context: Any,
    ) -> None:
        meets = target.met(value)
        line: dict[str, Any] = {
            "bench": bench,
            "engine": engine,
            "value": rounded(value),
            "unit": unit,
            "target": target.as_json(),
            "meets_target": meets,
            "baseline": baseline.as_json(),
            "n": n,
        }
        if baseline.value:
            line["ratio_to_baseline"] = rounded(value / baseline.value, 3)
        line.update(context)
        line["loadavg_1m"] = round(os.getloadavg()[0], 2)
        line["cpu_speed_us"] = cpu_speed_us()
        line.update(self.common)
        self.figures += 1
        if not meets:
            self.missed.append(f"{engine}/{bench}")
        log(
            f"FIGURE {engine}/{bench}: {rounded(value)} {unit} (target {target.op} {target.value}: "
            f"{'met' if meets else 'MISSED'}; baseline {rounded(baseline.value)} {baseline.unit})"
        )
        self._write(line)

    def error(self, *, bench: str, engine: str, error: str, **context: Any) -> None:
        """A figure that could not be measured: still one line, with value null and the error."""
        self.errors += 1
        log(f"ERROR {engine}/{bench}: {error}")
        line: dict[str, Any] = {
            "bench": bench,
            "engine": engine,
            "value": None,
            "unit": None,
            "target": None,
            "meets_target": False,
            "baseline": None,
            "n": None,
            "error": error,
        }
        line.update(context)
        line.update(self.common)
        self._write(line)


# --- scratch databases -----------------------------------------------------------------------


_PLACE_VARS = frozenset(
    {
        "GARDIEN_DATABASE_URL",
        "GARDIEN_KEYS_DIR",
        "GARDIEN_EXPORTS_DIR",
        "GARDIEN_INSTANCE_NAME",
        "GARDIEN_HOST",
        "GARDIEN_PORT",
    }
)


@dataclass
class Scratch:
    """One database for one group of figures, with its own keys and exports folders."""

    engine: str
    url: str
    directory: Path

    @property
    def keys_dir(self) -> Path:
        return self.directory / "keys"

    @property
    def exports_dir(self) -> Path:
        return self.directory / "exports"

    def settings(self, **overrides: Any) -> Any:
        from gardien.core.settings import Settings

        return Settings(
            database_url=self.url,
            keys_dir=self.keys_dir,
            exports_dir=self.exports_dir,
            instance_name=INSTANCE_NAME,
            **overrides,
        )

    def child_env(self, **extra: str) -> dict[str, str]:
        """Environment for a child process (server, CLI, exporter) working on this database."""
        # Keep the operator's tuning knobs (GARDIEN_SQLITE_SYNCHRONOUS…), never their database.
        env = {k: v for k, v in os.environ.items() if k not in _PLACE_VARS}
        env.update(
            GARDIEN_DATABASE_URL=self.url,
            GARDIEN_KEYS_DIR=str(self.keys_dir),
            GARDIEN_EXPORTS_DIR=str(self.exports_dir),
            GARDIEN_INSTANCE_NAME=INSTANCE_NAME,
            PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
            PYTHONUNBUFFERED="1",
        )
        env.update(extra)
        return env


@dataclass
class EngineEnv:
    """Everything one engine's run creates: a temp dir and, on PostgreSQL, temporary databases."""

    engine: str
    postgres_url: str
    root: Path = field(init=False)
    _created: list[str] = field(default_factory=list, init=False)

    def __post_init__(self) -> None:
        self.root = Path(tempfile.mkdtemp(prefix=f"gardien-bench-{self.engine}-"))

    def _admin_url(self) -> str:
        from sqlalchemy.engine import make_url

        return make_url(self.postgres_url).set(drivername="postgresql").render_as_string(False)

    def check(self) -> str:
        """The engine's version; raises when PostgreSQL is unreachable."""
        if self.engine == "sqlite":
            import sqlite3

            return f"SQLite {sqlite3.sqlite_version}"
        import psycopg

        with psycopg.connect(self._admin_url(), autocommit=True, connect_timeout=5) as conn:
            row = conn.execute("SHOW server_version").fetchone()
        return f"PostgreSQL {row[0] if row else '?'}"

    @contextlib.contextmanager
    def database(self, label: str) -> Iterator[Scratch]:
        """A fresh database, removed (SQLite file) or dropped (PostgreSQL) on exit."""
        directory = self.root / label
        directory.mkdir(parents=True)
        name = ""
        try:
            if self.engine == "sqlite":
                url = f"sqlite:///{directory / 'gardien.db'}"
            else:
                import psycopg
                from sqlalchemy.engine import make_url

                name = f"gardien_bench_{uuid.uuid4().hex[:10]}_{label.replace('-', '_')}"
                with psycopg.connect(self._admin_url(), autocommit=True, connect_timeout=5) as conn:
                    conn.execute(f'CREATE DATABASE "{name}"')
                self._created.append(name)
                url = make_url(self.postgres_url).set(database=name).render_as_string(False)
            yield Scratch(self.engine, url, directory)
        finally:
            if name:
                self._drop(name)
            shutil.rmtree(directory, ignore_errors=True)

    def _drop(self, name: str) -> None:
        import psycopg

        try:
            with psycopg.connect(self._admin_url(), autocommit=True, connect_timeout=5) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            if name in self._created:
                self._created.remove(name)
        except Exception as exc:
            log(f"could not drop PostgreSQL database {name}: {exc}")

    def close(self) -> None:
        for name in list(self._created):
            self._drop(name)
        shutil.rmtree(self.root, ignore_errors=True)


# --- child processes -------------------------------------------------------------------------


@dataclass(frozen=True)
class ChildResult:
    output: dict[str, Any]
    seconds: float


def run_child(module: str, args: Sequence[str], *, env: dict[str, str], timeout: float) -> ChildResult:
    """Run `python -m module args…` in a fresh interpreter; its last stdout line is JSON.

    The child's stderr (its progress) passes through. Memory figures are read by the child itself
    from /proc/self/status (VmHWM): on Linux, ru_maxrss of a child from wait4()/RUSAGE_CHILDREN
    keeps the high-water mark of the address space it had before exec(), i.e. the parent's, so it
    would report the parent's peak whenever that is the larger.
    """
    started = time.monotonic()
    proc = subprocess.Popen(
        [sys.executable, "-m", module, *args],
        stdout=subprocess.PIPE,
        stderr=None,
        stdin=subprocess.DEVNULL,
        env=env,
        cwd=ROOT,
    )
    try:
        out, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired as exc:
        proc.kill()
        proc.communicate()
        raise RuntimeError(f"{module} timed out after {timeout:.0f} s") from exc
    finally:
        if proc.poll() is None:  # interrupted: do not leave the child behind
            proc.kill()
            proc.wait()
    text = out.decode(errors="replace").strip()
    if proc.returncode != 0:
        raise RuntimeError(f"{module} exited with status {proc.returncode}: {text[-500:]}")
    if not text:
        raise RuntimeError(f"{module} printed no result")
    return ChildResult(json.loads(text.splitlines()[-1]), time.monotonic() - started)


def gardien_command() -> list[str]:
    """The `gardien` console script of this interpreter's environment."""
    script = Path(sys.executable).with_name("gardien")
    if script.exists():
        return [str(script)]
    return [sys.executable, "-c", "from gardien.cli import main; main()"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_http_ready(port: int, proc: subprocess.Popen[bytes], timeout: float = 60.0) -> None:
    """Poll GET /healthz on the loopback port until it answers 200."""
    import http.client

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the server exited with status {proc.returncode} before it was ready")
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            conn.request("GET", "/healthz")
            status = conn.getresponse().status
            conn.close()
            if status == 200:
                return
        except OSError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"the server on port {port} was not ready within {timeout:.0f} s")


def stop_process(proc: subprocess.Popen[bytes], timeout: float = 20.0) -> None:
    """SIGTERM (uvicorn shuts down gracefully), then SIGKILL if it lingers. Only our own child."""
    if proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(10)


def tail(path: Path, lines: int = 20) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


# --- configuration and in-process helpers ------------------------------------------------------


@dataclass(frozen=True)
class Config:
    quick: bool
    seed: int
    batch_size: int  # events per Ledger.append_batch call
    append_events: int  # figure 1, integer-only changes
    append_float_events: int  # figure 1, changes with floats
    large_events: int  # the ledger behind figures 3 to 5
    http_concurrency: int
    http_warmup: float
    http_duration: float
    proofs: int
    sca_requests: int = 20_000  # in-process decisions timed
    sca_rate: float = 500.0  # open-loop requests/s of the HTTP decision figure

    def as_context(self) -> dict[str, Any]:
        return {"quick": self.quick, "seed": self.seed}


@contextlib.contextmanager
def guarded(reporter: Reporter, bench: str, engine: str) -> Iterator[None]:
    """Report a failing figure (one JSON line with the error) and carry on with the next one."""
    try:
        yield
    except KeyboardInterrupt:
        raise
    except Exception as exc:
        import traceback

        traceback.print_exc(file=sys.stderr)
        reporter.error(bench=bench, engine=engine, error=f"{type(exc).__name__}: {exc}"[:2000])


@dataclass(frozen=True)
class CheckTimings:
    checks: int
    elapsed: float
    allowed: int
    base_checks: int
    base_elapsed: float
    base_allowed: int


def time_check(
    check: Callable[[str, str, str], bool],
    org: str,
    pairs: Sequence[tuple[str, str]],
    checks: int,
    query_per_check: Callable[[Sequence[tuple[str, str]]], tuple[float, int]],
    base_checks: int = 20_000,
) -> CheckTimings:
    """`checks` calls of an in-process check cycling over `pairs`, after one untimed pass that fills
    its cache; then the baseline, which returns (seconds, answers true), over the first pairs."""
    for subject, purpose in pairs:
        check(org, subject, purpose)
    allowed = 0
    started = time.perf_counter()
    for i in range(checks):
        subject, purpose = pairs[i % len(pairs)]
        allowed += check(org, subject, purpose)
    elapsed = time.perf_counter() - started
    base_elapsed, base_allowed = query_per_check(pairs[:base_checks])
    return CheckTimings(checks, elapsed, allowed, base_checks, base_elapsed, base_allowed)


@dataclass(frozen=True)
class CheckFigure:
    """An in-process check's rate against a query-per-check baseline on the same mix."""

    bench: str
    target: Target
    baseline: str
    timed: str

    def emit(self, reporter: Reporter, engine: str, cfg: Config, timings: CheckTimings, **context: Any) -> None:
        rate = timings.checks / timings.elapsed
        base_rate = timings.base_checks / timings.base_elapsed
        log(f"{engine}: {self.bench} {rate:,.0f} checks/s; baseline {base_rate:,.0f} checks/s")
        reporter.emit(
            bench=self.bench,
            engine=engine,
            value=rate,
            unit="checks/s",
            target=self.target,
            baseline=Baseline(self.baseline, base_rate, "checks/s"),
            n=timings.checks,
            **context,
            allowed_percent=rounded(100 * timings.allowed / timings.checks, 3),
            baseline_allowed_percent=rounded(100 * timings.base_allowed / timings.base_checks, 3),
            baseline_n=timings.base_checks,
            timed=self.timed,
            **cfg.as_context(),
        )


def open_runtime(scratch: Scratch, **overrides: Any) -> Any:
    """A migrated gardien Runtime on the scratch database."""
    from gardien.core.runtime import Runtime
    from gardien.migrations import upgrade

    runtime = Runtime.start(scratch.settings(**overrides))
    upgrade(runtime.engine)
    return runtime


def new_org(runtime: Any, slug: str) -> str:
    from gardien.core import service

    with runtime.sessions.begin() as session:
        org_id: str = service.create_org(session, slug=slug, name=f"Benchmark {slug}").id
    return org_id
