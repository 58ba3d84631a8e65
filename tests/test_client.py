"""The Python SDK against a real Gardien server (uvicorn on loopback), sync and async."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from gardien.app import create_app
from gardien.audit.checkpoint import Checkpoint, Note, NoteSigner, sign_note
from gardien.audit.signing import checkpoint_signer, trusted_verifiers
from gardien.client import (
    AsyncGardienClient,
    GardienClient,
    GardienError,
    Receipt,
    VerificationError,
)
from gardien.core.roles import Role
from gardien.core.runtime import Runtime
from tests.conftest import _free_port, sample_event


@pytest.fixture
def vkeys(runtime: Runtime) -> list[str]:
    """The server's public keys, obtained out of band (as an operator would pin them)."""
    return [v.vkey() for v in trusted_verifiers(runtime.keyring)]


@pytest.fixture
def writer(live_server: str, tokens: dict[Role, str], vkeys: list[str]) -> Iterator[GardienClient]:
    with GardienClient(live_server, tokens[Role.SERVICE], trusted_keys=vkeys) as client:
        yield client


@pytest.fixture
def reader(live_server: str, tokens: dict[Role, str], vkeys: list[str]) -> Iterator[GardienClient]:
    with GardienClient(live_server, tokens[Role.AUDITOR], trusted_keys=vkeys) as client:
        yield client


