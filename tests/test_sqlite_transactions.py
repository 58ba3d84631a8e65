"""Gardien, not the sqlite3 module, opens SQLite transactions (BEGIN IMMEDIATE for writers)."""

from __future__ import annotations

import pytest

from gardien.audit.service import Ledger
from gardien.core.runtime import Runtime
from tests.conftest import sample_event


def test_pooled_connections_keep_explicit_transaction_control(runtime: Runtime, ledger: Ledger, org: str) -> None:
    if runtime.engine.dialect.name != "sqlite":
        pytest.skip("SQLite only")
    ledger.append_batch(org, [sample_event() for _ in range(3)])
    ledger.checkpoint_now(org)
    for seq in range(3):
        ledger.inclusion_proof(org, seq)  # every read path returns its connection to the pool
    connections = [runtime.engine.connect() for _ in range(runtime.engine.pool.size())]
    try:
        for conn in connections:
            assert conn.connection.dbapi_connection.isolation_level is None  # type: ignore[union-attr]
    finally:
        for conn in connections:
            conn.close()
