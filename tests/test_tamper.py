"""The tamper suite: every way a DBA can alter the ledger's rows, and what `verify` says about it.

Each test first checks that the untouched ledger verifies "ok", then tampers with raw SQL the way
someone with database access would (the WORM triggers disabled for that one transaction), then
checks that verification reports "tampered", where, and why. A missing key is the one thing that
must never be reported as tampering: it is "unverifiable".
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import Engine, delete, insert, select, text, update
from sqlalchemy.engine import Connection
from sqlalchemy.exc import DBAPIError

from gardien.audit import chunks
from gardien.audit.canonical import canonical_bytes
from gardien.audit.checkpoint import Checkpoint, Note, NoteSigner, sign_note
from gardien.audit.merkle import CompactRange
from gardien.audit.models import CHECKPOINTS, EVENTS, HEADS, NODES
from gardien.audit.schemas import VerifyReport
from gardien.audit.sealing import ZERO_MAC
from gardien.audit.service import Ledger
from gardien.core import service
from gardien.core.ids import new_id
from gardien.core.keyring import KEYRING_FILE
from gardien.core.runtime import Runtime
from gardien.core.settings import Settings
from tests.conftest import sample_event, verify_directly

# Past 1,000 so the ledger writes a checkpoint on its own, in batches the API would accept.
EVENTS_PER_LEDGER = 1_500
BATCH = 500


# --- tampering as a DBA would ------------------------------------------------------------------


@contextmanager
def tampering(engine: Engine) -> Iterator[Connection]:
    """One transaction in which the WORM triggers do not fire; committed if the block succeeds.

    PostgreSQL: ``session_replication_role = replica`` (superuser only) skips ordinary triggers,
    and SET LOCAL ends with the transaction, so the pooled connection goes back clean.
    SQLite: drop the triggers and re-create them from their stored SQL before the transaction
    ends. DDL is transactional there, so a failure rolls the drop back too; either way no other
    test ever sees the ledger unprotected.
    """
    with engine.connect() as conn, conn.begin():
        if conn.dialect.name == "postgresql":
            conn.exec_driver_sql("SET LOCAL session_replication_role = replica")
            yield conn
            return
        triggers = conn.exec_driver_sql(
            "SELECT name, sql FROM sqlite_master WHERE type = 'trigger' AND name LIKE '%worm%'"
        ).all()
        assert len(triggers) >= 6, "the WORM triggers are not installed"
        for name, _sql in triggers:
            conn.exec_driver_sql(f'DROP TRIGGER "{name}"')
        try:
            yield conn
        finally:
            for _name, sql in triggers:
                conn.exec_driver_sql(sql)


def _row(conn: Connection, org: str, seq: int) -> dict[str, Any]:
    return dict(conn.execute(select(EVENTS).where(EVENTS.c.org_id == org, EVENTS.c.seq == seq)).one()._mapping)


def _at(org: str, seq: int) -> Any:
    return (EVENTS.c.org_id == org) & (EVENTS.c.seq == seq)


def _forge(conn: Connection, org: str, seq: int, like: int) -> bytes:
    """Insert a made-up event at `seq`, consistent in every column and hash. Without the HMAC key
    its MAC can only be a guess. Returns that MAC."""
    row = _row(conn, org, like)
    doc = orjson.loads(row["canonical"])
    doc.update(id=new_id(), seq=seq, action="artist.delete", crud="delete", fields={"forged": True})
    data = canonical_bytes(doc)
    row.update(
        seq=seq,
        id=doc["id"],
        action="artist.delete",
        crud="delete",
        canonical=data,
        leaf_hash=hashlib.sha256(b"\x00" + data).digest(),
        mac=secrets.token_bytes(32),
    )
    conn.execute(insert(EVENTS).values(**row))
    return bytes(row["mac"])


def _cover_tracks(conn: Connection, org: str) -> None:
    """What a careful attacker does after editing events: make the head row agree with the rows,
    and drop tree nodes past the end, so that Gardien keeps appending without a hitch."""
    rows = conn.execute(
        select(EVENTS.c.leaf_hash, EVENTS.c.mac).where(EVENTS.c.org_id == org).order_by(EVENTS.c.seq)
    ).all()
    frontier = CompactRange()
    frontier.extend([bytes(r.leaf_hash) for r in rows])
    head = conn.execute(select(HEADS).where(HEADS.c.org_id == org)).one()
    conn.execute(
        update(HEADS)
        .where(HEADS.c.org_id == org)
        .values(
            size=frontier.size,
            mac=rows[-1].mac,
            frontier=frontier.to_bytes(),
            checkpoint_size=min(head.checkpoint_size, frontier.size),
        )
    )
    for level, idx in conn.execute(select(NODES.c.level, NODES.c.idx).where(NODES.c.org_id == org)).all():
        if (idx + 1) << level > frontier.size:
            conn.execute(delete(NODES).where(NODES.c.org_id == org, NODES.c.level == level, NODES.c.idx == idx))


def _reseal_from(conn: Connection, org: str, start: int, runtime: Runtime) -> None:
    """Recompute leaf hashes and the MAC chain from `start` on, as someone who stole the HMAC keys
    (but not the signing key) would after editing an event."""
    keys = runtime.keyring.hmac_keys()
    prev = ZERO_MAC if start == 0 else bytes(_row(conn, org, start - 1)["mac"])
    rows = conn.execute(
        select(EVENTS.c.seq, EVENTS.c.canonical, EVENTS.c.hmac_kid)
        .where(EVENTS.c.org_id == org, EVENTS.c.seq >= start)
        .order_by(EVENTS.c.seq)
    ).all()
    for row in rows:
        leaf = hashlib.sha256(b"\x00" + bytes(row.canonical)).digest()
        prev = keys[row.hmac_kid].digest(prev + leaf)
        conn.execute(update(EVENTS).where(_at(org, row.seq)).values(leaf_hash=leaf, mac=prev))


# --- building and checking ledgers ---------------------------------------------------------------


def _event(i: int) -> dict[str, object]:
    return sample_event(
        target={"type": "artist", "id": f"a-{i}", "display": "Les Ogres"},
        changes={"before": {"fee": 1200}, "after": {"fee": 1500 + i}},
        fields={"n": i},
    )


def _sealed_ledger(ledger: Ledger, org: str, count: int = EVENTS_PER_LEDGER) -> int:
    """Append `count` events, check that the untouched ledger verifies, and checkpoint everything
    (the verification itself is recorded as one more event). Returns the ledger size."""
    for start in range(0, count, BATCH):
        ledger.append_batch(org, [_event(i) for i in range(start, min(count, start + BATCH))])
    ledger.checkpoint_now(org)
    report = ledger.verify(org)
    assert report.status == "ok", report
    assert report.findings == []
    assert report.first_broken_seq is None
    assert report.events_checked == report.size == count
    ledger.checkpoint_now(org)
    return ledger.head_size(org)


def _checkpoint_sizes(engine: Engine, org: str) -> list[int]:
    with engine.connect() as conn:
        return sorted(conn.execute(select(CHECKPOINTS.c.size).where(CHECKPOINTS.c.org_id == org)).scalars().all())


@contextmanager
def _set_to_null(engine: Engine, org: str, seq: int, column: str) -> Iterator[None]:
    """PostgreSQL: drop the column's NOT NULL and set it to NULL in one event for the block, then
    put the value and the constraint back, so no other test sees the changed schema."""
    with tampering(engine) as conn:
        value = conn.execute(select(EVENTS.c[column]).where(_at(org, seq))).scalar_one()
        conn.exec_driver_sql(f"ALTER TABLE audit_events ALTER COLUMN {column} DROP NOT NULL")
        conn.execute(update(EVENTS).where(_at(org, seq)).values({column: None}))
    try:
        yield
    finally:
        with tampering(engine) as conn:
            conn.execute(update(EVENTS).where(_at(org, seq)).values({column: value}))
            conn.exec_driver_sql(f"ALTER TABLE audit_events ALTER COLUMN {column} SET NOT NULL")


def _kinds_at(report: VerifyReport, seq: int) -> set[str]:
    return {f.kind for f in report.findings if f.seq == seq}


def _assert_tampered(report: VerifyReport, seq: int, kind: str) -> None:
    assert report.status == "tampered", report
    assert report.first_broken_seq == seq, report
    assert kind in _kinds_at(report, seq), report


# --- the tests -------------------------------------------------------------------------------------


def test_untampered_ledger_verifies_ok(ledger: Ledger, runtime: Runtime, org: str) -> None:
    size = _sealed_ledger(ledger, org)
    sizes = _checkpoint_sizes(runtime.engine, org)
    assert {500, 1_500, size} <= set(sizes)
    report = ledger.verify(org)
    assert report.status == "ok", report
    assert report.size == report.events_checked == size
    assert report.checkpoints_checked == len(sizes)
    assert report.unsealed_tail == 0


def test_tampering_helper_leaves_the_worm_triggers_in_place(ledger: Ledger, runtime: Runtime, org: str) -> None:
    ledger.append_batch(org, [_event(i) for i in range(3)])
    with tampering(runtime.engine) as conn:
        conn.execute(text("UPDATE audit_events SET module = 'x' WHERE org_id = :o AND seq = 1"), {"o": org})
    # A failing block must not leave them off either.
    with pytest.raises(RuntimeError), tampering(runtime.engine) as conn:
        raise RuntimeError("boom")
    with runtime.engine.connect() as conn, pytest.raises(DBAPIError, match="append-only"):
        conn.execute(text("UPDATE audit_events SET module = 'y' WHERE org_id = :o AND seq = 1"), {"o": org})
    with runtime.engine.connect() as conn:
        assert _row(conn, org, 1)["module"] == "x"


@pytest.mark.parametrize("leaf", ["stale leaf hash", "leaf hash recomputed"])
def test_changed_field_in_the_canonical_bytes(ledger: Ledger, runtime: Runtime, org: str, leaf: str) -> None:
    _sealed_ledger(ledger, org)
    seq = 700
    with tampering(runtime.engine) as conn:
        original = bytes(_row(conn, org, seq)["canonical"])
        forged = original.replace(b'"fee":2200', b'"fee":9999')
        assert forged != original
        values: dict[str, bytes] = {"canonical": forged}
        if leaf == "leaf hash recomputed":
            values["leaf_hash"] = hashlib.sha256(b"\x00" + forged).digest()
        conn.execute(update(EVENTS).where(_at(org, seq)).values(**values))
    report = ledger.verify(org)
    if leaf == "stale leaf hash":
        _assert_tampered(report, seq, "leaf_mismatch")
    else:
        _assert_tampered(report, seq, "mac_mismatch")
        assert "leaf_mismatch" not in _kinds_at(report, seq)
    # Only a fee moved: the indexed columns still agree with the event.
    assert "content_mismatch" not in {f.kind for f in report.findings}


def test_changed_field_resealed_with_a_stolen_hmac_key_is_caught_by_the_checkpoint(
    ledger: Ledger, runtime: Runtime, org: str
) -> None:
    """The MAC chain cannot catch someone who holds the HMAC key; the signed roots do."""
    _sealed_ledger(ledger, org)
    seq = 700
    with tampering(runtime.engine) as conn:
        forged = bytes(_row(conn, org, seq)["canonical"]).replace(b'"fee":2200', b'"fee":9999')
        conn.execute(update(EVENTS).where(_at(org, seq)).values(canonical=forged))
        _reseal_from(conn, org, seq, runtime)
        _cover_tracks(conn, org)
    covering = min(s for s in _checkpoint_sizes(runtime.engine, org) if s > seq)
    report = ledger.verify(org)
    # Found when the recomputed tree reaches the first checkpoint that covers the edited event.
    _assert_tampered(report, covering - 1, "root_mismatch")
    assert {f.kind for f in report.findings} == {"root_mismatch"}


@pytest.mark.parametrize(
    ("column", "value"),
    [
        ("action", "artist.delete"),
        ("target_id", "a-someone-else"),
        ("actor_id", "u-innocent"),
        ("occurred_at", datetime(2020, 1, 1, 12, 0, tzinfo=UTC)),
        ("recorded_at", datetime(2020, 1, 1, 12, 0, tzinfo=UTC)),
        ("id", "01a24000-0000-7000-8000-000000000000"),
    ],
)
def test_changed_indexed_column_only(ledger: Ledger, runtime: Runtime, org: str, column: str, value: object) -> None:
    """The columns used for filtering are copies; changing one is caught against the sealed bytes."""
    _sealed_ledger(ledger, org)
    seq = 800
    with tampering(runtime.engine) as conn:
        conn.execute(update(EVENTS).where(_at(org, seq)).values({column: value}))
    report = ledger.verify(org)
    _assert_tampered(report, seq, "content_mismatch")
    # The sealed bytes are intact, so nothing else is wrong.
    assert [(f.seq, f.kind) for f in report.findings] == [(seq, "content_mismatch")]


def test_indexed_column_stored_as_a_blob(ledger: Ledger, runtime: Runtime, org: str) -> None:
    """SQLite lets a text column hold a BLOB of the same bytes, which `module = 'x'` no longer matches."""
    if runtime.engine.dialect.name != "sqlite":
        pytest.skip("PostgreSQL columns are typed")
    _sealed_ledger(ledger, org)
    seq = 800
    with tampering(runtime.engine) as conn:
        conn.execute(update(EVENTS).where(_at(org, seq)).values(module=text("CAST(module AS BLOB)")))
    report = ledger.verify(org)
    _assert_tampered(report, seq, "content_mismatch")
    assert [(f.seq, f.kind) for f in report.findings] == [(seq, "content_mismatch")]


@pytest.mark.parametrize("column", ["canonical", "leaf_hash", "mac", "hmac_kid"])
def test_sealed_column_stored_with_another_type(ledger: Ledger, runtime: Runtime, org: str, column: str) -> None:
    """SQLite lets a BLOB column hold TEXT (here of bytes that are no UTF-8) and a TEXT column a
    BLOB: verify reports the row, it does not fail to read it."""
    if runtime.engine.dialect.name != "sqlite":
        pytest.skip("PostgreSQL columns are typed")
    _sealed_ledger(ledger, org, count=40)
    other = "BLOB" if column == "hmac_kid" else "TEXT"
    with tampering(runtime.engine) as conn:
        conn.execute(update(EVENTS).where(_at(org, 7)).values({column: text(f"CAST({column} AS {other})")}))
    report = ledger.verify(org)
    _assert_tampered(report, 7, "content_mismatch")
    assert [(f.seq, f.kind) for f in report.findings] == [(7, "content_mismatch")]


def test_filter_column_holding_bytes_that_are_no_utf8(ledger: Ledger, runtime: Runtime, org: str) -> None:
    if runtime.engine.dialect.name != "sqlite":
        pytest.skip("PostgreSQL refuses text that is not UTF-8")
    _sealed_ledger(ledger, org, count=40)
    with tampering(runtime.engine) as conn:
        conn.execute(update(EVENTS).where(_at(org, 7)).values(actor_id=text("CAST(X'75ff2d31' AS TEXT)")))
        conn.execute(update(EVENTS).where(_at(org, 9)).values(module=text("CAST(module AS BLOB)")))
    report = ledger.verify(org)
    _assert_tampered(report, 7, "content_mismatch")
    assert [(f.seq, f.kind) for f in report.findings] == [(7, "content_mismatch"), (9, "content_mismatch")]


def test_sealed_event_set_to_null(ledger: Ledger, runtime: Runtime, org: str) -> None:
    """A NULL event (after dropping NOT NULL) is reported, not hashed as if it were bytes."""
    if runtime.engine.dialect.name != "postgresql":
        pytest.skip("SQLite's NOT NULL cannot be dropped")
    _sealed_ledger(ledger, org, count=40)
    with _set_to_null(runtime.engine, org, 7, "canonical"):
        report = ledger.verify(org)
        _assert_tampered(report, 7, "content_mismatch")
        assert {"content_mismatch", "leaf_mismatch", "mac_mismatch"} <= _kinds_at(report, 7)


@pytest.mark.parametrize("workers", [1, 2])
def test_tampering_found_alike_by_one_or_two_processes(
    runtime: Runtime, ledger: Ledger, org: str, workers: int
) -> None:
    """Two processes verify the chunks while this one checks the checkpoint signatures."""
    _sealed_ledger(ledger, org)
    size = _checkpoint_sizes(runtime.engine, org)[0]
    with tampering(runtime.engine) as conn:
        conn.execute(update(EVENTS).where(_at(org, 70)).values(actor_id="u-innocent"))
        note = conn.execute(
            select(CHECKPOINTS.c.note).where(CHECKPOINTS.c.org_id == org, CHECKPOINTS.c.size == size)
        ).scalar_one()
        conn.execute(
            update(CHECKPOINTS)
            .where(CHECKPOINTS.c.org_id == org, CHECKPOINTS.c.size == size)
            .values(note=note.replace("\n\n", "\nextra line\n\n", 1))
        )
    report = verify_directly(runtime, org, workers=workers, chunk=256)
    assert report.status == "tampered"
    assert [(f.seq, f.kind) for f in report.findings] == [(70, "content_mismatch"), (size, "checkpoint_signature")]


@pytest.mark.parametrize("batch", [1, 3, 7])
def test_where_the_read_slices_fall_changes_no_finding(
    runtime: Runtime, ledger: Ledger, org: str, batch: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A chunk is read in slices of BATCH events (two in flight on PostgreSQL); tampering at, before
    and after slice boundaries is found exactly as when the whole chunk fits in one slice."""
    _sealed_ledger(ledger, org)
    with tampering(runtime.engine) as conn:
        conn.execute(update(EVENTS).where(_at(org, 70)).values(actor_id="u-innocent"))
        conn.execute(update(EVENTS).where(_at(org, 71)).values(module="elsewhere"))
        conn.execute(delete(EVENTS).where(_at(org, 500)))
    whole = verify_directly(runtime, org, workers=1, chunk=256)
    assert [(f.seq, f.kind) for f in whole.findings][:3] == [
        (70, "content_mismatch"),
        (71, "content_mismatch"),
        (500, "missing_event"),
    ]
    monkeypatch.setattr(chunks, "BATCH", batch)
    sliced = verify_directly(runtime, org, workers=1, chunk=256)
    assert sliced.findings == whole.findings
    assert (sliced.status, sliced.events_checked, sliced.size) == (whole.status, whole.events_checked, whole.size)


