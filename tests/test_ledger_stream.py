"""Large batches are validated and sealed a chunk at a time while earlier chunks are written."""

from __future__ import annotations

import gc
import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any

import orjson
import pytest
import rfc8785
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select

from gardien.audit.canonical import MAX_SAFE_INTEGER
from gardien.audit.merkle import CompactRange
from gardien.audit.models import EVENTS, HEADS
from gardien.audit.schemas import EventIn
from gardien.audit.sealing import SCHEMA, ZERO_MAC, HeadState, Sealer, _Sealing, prepare
from gardien.audit.service import STREAM_CHUNK, Ledger
from gardien.core.errors import InvalidInput
from gardien.core.runtime import Runtime
from tests.conftest import sample_event

SIZE = 2 * STREAM_CHUNK + 57  # three chunks, the last one short


def _stored(runtime: Runtime, org: str) -> tuple[int, int | None]:
    with runtime.engine.connect() as conn:
        count = conn.execute(select(func.count()).select_from(EVENTS).where(EVENTS.c.org_id == org)).scalar_one()
        head = conn.execute(select(HEADS.c.size).where(HEADS.c.org_id == org)).scalar_one_or_none()
    return count, head


def _events(n: int) -> list[dict[str, object]]:
    # Each event different, floats among them (the canonical form's slower branch).
    return [sample_event(fields={"i": i, "amount": float(i), "rate": i / 7}) for i in range(n)]


def test_a_streamed_batch_is_stored_in_order_and_verifies(runtime: Runtime, ledger: Ledger, org: str) -> None:
    ledger.append_batch(org, _events(3))  # the head exists before, as after any earlier append
    receipts = ledger.append_batch(org, _events(SIZE))
    assert [r.seq for r in receipts] == list(range(3, 3 + SIZE))
    assert _stored(runtime, org) == (3 + SIZE, 3 + SIZE)
    with runtime.engine.connect() as conn:
        rows = conn.execute(
            select(EVENTS.c.seq, EVENTS.c.id, EVENTS.c.canonical).where(EVENTS.c.org_id == org).order_by(EVENTS.c.seq)
        ).all()
    for receipt, row in zip(receipts, rows[3:], strict=True):
        assert (row.seq, row.id) == (receipt.seq, receipt.id)
        doc = orjson.loads(row.canonical)
        assert doc["fields"]["i"] == row.seq - 3
    # An ordinary append after it takes the remembered head; the whole ledger still verifies.
    ledger.append(org, sample_event())
    ledger.checkpoint_now(org)
    report = ledger.verify(org)
    assert report.status == "ok", report.findings
    assert report.events_checked == SIZE + 4


@pytest.mark.parametrize("bad_at", [0, STREAM_CHUNK - 1, STREAM_CHUNK, SIZE - 1])
def test_an_invalid_event_in_any_chunk_leaves_nothing(runtime: Runtime, ledger: Ledger, org: str, bad_at: int) -> None:
    ledger.append_batch(org, _events(5))
    events = _events(SIZE)
    events[bad_at] = sample_event(crud="upsert")
    with pytest.raises(InvalidInput) as caught:
        ledger.append_batch(org, events)
    assert f"events.{bad_at}.crud" in str(caught.value.detail)
    assert _stored(runtime, org) == (5, 5)
    # The sealer did not keep the abandoned head: the next batch continues at 5 and verifies.
    receipts = ledger.append_batch(org, _events(SIZE))
    assert receipts[0].seq == 5
    ledger.checkpoint_now(org)
    assert ledger.verify(org).status == "ok"


def test_no_insert_thread_outlives_the_batch(runtime: Runtime, ledger: Ledger, org: str) -> None:
    ledger.append_batch(org, _events(SIZE))
    assert not [t for t in threading.enumerate() if t.name.startswith("gardien-ledger-insert")]


# --- the sealed bytes, spliced from each event's template -----------------------------------

_VALUES = st.recursive(
    st.one_of(
        st.none(),
        st.booleans(),
        st.integers(min_value=-MAX_SAFE_INTEGER, max_value=MAX_SAFE_INTEGER),
        st.floats(allow_nan=False, allow_infinity=False),
        st.text(max_size=6),
    ),
    lambda children: st.one_of(
        st.lists(children, max_size=4), st.dictionaries(st.text(max_size=4), children, max_size=4)
    ),
    max_leaves=12,
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(fields=st.dictionaries(st.text(max_size=5), _VALUES, max_size=4), occurred=st.booleans())
def test_sealed_bytes_are_the_reference_canonical_form_of_the_whole_event(
    runtime: Runtime, fields: dict[str, Any], occurred: bool
) -> None:
    event = EventIn.model_validate(
        sample_event(fields=fields, occurred_at="2026-01-02T03:04:05.678+01:00" if occurred else None)
    )
    prepared = prepare(event, 1 << 20)
    head = HeadState("org-1", CompactRange(), ZERO_MAC, 0, 0, None)
    now = datetime(2026, 12, 5, 18, 0, 0, 123456, tzinfo=UTC)
    with runtime.engine.connect() as conn:
        row = _Sealing.start(Sealer(runtime.keyring), conn, head, now).seal([prepared])[0]
    seq, event_id, data = row[1], row[2], row[13]
    expected = {**prepared.doc, "schema": SCHEMA, "id": event_id, "org": "org-1", "seq": seq}
    expected["recorded_at"] = "2026-12-05T18:00:00.123456Z"
    expected["occurred_at"] = "2026-01-02T02:04:05.678000Z" if occurred else expected["recorded_at"]
    assert data == rfc8785.dumps(expected)
    assert prepared.pieces is not None or not prepared.plain


class _Watched(list[dict[str, object]]):
    """Events that note whether the cyclic collector ran while each was read."""

    def __init__(self, events: list[dict[str, object]]) -> None:
        super().__init__(events)
        self.collector: list[bool] = []

    def __getitem__(self, index: Any) -> Any:
        self.collector.append(gc.isenabled())
        return super().__getitem__(index)


def test_a_streamed_batch_pauses_the_collector_and_resumes_it_even_when_it_fails(ledger: Ledger, org: str) -> None:
    events = _Watched(_events(SIZE))
    assert len(ledger.append_batch(org, events)) == SIZE
    assert events.collector and not any(events.collector) and gc.isenabled()
    bad = _Watched([*_events(SIZE - 1), {"module": "Bad"}])
    with pytest.raises(InvalidInput):
        ledger.append_batch(org, bad)
    assert not any(bad.collector) and gc.isenabled()
    # A collector the caller turned off stays off.
    gc.disable()
    try:
        ledger.append_batch(org, _events(SIZE))
        assert not gc.isenabled()
    finally:
        gc.enable()


def test_overlapping_batches_restore_the_switch_interval(runtime: Runtime, ledger: Ledger) -> None:
    # Batches of different organisations stream at the same time on PostgreSQL (each locks only
    # its own head); on SQLite they take turns. Either way the interval comes back as it was.
    import sys
    import uuid

    from gardien.core import service

    orgs = []
    for _ in range(3):
        with runtime.writes.begin() as session:
            orgs.append(service.create_org(session, slug=f"t-{uuid.uuid4().hex[:12]}", name="Test org").id)
    before = sys.getswitchinterval()
    with ThreadPoolExecutor(3) as pool:
        for receipts in pool.map(lambda n: ledger.append_batch(orgs[n % 3], _events(SIZE)), range(9)):
            assert len(receipts) == SIZE
    assert sys.getswitchinterval() == before
    assert gc.isenabled()
    for org in orgs:
        ledger.checkpoint_now(org)
        assert ledger.verify(org).status == "ok"
