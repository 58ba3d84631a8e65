"""Process-wide interpreter settings that bulk work changes while it runs.

The interpreter has one GIL switch interval and one cyclic garbage collector for all threads, so
two overlapping batches must not each restore what they found: the first to start changes the
setting, the last to finish restores it.
"""

from __future__ import annotations

import gc
import sys
import threading
from collections.abc import Callable
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