def test_filter_columns_with_characters_json_may_escape(ledger: Ledger, org: str) -> None:
    """Quotes, backslashes, control and non-ASCII characters in filter columns verify as they are."""
    odd = 'a"b\\c\x01\x1f\x7f\t\u2028é😀/'
    ledger.append_batch(
        org,
        [
            sample_event(actor={"type": "user", "id": odd}, target={"type": "artist", "id": odd + str(i)})
            for i in range(3)
        ],
    )
    report = ledger.verify(org)
    assert report.status == "ok", report


def test_filter_values_shifted_across_a_separator_held_by_the_event(ledger: Ledger, runtime: Runtime, org: str) -> None:
    """PostgreSQL compares the filter columns as one text joined with U+001F separators. An event
    whose actor id holds that separator would let a shifted split of the same text pass; such
    events are compared column by column, so the shift is caught (on SQLite the JSON array is
    compared value by value anyway)."""
    ledger.append_batch(org, [sample_event(actor={"type": "user", "id": "u-1\x1fartist"}) for _ in range(3)])
    ledger.checkpoint_now(org)
    assert ledger.verify(org).status == "ok"
    with tampering(runtime.engine) as conn:
        row = conn.execute(select(EVENTS.c.target_type, EVENTS.c.target_id).where(_at(org, 1))).one()
        assert row.target_type is not None
        # Same joined text: "…\x1fu-1\x1fartist\x1f<type>…" read as actor id "u-1" and target type "artist\x1f<type>".
        conn.execute(
            update(EVENTS).where(_at(org, 1)).values(actor_id="u-1", target_type="artist\x1f" + row.target_type)
        )
    report = ledger.verify(org)
    _assert_tampered(report, 1, "content_mismatch")
    assert [(f.seq, f.kind) for f in report.findings] == [(1, "content_mismatch")]


