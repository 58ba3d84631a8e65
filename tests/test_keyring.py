"""The keyring: first run, rotation (in process and with `gardien keys rotate`), instance names,
and the HMAC shortcut against the standard library.

Tests that rotate keys use a runtime with a keyring of their own on the session database; the
session keyring is never touched.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import shutil
import stat
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import select
from typer.testing import CliRunner

from gardien.audit.checkpoint import Note, ed25519_key_id
from gardien.audit.models import CHECKPOINTS, EVENTS
from gardien.audit.service import Ledger
from gardien.cli import app
from gardien.core import service
from gardien.core.keyring import KEY_KINDS, KEYRING_FILE, HmacKey, KeyKind, Keyring, KeyringError
from gardien.core.runtime import Runtime
from gardien.core.settings import Settings
from tests.conftest import sample_event

INSTANCE = "gardien.test"


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def _file(directory: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((directory / KEYRING_FILE).read_text())
    return data


def _kids(directory: Path, kind: str) -> list[str]:
    return [entry["kid"] for entry in _file(directory)[kind]]


# --- first run and rotation ------------------------------------------------------------------------


def test_first_run_generates_one_key_of_each_kind(tmp_path: Path) -> None:
    directory = tmp_path / "keys"
    keyring = Keyring.open(directory, INSTANCE)
    path = directory / KEYRING_FILE
    assert _mode(path) == 0o600
    assert _mode(directory) & 0o077 == 0

    data = _file(directory)
    assert data["instance_name"] == INSTANCE
    for kind in KEY_KINDS:
        assert len(data[kind]) == 1, kind
        assert "retired_at" not in data[kind][0]
        assert keyring.active(kind).kid == data[kind][0]["kid"]
    assert len({data[kind][0]["kid"] for kind in KEY_KINDS}) == 3
    assert len(base64.b64decode(data["hmac"][0]["secret"])) == 32
    assert len(base64.b64decode(data["encryption"][0]["secret"])) == 64
    signing = data["signing"][0]
    private = Ed25519PrivateKey.from_private_bytes(base64.b64decode(signing["secret"]))
    assert private.public_key().public_bytes_raw() == base64.b64decode(signing["public"])

    # A second start reads the keys it made; it does not make new ones.
    before = path.read_bytes()
    again = Keyring.open(directory, INSTANCE)
    assert path.read_bytes() == before
    for kind in KEY_KINDS:
        assert again.active(kind).kid == keyring.active(kind).kid


def test_two_first_runs_make_different_keys(tmp_path: Path) -> None:
    one = Keyring.open(tmp_path / "a", INSTANCE)
    two = Keyring.open(tmp_path / "b", INSTANCE)
    assert one.hmac_key().secret != two.hmac_key().secret
    assert one.signing_public_keys()[0].public_key != two.signing_public_keys()[0].public_key


@pytest.mark.parametrize("kind", KEY_KINDS)
def test_rotation_adds_a_key_and_retires_the_old_one(tmp_path: Path, kind: KeyKind) -> None:
    directory = tmp_path / "keys"
    keyring = Keyring.open(directory, INSTANCE)
    untouched = {other: _kids(directory, other) for other in KEY_KINDS if other != kind}
    old = _file(directory)[kind][0]

    new_kid = keyring.rotate(kind)

    assert new_kid != old["kid"]
    entries = _file(directory)[kind]
    assert [e["kid"] for e in entries] == [old["kid"], new_kid]
    assert entries[0]["secret"] == old["secret"]  # kept as it was, only retired
    assert entries[0].get("retired_at")
    assert "retired_at" not in entries[1]
    assert entries[1]["secret"] != old["secret"]
    for other, kids in untouched.items():
        assert _kids(directory, other) == kids
    assert _mode(directory / KEYRING_FILE) == 0o600

    # Another process opening the keyring sees the same: the new key in use, the old one kept.
    reopened = Keyring.open(directory, INSTANCE)
    assert reopened.active(kind).kid == new_kid
    old_secret = base64.b64decode(old["secret"])
    if kind == "hmac":
        assert set(reopened.hmac_keys()) == {old["kid"], new_kid}
        assert reopened.hmac_key(old["kid"]).secret == old_secret
        assert reopened.hmac_key().kid == new_kid
    elif kind == "signing":
        published = reopened.signing_public_keys()
        assert [k.kid for k in published] == [old["kid"], new_kid]
        assert published[0].retired_at is not None and published[1].retired_at is None
        assert reopened.signing_key()[0] == new_kid
    else:
        assert reopened.encryption_key(old["kid"]) == (old["kid"], old_secret)
        assert reopened.encryption_key()[0] == new_kid


def test_keyring_of_another_instance_is_refused(tmp_path: Path) -> None:
    directory = tmp_path / "keys"
    Keyring.open(directory, "gardien.prod")
    before = (directory / KEYRING_FILE).read_bytes()
    with pytest.raises(KeyringError, match=r"belongs to instance 'gardien\.prod', not 'gardien\.staging'"):
        Keyring.open(directory, "gardien.staging")

    # The command line says the same, without a traceback, and changes nothing.
    env = {
        "GARDIEN_KEYS_DIR": str(directory),
        "GARDIEN_INSTANCE_NAME": "gardien.staging",
        "GARDIEN_DATABASE_URL": f"sqlite:///{tmp_path / 'unused.db'}",
    }
    result = CliRunner().invoke(app, ["keys", "rotate"], env=env)
    assert result.exit_code == 1, result.output
    assert not isinstance(result.exception, KeyringError), result.exception
    assert "belongs to instance 'gardien.prod', not 'gardien.staging'" in result.output
    assert (directory / KEYRING_FILE).read_bytes() == before


# --- rotation and the ledger -----------------------------------------------------------------------


@pytest.fixture
def own_runtime(runtime: Runtime, tmp_path: Path) -> Iterator[Runtime]:
    """A runtime on the session database with a keyring of its own, safe to rotate."""
    rt = Runtime.start(
        Settings(
            database_url=runtime.settings.database_url,
            keys_dir=tmp_path / "keys",
            exports_dir=tmp_path / "exports",
            instance_name=INSTANCE,
            checkpoint_every_seconds=runtime.settings.checkpoint_every_seconds,
        )
    )
    # Tests share one database between keyrings, which no installation does: adopt it explicitly.
    rt.keyring.created = False
    try:
        yield rt
    finally:
        rt.close()


def _new_org(rt: Runtime) -> str:
    with rt.sessions.begin() as session:
        return service.create_org(session, slug=f"k-{uuid.uuid4().hex[:12]}", name="Keyring test").id


def _hmac_kids(rt: Runtime, org: str) -> list[str]:
    with rt.engine.connect() as conn:
        return list(
            conn.execute(select(EVENTS.c.hmac_kid).where(EVENTS.c.org_id == org).order_by(EVENTS.c.seq)).scalars()
        )


def _note_key_ids(rt: Runtime, org: str) -> list[bytes]:
    """The key id that signed each checkpoint, in size order."""
    with rt.engine.connect() as conn:
        notes = conn.execute(
            select(CHECKPOINTS.c.note).where(CHECKPOINTS.c.org_id == org).order_by(CHECKPOINTS.c.size)
        ).scalars()
        return [Note.parse(note).signatures[0].key_id for note in notes]


def _key_id(rt: Runtime, kid: str) -> bytes:
    public = next(k.public_key for k in rt.keyring.signing_public_keys() if k.kid == kid)
    return ed25519_key_id(INSTANCE, public)


def test_events_sealed_before_and_after_rotation_verify(own_runtime: Runtime) -> None:
    rt = own_runtime
    ledger = Ledger(rt)
    org = _new_org(rt)
    old_hmac, old_signing = rt.keyring.hmac_key().kid, rt.keyring.signing_key()[0]
    ledger.append_batch(org, [sample_event(fields={"n": i}) for i in range(50)])
    ledger.checkpoint_now(org)

    new_hmac, new_signing = rt.keyring.rotate("hmac"), rt.keyring.rotate("signing")
    ledger.append_batch(org, [sample_event(fields={"n": i}) for i in range(50, 100)])
    ledger.checkpoint_now(org)

    assert _hmac_kids(rt, org) == [old_hmac] * 50 + [new_hmac] * 50
    key_ids = _note_key_ids(rt, org)
    assert key_ids[0] == _key_id(rt, old_signing)
    assert key_ids[-1] == _key_id(rt, new_signing)
    report = ledger.verify(org)
    assert report.status == "ok", report
    assert report.events_checked == 100
    assert report.checkpoints_checked == len(key_ids) >= 2
    published = {k.kid: k for k in ledger.public_keys()}
    assert set(published) == {old_signing, new_signing}
    assert published[old_signing].retired_at is not None

    # A restarted Gardien, reading the keyring from disk, agrees.
    restarted = Runtime.start(rt.settings)
    try:
        assert Ledger(restarted).verify(org).status == "ok"
    finally:
        restarted.close()


def test_cli_rotate_takes_effect_in_a_running_instance(own_runtime: Runtime) -> None:
    rt = own_runtime
    ledger = Ledger(rt)
    org = _new_org(rt)
    ledger.append_batch(org, [sample_event(fields={"n": i}) for i in range(10)])
    ledger.checkpoint_now(org)
    old = {kind: _kids(rt.settings.keys_dir, kind) for kind in KEY_KINDS}
    env = {
        "GARDIEN_KEYS_DIR": str(rt.settings.keys_dir),
        "GARDIEN_DATABASE_URL": rt.settings.database_url,
        "GARDIEN_INSTANCE_NAME": INSTANCE,
    }

    result = CliRunner().invoke(app, ["keys", "rotate"], env=env)

    assert result.exit_code == 0, result.output
    new = {}
    for kind in KEY_KINDS:
        kids = _kids(rt.settings.keys_dir, kind)
        assert kids[:-1] == old[kind] and len(kids) == 2
        new[kind] = kids[-1]
        assert f"{kind}: new key {new[kind]}" in result.output
    assert _mode(rt.settings.keys_dir / KEYRING_FILE) == 0o600

    # The instance that was already running seals from now on with the new keys...
    ledger.append(org, sample_event())
    ledger.checkpoint_now(org)
    assert _hmac_kids(rt, org)[-1] == new["hmac"]
    assert _note_key_ids(rt, org)[-1] == _key_id(rt, new["signing"])
    # ...and what the old keys sealed still verifies.
    report = ledger.verify(org)
    assert report.status == "ok", report
    assert _hmac_kids(rt, org)[:10] == old["hmac"] * 10

    # One kind at a time, and a clear refusal for a kind that does not exist.
    only = CliRunner().invoke(app, ["keys", "rotate", "--kind", "hmac"], env=env)
    assert only.exit_code == 0, only.output
    assert len(_kids(rt.settings.keys_dir, "hmac")) == 3
    assert len(_kids(rt.settings.keys_dir, "signing")) == 2
    bogus = CliRunner().invoke(app, ["keys", "rotate", "--kind", "aes"], env=env)
    assert bogus.exit_code == 1
    assert "unknown key kind 'aes'" in bogus.output
    assert len(_kids(rt.settings.keys_dir, "hmac")) == 3


# --- HMAC ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("length", [0, 32, 63, 64, 65, 100])
@settings(max_examples=60, deadline=None)
@given(data=st.data())
def test_hmac_key_digest_equals_the_standard_library(length: int, data: st.DataObject) -> None:
    secret = data.draw(st.binary(min_size=length, max_size=length), label="secret")
    key = HmacKey("hma-test", secret)
    for _ in range(2):  # the precomputed pad states must survive being used
        message = data.draw(st.binary(max_size=300), label="message")
        assert key.digest(message) == hmac.new(secret, message, hashlib.sha256).digest()


@settings(max_examples=300, deadline=None)
@given(secret=st.binary(max_size=200), message=st.binary(max_size=200))
def test_hmac_key_digest_equals_the_standard_library_for_any_key(secret: bytes, message: bytes) -> None:
    assert HmacKey("hma-test", secret).digest(message) == hmac.new(secret, message, hashlib.sha256).digest()


def test_a_lost_keyring_is_refused_not_replaced(runtime: Runtime, ledger: Ledger, org: str, tmp_path: Path) -> None:
    ledger.append(org, {"module": "t", "action": "x", "crud": "create", "actor": {"type": "user", "id": "u"}})
    ledger.checkpoint_now(org)
    lost = Runtime.start(
        Settings(database_url=runtime.settings.database_url, keys_dir=tmp_path / "empty", instance_name="gardien.test")
    )
    try:
        assert lost.keyring.created
        with pytest.raises(KeyringError, match="restore the keys directory"):
            Ledger(lost)
    finally:
        lost.close()


def test_starting_writes_nothing_into_an_existing_keys_directory(runtime: Runtime, tmp_path: Path) -> None:
    # What a read-only mount (a Kubernetes secret) needs: opening never creates or rewrites a file.
    keys = tmp_path / "keys"
    keys.mkdir()
    shutil.copy2(runtime.settings.keys_dir / "keyring.json", keys / "keyring.json")
    before = {p.name: p.stat().st_mtime_ns for p in keys.iterdir()}
    mounted = Runtime.start(
        Settings(database_url=runtime.settings.database_url, keys_dir=keys, instance_name="gardien.test")
    )
    try:
        assert not mounted.keyring.created
        Ledger(mounted).verify  # noqa: B018  (building the ledger checks the keyring)
    finally:
        mounted.close()
    assert {p.name: p.stat().st_mtime_ns for p in keys.iterdir()} == before