def wait_for_checkpoint(client: GardienClient, above: int, timeout: float = 10.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        try:
            checkpoint = client.latest_checkpoint()
            if checkpoint["size"] > above:
                return checkpoint
        except GardienError as exc:
            if exc.status != 404:
                raise
        assert time.monotonic() < deadline, f"no checkpoint above {above}"
        time.sleep(0.05)


def other_key(runtime: Runtime) -> NoteSigner:
    """A key with the server's key name that is not the server's key."""
    return NoteSigner(runtime.keyring.instance_name, Ed25519PrivateKey.generate())


# --- appending and reading ------------------------------------------------------------------------


def test_append_batch_and_iterate_across_pages(writer: GardienClient, reader: GardienClient) -> None:
    one = writer.append(sample_event(request_id="req-1"))
    batch = writer.append_batch(
        [sample_event(target={"type": "artist", "id": f"a-{i}"}) for i in range(4)], request_id="req-2"
    )
    assert isinstance(one, Receipt) and len(batch) == 4
    assert [r.seq for r in batch] == list(range(one.seq + 1, one.seq + 5))
    assert len(one.leaf_hash) == 64 and one.recorded_at.tzinfo is not None

    events = list(reader.events(module="bookings", page_size=2))  # three pages
    assert [e["id"] for e in events] == [one.id, *(r.id for r in batch)]
    assert [e["request_id"] for e in events] == ["req-1"] + ["req-2"] * 4
    assert [e["target"]["id"] for e in events[1:]] == ["a-0", "a-1", "a-2", "a-3"]
    assert list(reader.events(module="bookings", target="a-2")) == [events[3]]

    got = reader.event(one.id)
    assert got == events[0]
    assert got["actor"] == {"type": "user", "id": "u-42", "display": "Émilie Dupont"}


def test_filters_accept_datetimes(writer: GardienClient, reader: GardienClient) -> None:
    from datetime import UTC, datetime, timedelta

    receipt = writer.append(sample_event())
    since = receipt.recorded_at - timedelta(minutes=1)
    assert [e["id"] for e in reader.events(module="bookings", since=since)] == [receipt.id]
    assert list(reader.events(module="bookings", until=since)) == []
    with pytest.raises(ValueError, match="naive"):
        list(reader.events(since=datetime(2026, 1, 1)))
    assert datetime.now(UTC) > since


# --- local verification ---------------------------------------------------------------------------


def test_verify_inclusion_of_a_receipt(writer: GardienClient, reader: GardienClient) -> None:
    receipts = writer.append_batch([sample_event() for _ in range(5)])
    for receipt in (receipts[0], receipts[3]):
        proof = reader.verify_inclusion(receipt)
        assert proof.seq == receipt.seq
        assert proof.leaf_hash.hex() == receipt.leaf_hash
        assert proof.tree_size > receipt.seq
        assert proof.verified_by and proof.event["id"] == receipt.id
        assert Checkpoint.parse(Note.parse(proof.checkpoint).body).size == proof.tree_size

    # By id, and against an explicit checkpoint size.
    again = reader.verify_inclusion(receipts[1].id, size=proof.tree_size)
    assert again.tree_size == proof.tree_size
    raw = reader.inclusion_proof(receipts[1].seq, size=proof.tree_size)
    assert raw["seq"] == receipts[1].seq and raw["tree_size"] == proof.tree_size
    assert reader.inclusion_proof(receipts[1].id, size=proof.tree_size) == raw


def test_verify_inclusion_refuses_an_untrusted_key(
    live_server: str, tokens: dict[Role, str], runtime: Runtime, writer: GardienClient
) -> None:
    receipt = writer.append(sample_event())
    wrong = [other_key(runtime).vkey()]
    with GardienClient(live_server, tokens[Role.AUDITOR], trusted_keys=wrong) as client:
        with pytest.raises(VerificationError, match="no signature by a trusted key"):
            client.verify_inclusion(receipt)
        with pytest.raises(VerificationError, match="no signature by a trusted key"):
            client.verify_consistency(1)


def test_verify_inclusion_refuses_a_receipt_the_event_does_not_match(
    writer: GardienClient, reader: GardienClient
) -> None:
    receipt = writer.append(sample_event())
    forged = Receipt(receipt.id, receipt.seq, receipt.recorded_at, "00" * 32)
    with pytest.raises(VerificationError, match="altered"):
        reader.verify_inclusion(forged)


def test_keys_fetched_on_first_use_when_not_pinned(
    live_server: str, tokens: dict[Role, str], vkeys: list[str], writer: GardienClient
) -> None:
    receipt = writer.append(sample_event())
    with GardienClient(live_server, tokens[Role.AUDITOR]) as client:
        assert not client.keys_pinned
        assert client.verify_inclusion(receipt).seq == receipt.seq
        assert [v.vkey() for v in client.trusted_verifiers()] == vkeys
    assert writer.keys_pinned
    with pytest.raises(ValueError, match="verifier key"):
        GardienClient(live_server, tokens[Role.AUDITOR], trusted_keys=["not-a-key"])


def test_verify_consistency(
    runtime: Runtime, writer: GardienClient, reader: GardienClient, tokens: dict[Role, str], live_server: str
) -> None:
    first = reader.verify_inclusion(writer.append(sample_event()))
    old_size = first.tree_size
    writer.append_batch([sample_event() for _ in range(7)])
    new = wait_for_checkpoint(reader, old_size)

    result = reader.verify_consistency(old_size, known_old_checkpoint=first.checkpoint)
    assert result.old_size == old_size and result.new_size >= new["size"] > old_size
    assert reader.verify_consistency(old_size, old_size).new_root == first.root

    # An operator key (verifier, not reader) is enough for proofs.
    with GardienClient(live_server, tokens[Role.OPERATOR], trusted_keys=[reader.trusted_verifiers()[0].vkey()]) as op:
        assert op.verify_consistency(old_size, result.new_size).new_root == result.new_root

    # A second, validly signed view of the old tree: the server's history forked.
    old = Checkpoint.parse(Note.parse(first.checkpoint).body)
    fork = Checkpoint(old.origin, old.size, bytes(32), old.extensions)
    forked_note = sign_note(fork.body(), [checkpoint_signer(runtime.keyring)]).text()
    with pytest.raises(VerificationError, match="forked"):
        reader.verify_consistency(old_size, result.new_size, known_old_checkpoint=forked_note)


def test_server_side_verify(writer: GardienClient, reader: GardienClient) -> None:
    writer.append_batch([sample_event() for _ in range(3)])
    report = reader.verify()
    assert report["status"] == "ok"
    assert report["events_checked"] >= 3


# --- exports --------------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["jsonl", "json", "csv"])
def test_export_roundtrip(fmt: Any, writer: GardienClient, reader: GardienClient, tmp_path: Path) -> None:
    receipts = writer.append_batch([sample_event() for _ in range(6)])
    result = reader.export(fmt, dest_dir=tmp_path / "out", module="bookings")
    assert result.check.ok, result.check.problems
    assert result.payload_path.exists() and result.manifest_path.exists()
    assert result.payload_path.parent == tmp_path / "out"
    assert result.manifest["count"] == 6 == result.check.count
    assert result.manifest["filter"] == {"module": "bookings"}
    assert result.manifest["first_seq"] == receipts[0].seq
    assert not list((tmp_path / "out").glob("*.partial"))

    # The whole ledger: the verifier can then recompute the signed root.
    everything = reader.export(fmt, dest_dir=tmp_path / "all")
    assert everything.check.ok and everything.check.root_checked


def test_export_refused_with_an_untrusted_key(
    live_server: str, tokens: dict[Role, str], runtime: Runtime, writer: GardienClient, tmp_path: Path
) -> None:
    writer.append(sample_event())
    untrusting = GardienClient(live_server, tokens[Role.AUDITOR], trusted_keys=[other_key(runtime).vkey()])
    with untrusting, pytest.raises(VerificationError, match="not a trusted key"):
        untrusting.export("jsonl", dest_dir=tmp_path)


# --- errors and retries ---------------------------------------------------------------------------


def test_invalid_events_raise_with_field_paths(writer: GardienClient) -> None:
    with pytest.raises(GardienError) as caught:
        writer.append(sample_event(action="Not An Action", crud="upsert"))
    error = caught.value
    assert error.status == 422
    assert error.title == "Invalid input"
    assert {"action", "crud"} <= set(error.fields)
    assert error.problem["type"].endswith("/validation")
    assert "action" in error.detail

    with pytest.raises(GardienError) as caught:
        writer.append_batch([sample_event(), sample_event(actor={"type": "user"})])
    assert caught.value.status == 422
    assert "events.1.actor.id" in caught.value.fields


def test_roles_are_enforced(writer: GardienClient, reader: GardienClient, tmp_path: Path) -> None:
    with pytest.raises(GardienError) as caught:
        list(writer.events())
    assert caught.value.status == 403
    assert caught.value.title == "Forbidden"
    assert "service" in caught.value.detail
    with pytest.raises(GardienError) as caught:
        reader.append(sample_event())
    assert caught.value.status == 403
    with pytest.raises(GardienError) as caught:
        writer.export("jsonl", dest_dir=tmp_path)
    assert caught.value.status == 403


def test_unknown_key_and_missing_event(live_server: str, reader: GardienClient) -> None:
    stranger = GardienClient(live_server, "gdn_aaaaaaaaaaaa_" + "x" * 43)
    with stranger, pytest.raises(GardienError) as caught:
        stranger.append(sample_event())
    assert caught.value.status == 401
    with pytest.raises(GardienError) as caught:
        reader.event("0190f0f0-0000-7000-8000-000000000000")
    assert caught.value.status == 404


def test_no_answer_after_retries() -> None:
    url = f"http://127.0.0.1:{_free_port()}"  # nothing listens there
    started = time.monotonic()
    with GardienClient(url, "gdn_x", retries=2, backoff=0.01) as client, pytest.raises(GardienError) as caught:
        client.append(sample_event())
    assert caught.value.status is None
    assert isinstance(caught.value.__cause__, httpx.ConnectError)
    assert time.monotonic() - started < 5


class Unavailable:
    """Fault injection in front of the real application: the first `failures` requests get 503."""

    def __init__(self, app: Any, failures: int) -> None:
        self.app = app
        self.failures = failures
        self.requests = 0

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            self.requests += 1
            if self.requests <= self.failures:
                await send({"type": "http.response.start", "status": 503, "headers": [(b"retry-after", b"0")]})
                await send({"type": "http.response.body", "body": b""})
                return
        await self.app(scope, receive, send)


def test_append_retries_503(runtime: Runtime, tokens: dict[Role, str]) -> None:
    app = create_app(runtime=runtime)
    ledger = app.state.ledger
    ledger.start()  # what the lifespan does; ASGITransport does not run it
    try:

        async def scenario() -> None:
            flaky = Unavailable(app, failures=2)
            transport = httpx.ASGITransport(app=flaky)
            async with AsyncGardienClient(
                "http://gardien", tokens[Role.SERVICE], transport=transport, backoff=0.01
            ) as client:
                receipt = await client.append(sample_event())
            assert flaky.requests == 3 and receipt.seq >= 0

            refused = Unavailable(app, failures=5)
            transport = httpx.ASGITransport(app=refused)
            async with AsyncGardienClient(
                "http://gardien", tokens[Role.SERVICE], transport=transport, retries=1, backoff=0.01
            ) as client:
                with pytest.raises(GardienError) as caught:
                    await client.append(sample_event())
            assert caught.value.status == 503 and refused.requests == 2

        asyncio.run(scenario())
    finally:
        ledger.stop()


# --- the async client -----------------------------------------------------------------------------


def test_async_client_roundtrip(
    live_server: str, tokens: dict[Role, str], vkeys: list[str], runtime: Runtime, tmp_path: Path
) -> None:
    async def scenario() -> None:
        async with (
            AsyncGardienClient(live_server, tokens[Role.SERVICE], trusted_keys=vkeys) as writer,
            AsyncGardienClient(live_server, tokens[Role.AUDITOR], trusted_keys=vkeys) as reader,
        ):
            one = await writer.append(sample_event())
            batch = await writer.append_batch([sample_event() for _ in range(4)])
            ids = [e["id"] async for e in reader.events(module="bookings", page_size=2)]
            assert ids == [one.id, *(r.id for r in batch)]
            assert (await reader.event(one.id))["seq"] == one.seq

            first = await reader.verify_inclusion(one)
            assert first.seq == one.seq and first.verified_by
            await writer.append_batch([sample_event() for _ in range(3)])
            deadline = time.monotonic() + 10
            while (await reader.latest_checkpoint())["size"] <= first.tree_size:
                assert time.monotonic() < deadline
                await asyncio.sleep(0.05)
            grown = await reader.verify_consistency(first.tree_size, known_old_checkpoint=first.checkpoint)
            assert grown.new_size > first.tree_size

            exported = await reader.export("jsonl", dest_dir=tmp_path, module="bookings")
            assert exported.check.ok and exported.manifest["count"] == 8
            assert (await reader.verify())["status"] == "ok"

            with pytest.raises(GardienError) as caught:
                await writer.append(sample_event(crud="nope"))
            assert caught.value.status == 422 and caught.value.fields == ["crud"]
            with pytest.raises(GardienError) as caught:
                [e async for e in writer.events()]
            assert caught.value.status == 403

        async with AsyncGardienClient(
            live_server, tokens[Role.AUDITOR], trusted_keys=[other_key(runtime).vkey()]
        ) as untrusting:
            with pytest.raises(VerificationError):
                await untrusting.verify_inclusion(one.id)

    asyncio.run(scenario())


# --- packaging ------------------------------------------------------------------------------------


def test_sdk_does_not_import_server_modules() -> None:
    code = (
        "import sys, gardien.client as c; c.GardienClient; c.AsyncGardienClient; "
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('fastapi', 'starlette', 'sqlalchemy', "
        "'uvicorn', 'alembic', 'psycopg') or m.startswith(('gardien.core', 'gardien.audit.models', "
        "'gardien.audit.service', 'gardien.audit.api'))); print(bad); sys.exit(1 if bad else 0)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