def test_required_filter_column_set_to_null(ledger: Ledger, runtime: Runtime, org: str) -> None:
    """A NULL in a NOT NULL column (after dropping the constraint) makes the joined text NULL."""
    if runtime.engine.dialect.name != "postgresql":
        pytest.skip("SQLite's NOT NULL cannot be dropped; the JSON array compares null anyway")
    _sealed_ledger(ledger, org, count=40)
    with _set_to_null(runtime.engine, org, 7, "module"):
        report = ledger.verify(org)
        _assert_tampered(report, 7, "content_mismatch")
        assert [(f.seq, f.kind) for f in report.findings] == [(7, "content_mismatch")]


def test_deleted_row(ledger: Ledger, runtime: Runtime, org: str) -> None:
    size = _sealed_ledger(ledger, org)
    seq = 900
    with tampering(runtime.engine) as conn:
        conn.execute(delete(EVENTS).where(_at(org, seq)))
    report = ledger.verify(org)
    _assert_tampered(report, seq, "missing_event")
    assert report.size == size


@pytest.mark.parametrize("head", ["head row left alone", "head row adjusted"])
def test_forged_event_at_the_end(ledger: Ledger, runtime: Runtime, org: str, head: str) -> None:
    size = _sealed_ledger(ledger, org)
    with tampering(runtime.engine) as conn:
        _forge(conn, org, size, like=size - 2)
        if head == "head row adjusted":
            _cover_tracks(conn, org)
    report = ledger.verify(org)
    _assert_tampered(report, size, "mac_mismatch")
    assert report.size == size + 1


