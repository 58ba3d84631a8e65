"""The ledger's tables are write-once: the database itself refuses UPDATE, DELETE and TRUNCATE.

Every attempt runs in its own transaction, rolled back afterwards, so that even a trigger that
failed to fire could not damage the session database shared with other tests.
"""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from gardien.audit.service import Ledger
from gardien.core.runtime import Runtime
from tests.conftest import sample_event

TABLES = ("audit_events", "audit_checkpoints", "audit_tree_nodes")
UPDATES = {
    "audit_events": "UPDATE audit_events SET action = 'artist.delete' WHERE org_id = :o",
    "audit_checkpoints": "UPDATE audit_checkpoints SET note = 'forged' WHERE org_id = :o",
    "audit_tree_nodes": "UPDATE audit_tree_nodes SET hash = :h WHERE org_id = :o",
}
# Enough for level-4 tree nodes (every 16 leaves) and several checkpoints.
EVENTS = 100


def _fill(ledger: Ledger, org: str) -> None:
    for start in range(0, EVENTS, 25):
        ledger.append_batch(org, [sample_event(fields={"n": i}) for i in range(start, start + 25)])
        ledger.checkpoint_now(org)


def _snapshot(runtime: Runtime, org: str) -> dict[str, list[Any]]:
    snapshot: dict[str, list[Any]] = {}
    with runtime.engine.connect() as conn:
        for table in TABLES:
            # Column 2 and 3: (seq, id), (size, root), (level, idx).
            rows = conn.execute(text(f"SELECT * FROM {table} WHERE org_id = :o ORDER BY 2, 3"), {"o": org})
            snapshot[table] = [tuple(row) for row in rows]
    return snapshot


def _refused(runtime: Runtime, sql: str, params: dict[str, Any]) -> str:
    """Run `sql` in a transaction that is rolled back whatever happens; return the refusal."""
    with runtime.engine.connect() as conn:
        transaction = conn.begin()
        try:
            with pytest.raises(DBAPIError) as refusal:
                conn.execute(text(sql), params)
        finally:
            transaction.rollback()
    return str(refusal.value.orig)


@pytest.fixture
def filled(ledger: Ledger, runtime: Runtime, org: str) -> dict[str, list[Any]]:
    _fill(ledger, org)
    report = ledger.verify(org)
    assert report.status == "ok", report
    ledger.checkpoint_now(org)
    snapshot = _snapshot(runtime, org)
    assert all(snapshot[table] for table in TABLES), "every WORM table must hold rows for this test"
    return snapshot


def _still_intact(ledger: Ledger, runtime: Runtime, org: str, before: dict[str, list[Any]]) -> None:
    assert _snapshot(runtime, org) == before
    report = ledger.verify(org)
    assert report.status == "ok", report
    assert report.size == len(before["audit_events"])
    # And the ledger still takes events.
    ledger.append(org, sample_event())
    assert ledger.verify(org).status == "ok"


@pytest.mark.parametrize("table", TABLES)
@pytest.mark.parametrize("operation", ["UPDATE", "DELETE"])
def test_update_and_delete_are_refused(
    ledger: Ledger, runtime: Runtime, org: str, filled: dict[str, list[Any]], table: str, operation: str
) -> None:
    sql = UPDATES[table] if operation == "UPDATE" else f"DELETE FROM {table} WHERE org_id = :o"
    message = _refused(runtime, sql, {"o": org, "h": b"\x00" * 32})
    assert "append-only" in message
    assert table in message and operation in message
    _still_intact(ledger, runtime, org, filled)


@pytest.mark.parametrize("table", TABLES)
def test_emptying_the_table_is_refused(
    ledger: Ledger, runtime: Runtime, org: str, filled: dict[str, list[Any]], table: str
) -> None:
    """TRUNCATE on PostgreSQL; on SQLite an unqualified DELETE, which it would otherwise run as
    a truncate (SQLite skips that optimisation when the table has triggers)."""
    if runtime.engine.dialect.name == "postgresql":
        sql, operation = f"TRUNCATE {table}", "TRUNCATE"
    else:
        sql, operation = f"DELETE FROM {table}", "DELETE"
    message = _refused(runtime, sql, {})
    assert "append-only" in message
    assert table in message and operation in message
    _still_intact(ledger, runtime, org, filled)


def test_a_single_row_is_as_protected_as_the_table(
    ledger: Ledger, runtime: Runtime, org: str, filled: dict[str, list[Any]]
) -> None:
    """The last event, the one an intruder would most like to take back, cannot be changed."""
    last = len(filled["audit_events"]) - 1
    for sql in (
        "UPDATE audit_events SET canonical = :c WHERE org_id = :o AND seq = :s",
        "UPDATE audit_events SET seq = seq + 1 WHERE org_id = :o AND seq = :s",
        "DELETE FROM audit_events WHERE org_id = :o AND seq = :s",
    ):
        assert "append-only" in _refused(runtime, sql, {"o": org, "s": last, "c": b"{}"})
    _still_intact(ledger, runtime, org, filled)
