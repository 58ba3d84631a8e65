"""Group commit: concurrent appends in one process share one transaction and one fsync.

Requests put their prepared events on a queue and wait on a future; one thread takes everything
queued, seals it in a single transaction and resolves the futures only after the commit, so an
acknowledged event is a durable one. The same thread signs a checkpoint for any organisation whose
tail has waited a checkpoint interval, so a quiet ledger is still sealed within about a second.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Connection, Engine, select

from gardien.audit.models import HEADS
from gardien.audit.sealing import PreparedEvent, Sealed, Sealer
from gardien.core.clock import utcnow
from gardien.core.db import write_transaction
from gardien.core.errors import Problem

log = logging.getLogger(__name__)


# Work another capability runs inside the ledger's transaction: it changes its own tables through
# the connection and returns its result and the events that record the change, sealed in the same
# commit. The change and its audit trail are durable together or not at all.
Work = Callable[[Connection], tuple[Any, list[PreparedEvent]]]
# Many requests' work done as one: one (result, events) per item, in the items' order.
BatchRunner = Callable[[Connection, list[Any]], list[tuple[Any, list[PreparedEvent]]]]


@dataclass(frozen=True)
class BatchWork:
    """Work that the writer may run together with its neighbours of the same runner.

    Consecutive jobs whose work is a BatchWork with the same runner are handed to it in one call,
    so that a capability reads and writes the rows of a whole group in a few statements instead of
    a few per request. The runner must give each item what it would have got alone, in order: a
    later item sees what an earlier one changed. Alone (one item), it is ordinary work.
    """

    runner: BatchRunner
    item: Any

    def __call__(self, conn: Connection) -> tuple[Any, list[PreparedEvent]]:
        return self.runner(conn, [self.item])[0]


@dataclass
class _Job:
    org_id: str
    events: list[PreparedEvent]
    future: Future[Any] = field(default_factory=Future)
    # Set for jobs submitted from an event loop: resolved there, a whole batch per wake-up.
    waiter: asyncio.Future[Any] | None = None
    work: Work | None = None
    # What `work` returned in the transaction being committed.
    result: Any = None
    produced: list[PreparedEvent] = field(default_factory=list)

    def size(self) -> int:
        return len(self.events) if self.work is None else max(1, len(self.produced))

    def outcome(self, sealed: list[Sealed]) -> Any:
        return sealed if self.work is None else (self.result, sealed)


def _not_running() -> Problem:
    # A request that arrives while the server shuts down: retryable, like any other 503.
    return Problem(503, "ledger-unavailable", "Ledger unavailable", "the ledger writer is not running; retry")


def _settle(outcomes: list[tuple[asyncio.Future[Any], Any]]) -> None:
    for waiter, outcome in outcomes:
        if waiter.done():
            continue  # the request was cancelled (client gone); its events are sealed all the same
        if isinstance(outcome, BaseException):
            waiter.set_exception(outcome)
        else:
            waiter.set_result(outcome)


class LedgerWriter:
    def __init__(
        self,
        engine: Engine,
        sealer: Sealer,
        *,
        max_group: int = 512,
        checkpoint_interval: float = 1.0,
    ) -> None:
        self.engine = engine
        self.sealer = sealer
        self.max_group = max_group
        self.checkpoint_interval = checkpoint_interval
        self._queue: deque[_Job] = deque()
        self._cv = threading.Condition()
        self._stopping = False
        self._thread: threading.Thread | None = None
        self._last_sweep = time.monotonic()

    @property
    def running(self) -> bool:
        return self._thread is not None and not self._stopping

    def start(self) -> None:
        if self._thread is None:
            self._stopping = False
            self._thread = threading.Thread(target=self._run, name="gardien-ledger-writer", daemon=True)
            self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        with self._cv:
            self._stopping = True
            self._cv.notify()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def submit(self, org_id: str, events: list[PreparedEvent]) -> Future[list[Sealed]]:
        job = _Job(org_id, events)
        self._enqueue(job)
        return job.future

    def _take(self) -> list[_Job]:
        jobs: list[_Job] = []
        count = 0
        while self._queue and (not jobs or count + self._queue[0].size() <= self.max_group):
            job = self._queue.popleft()
            jobs.append(job)
            count += job.size()
        return jobs

    def _run(self) -> None:
        while True:
            with self._cv:
                if not self._queue and not self._stopping:
                    self._cv.wait(self.checkpoint_interval)
                jobs = self._take()
                stopping = self._stopping and not self._queue
            if jobs:
                self._commit(jobs)
            if time.monotonic() - self._last_sweep >= self.checkpoint_interval or stopping:
                self._sweep_checkpoints()
            if stopping and not jobs:
                return

    async def submit_async(self, org_id: str, events: list[PreparedEvent]) -> list[Sealed]:
        """Like submit(), awaited: the batch's waiters are woken together, once per loop."""
        waiter: asyncio.Future[list[Sealed]] = asyncio.get_running_loop().create_future()
        self._enqueue(_Job(org_id, events, waiter=waiter))
        return await waiter

    def submit_work(self, org_id: str, work: Work) -> Future[tuple[Any, list[Sealed]]]:
        """Run `work` in the next group's transaction and seal the events it returns with it."""
        job = _Job(org_id, [], work=work)
        self._enqueue(job)
        return job.future

    async def submit_work_async(self, org_id: str, work: Work) -> tuple[Any, list[Sealed]]:
        waiter: asyncio.Future[tuple[Any, list[Sealed]]] = asyncio.get_running_loop().create_future()
        self._enqueue(_Job(org_id, [], waiter=waiter, work=work))
        return await waiter

    def _enqueue(self, job: _Job) -> None:
        with self._cv:
            if self._stopping or self._thread is None:
                raise _not_running()
            self._queue.append(job)
            self._cv.notify()

    def _commit(self, jobs: list[_Job]) -> None:
        try:
            results = self._seal_group(jobs)
        except Exception as exc:
            # One bad job must not sink its neighbours: retry each alone, so only it fails.
            if len(jobs) == 1:
                if not isinstance(exc, Problem):
                    log.exception("ledger append failed")
                    exc = Problem(
                        503, "ledger-unavailable", "Ledger unavailable", "the ledger could not record the event"
                    )
                self._deliver(jobs, [exc])
                return
            for job in jobs:
                self._commit([job])
            return
        self._deliver(jobs, results)

    @staticmethod
    def _deliver(jobs: list[_Job], outcomes: Sequence[Any]) -> None:
        by_loop: dict[asyncio.AbstractEventLoop, list[tuple[asyncio.Future[Any], Any]]] = {}
        for job, outcome in zip(jobs, outcomes, strict=True):
            if job.waiter is not None:
                by_loop.setdefault(job.waiter.get_loop(), []).append((job.waiter, outcome))
            elif isinstance(outcome, BaseException):
                job.future.set_exception(outcome)
            else:
                job.future.set_result(outcome)
        for loop, outcomes_of_loop in by_loop.items():
            try:
                loop.call_soon_threadsafe(_settle, outcomes_of_loop)
            except RuntimeError:
                log.warning("an event loop closed before its appends were acknowledged")

    def _seal_group(self, jobs: list[_Job]) -> list[Any]:
        # Once per group, on this thread rather than per request on the event loop: seal with the
        # keys in force now, since `gardien keys rotate` may have run in another process.
        self.sealer.keyring.reload_if_changed()
        now = utcnow()
        by_org: dict[str, list[_Job]] = {}
        for job in jobs:
            by_org.setdefault(job.org_id, []).append(job)
        sealed_by_job: dict[int, list[Sealed]] = {}
        with write_transaction(self.engine) as conn:
            # Works run first, in arrival order, so that later ones see what earlier ones wrote.
            for run in _runs_of_work(jobs):
                work = run[0].work
                if isinstance(work, BatchWork) and len(run) > 1:
                    items = [job.work.item for job in run if isinstance(job.work, BatchWork)]
                    for job, (result, produced) in zip(run, work.runner(conn, items), strict=True):
                        job.result, job.produced = result, produced
                elif work is not None:
                    run[0].result, run[0].produced = work(conn)
            for org_id, org_jobs in by_org.items():
                events = [e for j in org_jobs for e in (j.produced if j.work is not None else j.events)]
                sealed = self.sealer.seal(conn, org_id, events, now) if events else []
                start = 0
                for job in org_jobs:
                    count = len(job.produced if job.work is not None else job.events)
                    sealed_by_job[id(job)] = sealed[start : start + count]
                    start += count
        return [job.outcome(sealed_by_job[id(job)]) for job in jobs]

    def _sweep_checkpoints(self) -> None:
        self._last_sweep = time.monotonic()
        try:
            with self.engine.connect() as conn:
                pending = list(
                    conn.execute(select(HEADS.c.org_id).where(HEADS.c.size > HEADS.c.checkpoint_size)).scalars()
                )
            for org_id in pending:
                with write_transaction(self.engine) as conn:
                    self.sealer.checkpoint(conn, org_id, utcnow())
        except Exception:
            log.exception("checkpoint sweep failed; will retry")


def _runs_of_work(jobs: list[_Job]) -> list[list[_Job]]:
    """The jobs with work, in order, cut into runs: consecutive BatchWorks of one runner, or one job."""
    runs: list[list[_Job]] = []
    for job in jobs:
        if job.work is None:
            continue
        last = runs[-1][0].work if runs else None
        if isinstance(job.work, BatchWork) and isinstance(last, BatchWork) and last.runner == job.work.runner:
            runs[-1].append(job)
        else:
            runs.append([job])
    return runs