def test_forged_event_inserted_in_the_middle(ledger: Ledger, runtime: Runtime, org: str) -> None:
    size = _sealed_ledger(ledger, org)
    seq = 600
    with tampering(runtime.engine) as conn:
        # Make room: move the rows from `seq` on up by one (in two steps, so that no two rows
        # ever share a key on the way).
        shift = 10**9
        params = {"o": org, "s": seq, "d": shift}
        conn.execute(text("UPDATE audit_events SET seq = seq + :d WHERE org_id = :o AND seq >= :s"), params)
        conn.execute(text("UPDATE audit_events SET seq = seq - :d + 1 WHERE org_id = :o AND seq >= :d"), params)
        _forge(conn, org, seq, like=seq - 1)
        _cover_tracks(conn, org)
    report = ledger.verify(org)
    _assert_tampered(report, seq, "mac_mismatch")
    # The displaced event no longer sits where it was sealed.
    assert "content_mismatch" in _kinds_at(report, seq + 1)
    assert report.size == size + 1


def test_reordered_rows(ledger: Ledger, runtime: Runtime, org: str) -> None:
    _sealed_ledger(ledger, org)
    first, second = 600, 1_100
    with tampering(runtime.engine) as conn:
        for old, new in ((first, -1), (second, first), (-1, second)):
            conn.execute(update(EVENTS).where(_at(org, old)).values(seq=new))
    report = ledger.verify(org)
    _assert_tampered(report, first, "mac_mismatch")
    assert "content_mismatch" in _kinds_at(report, first)
    assert {"content_mismatch", "mac_mismatch"} <= _kinds_at(report, second)


