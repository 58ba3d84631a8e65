"""Ledger.transact: another capability's writes and their audit events commit together or not at all."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import Connection, func, insert, select

from gardien.audit.models import EVENTS
from gardien.audit.sealing import PreparedEvent
from gardien.audit.service import Ledger
from gardien.audit.writer import BatchWork
from gardien.core.clock import utcnow
from gardien.core.errors import InvalidInput, NotFound
from gardien.core.runtime import Runtime
from gardien.psd2.models import POLICIES
from tests.conftest import one_writer_group


def policy_rows(runtime: Runtime, org: str) -> int:
    with runtime.engine.connect() as conn:
        return int(
            conn.execute(select(func.count()).select_from(POLICIES).where(POLICIES.c.org_id == org)).scalar_one()
        )


def events(runtime: Runtime, org: str) -> list[str]:
    with runtime.engine.connect() as conn:
        return list(
            conn.execute(select(EVENTS.c.action).where(EVENTS.c.org_id == org).order_by(EVENTS.c.seq)).scalars()
        )


def an_event(action: str) -> dict[str, Any]:
    return {"module": "test", "action": action, "crud": "create", "actor": {"type": "test", "id": "t"}}


def writing(ledger: Ledger, org: str, action: str, *, fail: bool = False) -> Any:
    def work(conn: Connection) -> tuple[str, list[PreparedEvent]]:
        conn.execute(insert(POLICIES).values(org_id=org, version=1, document="{}", updated_at=utcnow()))
        if fail:
            raise NotFound("something the work needed")
        return action, [ledger.prepare(an_event(action))]

    return work


def test_a_failing_work_leaves_neither_its_rows_nor_its_events(ledger: Ledger, runtime: Runtime, org: str) -> None:
    with pytest.raises(NotFound):
        ledger.transact(org, writing(ledger, org, "policy.create", fail=True))
    assert policy_rows(runtime, org) == 0
    assert events(runtime, org) == []
    result, sealed = ledger.transact(org, writing(ledger, org, "policy.create"))
    assert result == "policy.create" and len(sealed) == 1
    assert policy_rows(runtime, org) == 1
    assert events(runtime, org) == ["policy.create"]


def test_of_concurrent_works_only_the_failing_one_fails(runtime: Runtime, org: str) -> None:
    ledger = Ledger(runtime)
    ledger.start()
    try:

        async def submit_together() -> list[Any]:
            good = ledger.transact_async(org, writing(ledger, org, "policy.create"))
            bad = ledger.transact_async(org, writing(ledger, org, "policy.create.twice"))
            return await asyncio.gather(good, bad, return_exceptions=True)

        first, second = asyncio.run(submit_together())
    finally:
        ledger.stop()
    # The second work inserts the same primary key: it alone fails, as a 503 problem, and the first
    # is committed with its event.
    assert first[0] == "policy.create"
    assert getattr(second, "status", None) == 503
    assert policy_rows(runtime, org) == 1
    assert events(runtime, org) == ["policy.create"]


def test_batched_works_run_as_one_group_in_order_and_a_failing_item_fails_alone(runtime: Runtime, org: str) -> None:
    ledger = Ledger(runtime)
    calls: list[list[str]] = []

    def runner(conn: Connection, items: list[str]) -> list[tuple[str, list[PreparedEvent]]]:
        calls.append(list(items))
        if "bad" in items:
            raise NotFound("what the bad item needed")
        return [(f"done {item}", [ledger.prepare(an_event(f"batch.{item}"))]) for item in items]

    ledger.start()
    try:

        async def submit() -> list[Any]:
            async with one_writer_group(ledger, org) as group:
                group.extend(ledger.transact_async(org, BatchWork(runner, item)) for item in ("a", "b", "bad", "c"))
            return group

        outcomes = asyncio.run(submit())
    finally:
        ledger.stop()
    # One call for the whole group, in arrival order; it failed, so each item ran again alone.
    assert calls == [["a", "b", "bad", "c"], ["a"], ["b"], ["bad"], ["c"]]
    assert [o[0] for o in outcomes if isinstance(o, tuple)] == ["done a", "done b", "done c"]
    assert isinstance(outcomes[2], NotFound)
    assert events(runtime, org) == ["batch.a", "batch.b", "batch.c"]


@pytest.mark.parametrize(
    ("free", "path", "why"),
    [
        ({"fields": {"when": [1, {"at": datetime(2026, 1, 1, tzinfo=UTC)}]}}, "fields.when.1.at", "datetime"),
        ({"fields": {"tags": {"a", "b"}}}, "fields.tags", "set"),
        ({"fields": {"raw": b"\x00"}}, "fields.raw", "bytes"),
        ({"changes": {"after": {"pair": (1, 2)}}}, "changes.after.pair", "tuple"),
        ({"fields": {"by_id": {7: "x"}}}, "fields.by_id.7", "member name is not a string"),
    ],
)
def test_values_that_are_not_json_are_refused_by_name_and_nothing_is_sealed(
    ledger: Ledger, runtime: Runtime, org: str, free: dict[str, Any], path: str, why: str
) -> None:
    # Python callers (the SQLAlchemy hook, other capabilities) can hand over any object; the
    # ledger seals JSON only, and must not turn a datetime or bytes quietly into a string.
    with pytest.raises(InvalidInput) as refused:
        ledger.append(org, {**an_event("odd.value"), **free})
    error = refused.value.extra["errors"][0]
    assert error["field"] == path and why in error["message"]
    assert events(runtime, org) == []


def test_two_sealers_on_one_ledger_take_turns_without_a_gap_or_a_fork(runtime: Runtime, org: str) -> None:
    """Two processes (two Ledgers) appending in turn: each one's remembered head goes stale at the
    other's every write, and its swap must miss and fall back to reading the row."""
    first, second = Ledger(runtime), Ledger(runtime)
    for i in range(6):
        (first if i % 2 == 0 else second).append(org, an_event(f"turn.{i}"))
        second.append(org, an_event(f"again.{i}"))
    assert len(events(runtime, org)) == 12
    with runtime.engine.connect() as conn:
        seqs = list(conn.execute(select(EVENTS.c.seq).where(EVENTS.c.org_id == org).order_by(EVENTS.c.seq)).scalars())
    assert seqs == list(range(12))
    report = first.verify(org)
    assert report.status == "ok", report


def test_a_rolled_back_seal_does_not_leave_the_remembered_head_ahead(
    ledger: Ledger, runtime: Runtime, org: str
) -> None:
    """The sealer remembers the head it wrote before the commit; a transaction that then fails must
    not make the next append skip sequence numbers or chain from a MAC that was never stored."""
    ledger.append(org, an_event("before"))

    def sealed_then_fails(conn: Connection) -> tuple[None, list[PreparedEvent]]:
        ledger.sealer.seal(conn, org, [ledger.prepare(an_event("lost"))], utcnow())
        raise NotFound("a failure after the seal, before the commit")

    with pytest.raises(NotFound):
        ledger.transact(org, sealed_then_fails)
    ledger.append(org, an_event("after"))
    assert events(runtime, org) == ["before", "after"]
    assert ledger.verify(org).status == "ok"
