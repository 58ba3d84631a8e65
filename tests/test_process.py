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


def test_pieces_run_in_order_and_a_failure_is_raised_at_the_next_hand_over() -> None:
    from concurrent.futures import ThreadPoolExecutor

    from gardien.core.process import OneInFlight

    done: list[int] = []

    def piece(n: int) -> None:
        if n == 3:
            raise ValueError("piece 3")
        done.append(n)

    with ThreadPoolExecutor(1) as worker:
        flight = OneInFlight(worker)
        for n in range(3):
            flight.submit(piece, n)
        flight.wait()
        assert done == [0, 1, 2]
        flight.submit(piece, 3)
        with pytest.raises(ValueError, match="piece 3"):
            flight.submit(piece, 4)  # waits for piece 3 first
        assert done == [0, 1, 2]
        flight.submit(piece, 3)
        flight.abandon()  # its error is dropped; nothing is pending after
        flight.wait()
    inline = OneInFlight(None)
    inline.submit(piece, 5)
    assert done == [0, 1, 2, 5]