def test_truncated_tail_is_caught_by_the_checkpoints(ledger: Ledger, runtime: Runtime, org: str) -> None:
    """Delete the last events and rewrite the head row: only the signed checkpoints remember."""
    size = _sealed_ledger(ledger, org)
    cut = 1_200
    with tampering(runtime.engine) as conn:
        conn.execute(delete(EVENTS).where(EVENTS.c.org_id == org, EVENTS.c.seq >= cut))
        _cover_tracks(conn, org)
    report = ledger.verify(org)
    _assert_tampered(report, cut, "truncated")
    assert {f.kind for f in report.findings} == {"truncated"}
    assert report.size == cut
    assert any(f"covers {size} events" in f.detail for f in report.findings), report


def test_truncated_tail_and_checkpoints_are_caught_by_a_trusted_checkpoint(
    ledger: Ledger, runtime: Runtime, org: str
) -> None:
    """A DBA who also deletes the checkpoints leaves a consistent, shorter ledger. An auditor who
    kept a checkpoint note from before still catches it."""
    size = _sealed_ledger(ledger, org)
    kept = ledger.checkpoint(org).note
    assert Checkpoint.parse(Note.parse(kept).body).size == size
    cut = 1_200
    with tampering(runtime.engine) as conn:
        conn.execute(delete(EVENTS).where(EVENTS.c.org_id == org, EVENTS.c.seq >= cut))
        conn.execute(delete(CHECKPOINTS).where(CHECKPOINTS.c.org_id == org, CHECKPOINTS.c.size > cut))
        _cover_tracks(conn, org)
    report = ledger.verify(org, trusted_checkpoint=kept)
    _assert_tampered(report, cut, "truncated")
    assert "trusted checkpoint" in next(f.detail for f in report.findings if f.kind == "truncated")
    # Without it, the shortened ledger is self-consistent: the outside checkpoint is what counts.
    assert ledger.verify(org).status == "ok"


