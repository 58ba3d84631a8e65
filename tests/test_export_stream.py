"""How exports stream: binary rows on PostgreSQL, digests on a thread, and failures that surface."""

from __future__ import annotations

import base64
import hashlib
import hmac
import io
from concurrent.futures import ThreadPoolExecutor

import pytest
from sqlalchemy import select

from gardien.audit.export import _binary_results, _DigestingWriter
from gardien.audit.models import EVENTS
from gardien.audit.schemas import EventFilter
from gardien.audit.service import Ledger
from gardien.core.keyring import HmacKey
from gardien.core.runtime import Runtime

EVENT = {"module": "crm", "action": "contact.update", "crud": "update", "actor": {"type": "user", "id": "u-1"}}


def test_an_export_reads_in_binary_on_postgresql_and_leaves_the_connection_as_it_was(
    runtime: Runtime, ledger: Ledger, org: str
) -> None:
    ledger.append_batch(org, [EVENT, {**EVENT, "target": {"type": "contact", "id": "c-1"}}])
    stmt = select(EVENTS.c.seq, EVENTS.c.canonical, EVENTS.c.leaf_hash).where(EVENTS.c.org_id == org)
    with runtime.engine.connect() as conn:
        raw = conn.connection.dbapi_connection
        before = getattr(raw, "server_cursor_factory", None)
        with _binary_results(conn):
            if runtime.engine.dialect.name == "postgresql":
                assert getattr(raw, "server_cursor_factory", None) is not before
            rows = conn.execution_options(stream_results=True, yield_per=1).execute(stmt.order_by(EVENTS.c.seq)).all()
        assert getattr(raw, "server_cursor_factory", None) is before
        # Binary or text, the driver hands over the same values.
        assert [type(v) for v in rows[0]] == [int, bytes, bytes]
        assert rows == conn.execute(stmt.order_by(EVENTS.c.seq)).all()
        with pytest.raises(RuntimeError), _binary_results(conn):
            raise RuntimeError("the export failed")
        assert getattr(raw, "server_cursor_factory", None) is before
    result = ledger.export(org, "jsonl", EventFilter(), actor={"type": "user", "id": "auditor"})
    payload = result.payload_path.read_bytes()
    assert payload == b"".join(row.canonical + b"\n" for row in rows)
    assert hashlib.sha256(payload).hexdigest() == result.manifest["payload_sha256"]


class _FailingFile(io.BytesIO):
    def write(self, data: bytes) -> int:  # type: ignore[override]
        raise OSError(28, "No space left on device")


def test_a_write_that_fails_on_the_digest_thread_fails_the_export() -> None:
    key = HmacKey("k1", b"\x01" * 32)
    with ThreadPoolExecutor(1) as digester:
        out = _DigestingWriter(_FailingFile(), key, digester)
        out.write(b"x" * 100)
        with pytest.raises(OSError, match="No space left"):
            out.finish()


def test_the_digests_cover_every_byte_in_order_across_chunks() -> None:
    key = HmacKey("k1", b"\x01" * 32)
    pieces = [bytes([i % 251]) * (300_001 + i) for i in range(9)]  # several MiB, odd sizes
    handle = io.BytesIO()
    with ThreadPoolExecutor(1) as digester:
        out = _DigestingWriter(handle, key, digester)
        for piece in pieces:
            out.write(piece)
        out.finish()
    whole = b"".join(pieces)
    assert handle.getvalue() == whole
    assert out.sha.hexdigest() == hashlib.sha256(whole).hexdigest()
    expected = hmac.new(key.secret, base64.b64encode(whole), hashlib.sha256).hexdigest()
    assert out.b64mac.hexdigest() == expected
