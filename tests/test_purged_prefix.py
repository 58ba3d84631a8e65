"""Room left for retention: a ledger whose sealed prefix was archived and purged still verifies.

Retention's archive-then-purge is a later capability; this test plays its part by hand (purge
manifest row, prefix deleted past the write-once triggers) to show that the format and the
verifier already hold: events after the purge verify, and only tampering after it is reported.
"""

from __future__ import annotations

import pytest
from sqlalchemy import delete, insert, select, update

from gardien.audit.merkle import CompactRange
from gardien.audit.models import EVENTS, PURGES
from gardien.audit.service import Ledger
from gardien.core.clock import utcnow
from gardien.core.runtime import Runtime
from tests.conftest import sample_event, verify_directly
from tests.test_tamper import tampering


def _purge(runtime: Runtime, org: str, min_seq: int) -> None:
    with runtime.engine.connect() as conn:
        leaves = list(
            conn.execute(
                select(EVENTS.c.leaf_hash).where(EVENTS.c.org_id == org, EVENTS.c.seq < min_seq).order_by(EVENTS.c.seq)
            ).scalars()
        )
        anchor = conn.execute(
            select(EVENTS.c.mac).where(EVENTS.c.org_id == org, EVENTS.c.seq == min_seq - 1)
        ).scalar_one()
    prefix = CompactRange()
    prefix.extend(leaves)
    with tampering(runtime.engine) as conn:
        conn.execute(
            insert(PURGES).values(
                org_id=org,
                to_seq=min_seq,
                from_seq=0,
                anchor_mac=anchor,
                frontier=prefix.to_bytes(),
                manifest="{}",
                created_at=utcnow(),
            )
        )
        conn.execute(delete(EVENTS).where(EVENTS.c.org_id == org, EVENTS.c.seq < min_seq))


def _verify(runtime: Runtime, org: str, workers: int) -> tuple[str, int, int, int | None]:
    report = verify_directly(runtime, org, workers=workers, chunk=64)
    return report.status, report.purged_before, report.events_checked, report.first_broken_seq


@pytest.mark.parametrize("min_seq", [100, 128], ids=["unaligned", "on-a-chunk-boundary"])
def test_a_purged_prefix_verifies_and_later_tampering_is_still_found(
    runtime: Runtime, ledger: Ledger, org: str, min_seq: int
) -> None:
    for _ in range(3):
        ledger.append_batch(org, [sample_event(fields={"n": i}) for i in range(100)])
        ledger.checkpoint_now(org)
    _purge(runtime, org, min_seq)

    assert _verify(runtime, org, workers=1) == ("ok", min_seq, 300 - min_seq, None)
    assert _verify(runtime, org, workers=2) == ("ok", min_seq, 300 - min_seq, None)

    with tampering(runtime.engine) as conn:
        conn.execute(update(EVENTS).where(EVENTS.c.org_id == org, EVENTS.c.seq == 250).values(action="artist.read"))
    assert _verify(runtime, org, workers=1)[::3] == ("tampered", 250)
    assert _verify(runtime, org, workers=2)[::3] == ("tampered", 250)