def _attacker_signer(runtime: Runtime) -> NoteSigner:
    # Same key name as the instance's own key: only the key (and so the key id) differs.
    return NoteSigner(runtime.keyring.instance_name, Ed25519PrivateKey.generate())


@pytest.mark.parametrize("history", ["same body", "history rewritten"])
def test_checkpoint_resigned_with_an_attackers_key(ledger: Ledger, runtime: Runtime, org: str, history: str) -> None:
    _sealed_ledger(ledger, org)
    signer = _attacker_signer(runtime)
    seq = 700
    with tampering(runtime.engine) as conn:
        if history == "history rewritten":
            forged = bytes(_row(conn, org, seq)["canonical"]).replace(b'"fee":2200', b'"fee":9999')
            conn.execute(update(EVENTS).where(_at(org, seq)).values(canonical=forged))
            _reseal_from(conn, org, seq, runtime)
            _cover_tracks(conn, org)
            targets = [s for s in _checkpoint_sizes(runtime.engine, org) if s > seq]
        else:
            targets = [1_500]
        leaves = [
            bytes(x)
            for x in conn.execute(
                select(EVENTS.c.leaf_hash).where(EVENTS.c.org_id == org).order_by(EVENTS.c.seq)
            ).scalars()
        ]
        for size in targets:
            note = Note.parse(
                conn.execute(
                    select(CHECKPOINTS.c.note).where(CHECKPOINTS.c.org_id == org, CHECKPOINTS.c.size == size)
                ).scalar_one()
            )
            old = Checkpoint.parse(note.body)
            frontier = CompactRange()
            frontier.extend(leaves[:size])
            body = Checkpoint(old.origin, size, frontier.root(), old.extensions).body()
            conn.execute(
                update(CHECKPOINTS)
                .where(CHECKPOINTS.c.org_id == org, CHECKPOINTS.c.size == size)
                .values(note=sign_note(body, [signer]).text(), root=frontier.root())
            )
    report = ledger.verify(org)
    assert report.status == "tampered", report
    assert report.first_broken_seq == min(targets), report
    assert any(kind.startswith("checkpoint_") for kind in _kinds_at(report, min(targets))), report


