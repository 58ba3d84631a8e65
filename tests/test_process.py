"""Process-wide settings held while bulk work runs (gardien.core.process)."""

from __future__ import annotations

import gc
import sys

import pytest

from gardien.core.process import COLLECTOR_PAUSED, HeldWhileRunning, short_switch_interval


def test_the_first_holder_changes_the_setting_and_the_last_restores_it() -> None:
    log: list[str] = []
    held = HeldWhileRunning(lambda: log.append("change") or "saved", lambda saved: log.append(f"restore {saved}"))
    held.__enter__()
    held.__enter__()  # a second, overlapping holder
    held.__exit__(None, None, None)
    assert log == ["change"]  # the other one still runs
    held.__exit__(None, None, None)
    assert log == ["change", "restore saved"]
    with held:
        pass
    assert log == ["change", "restore saved", "change", "restore saved"]


def test_a_holder_that_raises_still_restores() -> None:
    before = sys.getswitchinterval()
    interval = short_switch_interval(before / 10)
    with pytest.raises(RuntimeError), interval:
        assert sys.getswitchinterval() == pytest.approx(before / 10)
        raise RuntimeError("boom")
    assert sys.getswitchinterval() == before


def test_a_shorter_interval_never_lengthens_the_current_one() -> None:
    before = sys.getswitchinterval()
    with short_switch_interval(before * 10):
        assert sys.getswitchinterval() == before
    assert sys.getswitchinterval() == before


def test_the_collector_is_paused_and_resumed_only_if_it_was_running() -> None:
    assert gc.isenabled()
    with COLLECTOR_PAUSED:
        assert not gc.isenabled()
        with COLLECTOR_PAUSED:
            assert not gc.isenabled()
        assert not gc.isenabled()
    assert gc.isenabled()
    gc.disable()
    try:
        with COLLECTOR_PAUSED:
            pass
        assert not gc.isenabled()
    finally:
        gc.enable()
