"""The chunked, multi-process verifier agrees with the single-process one, wherever checkpoints fall."""

from __future__ import annotations

import time

import pytest

from gardien.audit.chunks import _same_json_columns
from gardien.audit.service import Ledger
from gardien.core.runtime import Runtime
from tests.conftest import sample_event, verify_directly


def _verify(runtime: Runtime, org: str, *, workers: int, chunk: int) -> tuple[str, int, int]:
    report = verify_directly(runtime, org, workers=workers, chunk=chunk)
    return report.status, report.events_checked, report.checkpoints_checked


def test_checkpoints_on_and_off_chunk_boundaries(runtime: Runtime, ledger: Ledger, org: str) -> None:
    # Checkpoints at 64 and 128 fall exactly on chunk boundaries, the others inside chunks.
    for size in (5, 64, 100, 128, 129, 200, 256, 301):
        missing = size - ledger.head_size(org)
        ledger.append_batch(org, [sample_event(fields={"n": i}) for i in range(missing)])
        ledger.checkpoint_now(org)
        assert ledger.checkpoint(org).size == size
    expected = _verify(runtime, org, workers=1, chunk=64)
    assert expected[:2] == ("ok", 301)
    assert expected[2] >= 8
    assert _verify(runtime, org, workers=2, chunk=64) == expected
    assert _verify(runtime, org, workers=1, chunk=1 << 16) == expected


def test_chunk_must_be_a_power_of_two(runtime: Runtime, org: str) -> None:
    with pytest.raises(ValueError, match="power of two"):
        _verify(runtime, org, workers=1, chunk=1000)


def test_sqlite_columns_compare_as_json_values_not_only_as_text() -> None:
    # The escapes SQLite's json_array writes may differ from orjson's; the values decide.
    assert _same_json_columns(b'["\\u0041",null,"\\u00e9"]', ("A", None, "é"))
    assert not _same_json_columns(b'["B",null,"\\u00e9"]', ("A", None, "é"))
    assert not _same_json_columns(b'["A",null,1]', ("A", None, "1"))


def test_worker_processes_close_their_connections(runtime: Runtime, ledger: Ledger, org: str) -> None:
    """A worker keeps one connection for all its chunks; none outlives the verification."""
    if runtime.engine.dialect.name != "postgresql":
        pytest.skip("connections are counted in pg_stat_activity")
    ledger.append_batch(org, [sample_event(fields={"n": i}) for i in range(300)])
    ledger.checkpoint_now(org)

    def others() -> int:
        with runtime.engine.connect() as conn:
            return int(
                conn.exec_driver_sql(
                    "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
                    " AND pid <> pg_backend_pid() AND backend_type = 'client backend'"
                ).scalar_one()
            )

    before = others()
    assert _verify(runtime, org, workers=2, chunk=64)[:2] == ("ok", 300)
    deadline = time.monotonic() + 5
    while others() > before and time.monotonic() < deadline:
        time.sleep(0.05)
    assert others() == before