def test_checkpoint_note_edited_without_resigning(ledger: Ledger, runtime: Runtime, org: str) -> None:
    _sealed_ledger(ledger, org)
    size = 1_500
    fake_root = hashlib.sha256(b"another history").digest()
    with tampering(runtime.engine) as conn:
        note = conn.execute(
            select(CHECKPOINTS.c.note).where(CHECKPOINTS.c.org_id == org, CHECKPOINTS.c.size == size)
        ).scalar_one()
        real_root = base64.b64encode(Checkpoint.parse(Note.parse(note).body).root).decode()
        edited = note.replace(real_root, base64.b64encode(fake_root).decode())
        assert edited != note
        conn.execute(
            update(CHECKPOINTS)
            .where(CHECKPOINTS.c.org_id == org, CHECKPOINTS.c.size == size)
            .values(note=edited, root=fake_root)
        )
    report = ledger.verify(org)
    _assert_tampered(report, size, "checkpoint_signature")


# --- keys: swapped versus missing ----------------------------------------------------------------


@pytest.fixture
def own_runtime(runtime: Runtime, tmp_path: Path) -> Iterator[Runtime]:
    """A runtime on the session database with a keyring of its own, safe to rotate and edit."""
    settings = Settings(
        database_url=runtime.settings.database_url,
        keys_dir=tmp_path / "keys",
        exports_dir=tmp_path / "exports",
        instance_name=runtime.settings.instance_name,
        checkpoint_every_seconds=runtime.settings.checkpoint_every_seconds,
    )
    rt = Runtime.start(settings)
    # Tests share one database between keyrings, which no installation does: adopt it explicitly.
    rt.keyring.created = False
    try:
        yield rt
    finally:
        rt.close()


