"""What bulk work (batched appends, exports, retention) shares about threads and the interpreter.

The interpreter has one GIL switch interval and one cyclic garbage collector for all threads, so
two overlapping batches must not each restore what they found: the first to start changes the
setting, the last to finish restores it. And work handed to a helper thread while the caller goes
on goes one piece at a time, in order (OneInFlight).
"""

from __future__ import annotations

import contextlib
import gc
import sys
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any


class HeldWhileRunning:
    """A setting changed while at least one holder runs (`with` it), restored when the last leaves.

    `change()` applies the setting and returns what `restore(saved)` needs to undo it.
    """

    def __init__(self, change: Callable[[], Any], restore: Callable[[Any], None]) -> None:
        self._change = change
        self._restore = restore
        self._lock = threading.Lock()
        self._holders = 0
        self._saved: Any = None

    def __enter__(self) -> None:
        with self._lock:
            if self._holders == 0:
                self._saved = self._change()
            self._holders += 1

    def __exit__(self, *_exc: object) -> None:
        with self._lock:
            self._holders -= 1
            if self._holders == 0:
                self._restore(self._saved)


def short_switch_interval(seconds: float) -> HeldWhileRunning:
    """A GIL switch interval of at most `seconds`: a thread waiting for the GIL gets it sooner."""

    def change() -> float:
        saved = sys.getswitchinterval()
        sys.setswitchinterval(min(saved, seconds))
        return saved

    return HeldWhileRunning(change, sys.setswitchinterval)


def _pause_collector() -> bool:
    enabled = gc.isenabled()
    gc.disable()
    return enabled


def _resume_collector(enabled: bool) -> None:
    if enabled:
        gc.enable()


# Bulk work allocates tens of thousands of small dicts, tuples and strings per batch, which sets
# off collections that walk every live object again and again. Reference counting still frees
# what a batch drops; the cycles it leaves, if any, are collected after it.
COLLECTOR_PAUSED = HeldWhileRunning(_pause_collector, _resume_collector)


class OneInFlight:
    """Pieces of work handed to a worker thread one at a time, in order.

    Each hand-over first waits for the previous piece and raises what it raised, so at most one
    piece is pending while the caller prepares the next. With no worker, pieces run at once.
    """

    def __init__(self, worker: ThreadPoolExecutor | None) -> None:
        self._worker = worker
        self._pending: Future[None] | None = None

    def submit(self, work: Callable[..., None], *args: Any) -> None:
        self.wait()
        if self._worker is None:
            work(*args)
        else:
            self._pending = self._worker.submit(work, *args)

    def wait(self) -> None:
        """Until the pending piece is done; raises what it raised."""
        pending, self._pending = self._pending, None
        if pending is not None:
            pending.result()

    def abandon(self) -> None:
        """Until the pending piece is done, whatever it raised: once this returns, nothing runs."""
        with contextlib.suppress(Exception):
            self.wait()