def _rotated_ledger(rt: Runtime) -> tuple[Ledger, str, str, str]:
    """An organisation whose events 0..299 were sealed under one HMAC key and 300..599 under the
    next; returns the ledger, the org and both key ids."""
    ledger = Ledger(rt)
    with rt.sessions.begin() as session:
        org = service.create_org(session, slug=f"t-{new_id()[-12:]}", name="Key test org").id
    old = rt.keyring.hmac_key().kid
    ledger.append_batch(org, [_event(i) for i in range(300)])
    ledger.checkpoint_now(org)
    new = rt.keyring.rotate("hmac")
    ledger.append_batch(org, [_event(i) for i in range(300, 600)])
    ledger.checkpoint_now(org)
    report = ledger.verify(org)
    assert report.status == "ok", report
    with rt.engine.connect() as conn:
        kids = conn.execute(
            select(EVENTS.c.hmac_kid, EVENTS.c.seq).where(EVENTS.c.org_id == org, EVENTS.c.seq.in_([0, 599]))
        ).all()
    assert sorted(kids, key=lambda r: r.seq) == [(old, 0), (new, 599)]
    return ledger, org, old, new


def test_swapped_hmac_key_id_is_tampering(own_runtime: Runtime) -> None:
    ledger, org, _old, new = _rotated_ledger(own_runtime)
    seq = 150
    with tampering(own_runtime.engine) as conn:
        conn.execute(update(EVENTS).where(_at(org, seq)).values(hmac_kid=new))
    report = ledger.verify(org)
    _assert_tampered(report, seq, "mac_mismatch")


def test_missing_hmac_key_is_unverifiable_not_tampered(own_runtime: Runtime) -> None:
    ledger, org, old, _new = _rotated_ledger(own_runtime)
    path = own_runtime.settings.keys_dir / KEYRING_FILE
    data = json.loads(path.read_text())
    data["hmac"] = [k for k in data["hmac"] if k["kid"] != old]
    path.write_text(json.dumps(data))
    # Make sure the change is seen even on a file system with coarse timestamps.
    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))

    report = ledger.verify(org)
    assert report.status == "unverifiable", report
    assert report.first_broken_seq is None
    assert [(f.seq, f.kind) for f in report.findings] == [(0, "unknown_hmac_key")]
    assert old in report.findings[0].detail

    # A missing key hides nothing else: tampering under a key that is present is still found.
    seq = 450
    with tampering(own_runtime.engine) as conn:
        conn.execute(update(EVENTS).where(_at(org, seq)).values(mac=secrets.token_bytes(32)))
    report = ledger.verify(org)
    _assert_tampered(report, seq, "mac_mismatch")
    assert "unknown_hmac_key" in _kinds_at(report, 0)
