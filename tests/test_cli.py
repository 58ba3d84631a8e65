"""The `gardien` command line, run in-process against the session's database and keyring."""

from __future__ import annotations

import json
import re
import uuid
from pathlib import Path

import pytest
from click.testing import Result
from fastapi.testclient import TestClient
from sqlalchemy import select
from typer.testing import CliRunner

from gardien.audit.models import EVENTS
from gardien.cli import app
from gardien.core.runtime import Runtime
from tests.conftest import auth, sample_event

TOKEN = re.compile(r"gdn_[a-z2-7]{12}_[A-Za-z0-9_-]{32,64}")


@pytest.fixture
def cli(runtime: Runtime, monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    """A runner whose environment points the CLI at the session's database, keys and exports."""
    settings = runtime.settings
    for name, value in {
        "GARDIEN_DATABASE_URL": settings.database_url,
        "GARDIEN_KEYS_DIR": str(settings.keys_dir),
        "GARDIEN_EXPORTS_DIR": str(settings.exports_dir),
        "GARDIEN_RIGHTS_PACKAGES_DIR": str(settings.rights_packages_dir),
        "GARDIEN_INSTANCE_NAME": settings.instance_name,
    }.items():
        monkeypatch.setenv(name, value)
    return CliRunner()


def run(cli: CliRunner, *args: str) -> Result:
    return cli.invoke(app, list(args))


def flat(text: str) -> str:
    """Output without the frame and line wrapping of Typer's error panels."""
    return " ".join(re.sub(r"[│╭╮╰╯─]", " ", text).split())


def slug() -> str:
    return f"cli-{uuid.uuid4().hex[:10]}"


def create_org(cli: CliRunner) -> tuple[str, str]:
    name = slug()
    result = run(cli, "admin", "create-org", name, "--name", "Les Ogres", "--country", "be")
    assert result.exit_code == 0, result.output
    org_id, printed_slug = result.stdout.strip().split("\t")
    assert printed_slug == name
    return org_id, name


def test_migrate_is_idempotent_on_a_migrated_database(cli: CliRunner) -> None:
    for _ in range(2):
        result = run(cli, "migrate")
        assert result.exit_code == 0, result.output
        assert "is up to date" in result.stdout


def test_migrate_creates_a_fresh_sqlite_database(
    cli: CliRunner, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GARDIEN_DATABASE_URL", f"sqlite:///{tmp_path / 'fresh.db'}")
    assert run(cli, "migrate").exit_code == 0
    created = run(cli, "admin", "create-org", "fresh")
    assert created.exit_code == 0, created.output
    listed = run(cli, "admin", "list-orgs")
    assert listed.exit_code == 0 and "\tfresh\tFR\tfresh" in listed.stdout


def test_create_org_then_list_it(cli: CliRunner) -> None:
    org_id, name = create_org(cli)
    listed = run(cli, "admin", "list-orgs")
    assert listed.exit_code == 0
    assert f"{org_id}\t{name}\tBE\tLes Ogres" in listed.stdout.splitlines()


def test_create_org_refuses_a_duplicate_slug_clearly(cli: CliRunner) -> None:
    _org_id, name = create_org(cli)
    again = run(cli, "admin", "create-org", name)
    assert again.exit_code != 0
    assert f"an organisation with slug '{name}' already exists" in again.stderr
    assert "Traceback" not in again.output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--country", "XX"), "country must be one of ['BE', 'DE', 'FR', 'LU', 'NL']"),
        (("--country", "United Kingdom"), "country must be one of"),
    ],
)
def test_create_org_refuses_an_unknown_country_clearly(cli: CliRunner, args: tuple[str, ...], message: str) -> None:
    name = slug()
    result = run(cli, "admin", "create-org", name, *args)
    assert result.exit_code != 0
    assert message in result.stderr
    assert name not in run(cli, "admin", "list-orgs").stdout


def test_create_org_refuses_a_bad_slug_clearly(cli: CliRunner) -> None:
    result = run(cli, "admin", "create-org", "Not A Slug")
    assert result.exit_code != 0
    assert "lower-case letters, digits and dashes" in result.stderr


def test_create_key_prints_a_token_that_authenticates(cli: CliRunner, client: TestClient) -> None:
    org_id, name = create_org(cli)
    result = run(cli, "admin", "create-key", name, "--role", "auditor", "--name", "ci auditor")
    assert result.exit_code == 0, result.output
    token = result.stdout.strip()
    assert TOKEN.fullmatch(token), "stdout holds the token alone, for scripts"
    assert "shown once" in result.stderr
    me = client.get("/api/v1/me", headers=auth(token))
    assert me.status_code == 200, me.text
    assert me.json()["organisation"]["id"] == org_id
    assert (me.json()["role"], me.json()["key_name"]) == ("auditor", "ci auditor")
    # The role is enforced: an auditor reads but may not append.
    assert client.get("/api/v1/audit/events", headers=auth(token)).status_code == 200
    assert client.post("/api/v1/audit/events", json=sample_event(), headers=auth(token)).status_code == 403
    # By id too, and the same org gets a distinct key each time.
    by_id = run(cli, "admin", "create-key", org_id, "--role", "service")
    assert by_id.exit_code == 0 and by_id.stdout.strip() != token


def test_create_key_for_an_unknown_org_or_role_fails_clearly(cli: CliRunner) -> None:
    unknown = run(cli, "admin", "create-key", "no-such-org", "--role", "admin")
    assert unknown.exit_code != 0
    assert "organisation 'no-such-org' does not exist" in unknown.stderr
    _org_id, name = create_org(cli)
    bad_role = run(cli, "admin", "create-key", name, "--role", "root")
    assert bad_role.exit_code != 0
    assert "'root' is not one of" in flat(bad_role.output)


def _org_with_events(cli: CliRunner, runtime: Runtime, client: TestClient) -> tuple[str, str]:
    org_id, name = create_org(cli)
    token = run(cli, "admin", "create-key", name, "--role", "service").stdout.strip()
    events = [sample_event(module="bookings" if i % 2 else "billing") for i in range(6)]
    response = client.post("/api/v1/audit/events/batch", json={"events": events}, headers=auth(token))
    assert response.status_code == 201, response.text
    return org_id, name


def test_audit_verify_exits_0_on_an_intact_ledger(cli: CliRunner, runtime: Runtime, client: TestClient) -> None:
    org_id, name = _org_with_events(cli, runtime, client)
    text = run(cli, "audit", "verify", "--org", name)
    assert text.exit_code == 0, text.output
    assert f"{org_id}: OK" in text.stdout
    as_json = run(cli, "audit", "verify", "--org", org_id, "--json")
    assert as_json.exit_code == 0, as_json.output
    reports = [json.loads(line) for line in as_json.stdout.splitlines()]
    assert len(reports) == 1
    assert reports[0]["org"] == org_id and reports[0]["status"] == "ok"
    assert reports[0]["findings"] == [] and reports[0]["first_broken_seq"] is None
    assert reports[0]["events_checked"] >= 7  # six events and the first verification's own record
    unknown = run(cli, "audit", "verify", "--org", "no-such-org")
    assert unknown.exit_code != 0 and "no organisation 'no-such-org'" in unknown.stderr


def test_audit_export_writes_a_payload_and_manifest_that_verify_offline(
    cli: CliRunner, runtime: Runtime, client: TestClient, tmp_path: Path
) -> None:
    org_id, name = _org_with_events(cli, runtime, client)
    out = tmp_path / "out"
    exported = run(cli, "audit", "export", "--org", name, "--module", "bookings", "--out", str(out))
    assert exported.exit_code == 0, exported.output
    payloads = list(out.glob("audit-*.jsonl"))
    assert len(payloads) == 1
    payload = payloads[0]
    manifest_path = Path(f"{payload}.manifest.json")
    assert manifest_path.is_file()
    assert f"3 events -> {payload}" in exported.stdout and f"manifest     -> {manifest_path}" in exported.stdout
    manifest = json.loads(manifest_path.read_text())
    assert (manifest["org"], manifest["format"], manifest["count"]) == (org_id, "jsonl", 3)
    assert manifest["filter"] == {"module": "bookings"}
    lines = payload.read_bytes().splitlines()
    assert len(lines) == 3 and all(json.loads(line)["module"] == "bookings" for line in lines)
    # Without --out the files stay in the exports directory, under the organisation.
    kept = run(cli, "audit", "export", "--org", org_id, "--format", "csv")
    assert kept.exit_code == 0, kept.output
    kept_path = Path(kept.stdout.splitlines()[0].split(" -> ")[1])
    assert kept_path.is_file() and kept_path.parent == Path(runtime.settings.exports_dir) / org_id

    public = run(cli, "keys", "public")
    assert public.exit_code == 0
    vkeys = public.stdout.split()
    assert vkeys == [k["vkey"] for k in client.get("/api/v1/audit/keys").json()]
    key_file = tmp_path / "trusted.vkeys"
    key_file.write_text(public.stdout)

    valid = run(cli, "audit", "verify-export", str(payload), "--public-key", str(key_file))
    assert valid.exit_code == 0, valid.output
    assert valid.stdout.startswith("VALID")
    inline = run(
        cli, "audit", "verify-export", str(payload), "--manifest", str(manifest_path), "--public-key", vkeys[-1]
    )
    assert inline.exit_code == 0, inline.output
    csv_valid = run(cli, "audit", "verify-export", str(kept_path), "--public-key", str(key_file))
    assert csv_valid.exit_code == 0, csv_valid.output

    original = payload.read_bytes()
    tampered = bytearray(original)
    tampered[len(tampered) // 2] ^= 0x01
    payload.write_bytes(bytes(tampered))
    invalid = run(cli, "audit", "verify-export", str(payload), "--public-key", str(key_file))
    assert invalid.exit_code == 1, invalid.output
    assert invalid.stdout.startswith("INVALID") and "payload SHA-256" in invalid.stdout
    payload.write_bytes(original)
    manifest_path.write_text(json.dumps(dict(manifest, count=2)))
    edited = run(cli, "audit", "verify-export", str(payload), "--public-key", str(key_file))
    assert edited.exit_code == 1 and "manifest signature does not verify" in edited.stdout


def test_verify_export_requires_a_trusted_public_key(
    cli: CliRunner, runtime: Runtime, client: TestClient, tmp_path: Path
) -> None:
    _org_id, name = _org_with_events(cli, runtime, client)
    exported = run(cli, "audit", "export", "--org", name, "--out", str(tmp_path))
    assert exported.exit_code == 0, exported.output
    payload = next(tmp_path.glob("audit-*.jsonl"))
    missing = run(cli, "audit", "verify-export", str(payload))
    assert missing.exit_code != 0
    assert "give the public key(s) to trust with --public-key" in missing.stderr
    garbage = run(cli, "audit", "verify-export", str(payload), "--public-key", "not-a-key")
    assert garbage.exit_code != 0 and "not a public key" in garbage.stderr
    vkey = run(cli, "keys", "public").stdout.split()[0]
    no_manifest = run(cli, "audit", "verify-export", str(tmp_path / "nothing.jsonl"), "--public-key", vkey)
    assert no_manifest.exit_code != 0 and "need both" in no_manifest.stderr
    assert "Traceback" not in missing.output + garbage.output + no_manifest.output


def test_audit_verify_checks_a_kept_checkpoint_and_refuses_a_file_that_is_not_one(
    cli: CliRunner, runtime: Runtime, client: TestClient, tmp_path: Path
) -> None:
    org_id, name = _org_with_events(cli, runtime, client)
    operator = run(cli, "admin", "create-key", name, "--role", "operator").stdout.strip()
    latest = client.get("/api/v1/audit/checkpoints/latest", headers=auth(operator))
    assert latest.status_code == 200, latest.text
    kept = tmp_path / "kept.note"
    kept.write_text(latest.json()["note"])
    ok = run(cli, "audit", "verify", "--org", name, "--checkpoint", str(kept))
    assert ok.exit_code == 0, ok.output
    assert f"{org_id}: OK" in ok.stdout
    kept.write_text("this is not a checkpoint\n")
    refused = run(cli, "audit", "verify", "--org", name, "--checkpoint", str(kept))
    assert refused.exit_code not in (0, 1), refused.output
    assert "not a signed checkpoint note" in flat(refused.output) and "TAMPERED" not in refused.output
    missing = run(cli, "audit", "verify", "--org", name, "--checkpoint", str(tmp_path / "missing.note"))
    assert missing.exit_code not in (0, 1) and "does not exist" in flat(missing.output)
    assert missing.exception is None or isinstance(missing.exception, SystemExit)


def test_audit_export_of_a_ledger_with_nothing_sealed_fails_clearly(cli: CliRunner, org: str) -> None:
    # `org` comes from the service layer, so its ledger is empty; the CLI's create-org records itself.
    result = run(cli, "audit", "export", "--org", org)
    assert result.exit_code == 1
    assert "the ledger is empty or not yet sealed" in result.stderr
    assert isinstance(result.exception, SystemExit), "a clear message, not a traceback"
    bad_filter = run(cli, "audit", "export", "--org", org, "--since", "yesterday")
    assert bad_filter.exit_code == 1 and "invalid filter: since" in bad_filter.stderr


def test_cli_changes_are_recorded_in_the_ledger(cli: CliRunner, runtime: Runtime) -> None:
    org_id, name = create_org(cli)
    assert run(cli, "admin", "create-key", name, "--role", "auditor").exit_code == 0
    with runtime.engine.connect() as conn:
        actions = list(
            conn.execute(select(EVENTS.c.action).where(EVENTS.c.org_id == org_id).order_by(EVENTS.c.seq)).scalars()
        )
    assert actions == ["organisation.create", "api_key.create"]


FROZEN_PROBE = """
import gc, sys
from fastapi.testclient import TestClient
from gardien.app import create_app, create_served_app
from gardien.core.settings import Settings
app = create_served_app() if sys.argv[1] == "served" else create_app(Settings())
with TestClient(app) as client:
    assert client.get("/healthz").status_code == 200
    print(sys.getswitchinterval(), gc.get_freeze_count())
"""


@pytest.mark.parametrize(("how", "frozen"), [("served", True), ("embedded", False)])
def test_only_a_served_app_moves_its_startup_heap_out_of_the_collectors_sight(
    tmp_path: Path, how: str, frozen: bool
) -> None:
    """`gardien serve` freezes what startup allocated, so that full collections under load stay
    short, and shortens the GIL's switch interval to GARDIEN_GIL_SWITCH_MS; an app built by tests
    or an embedding program leaves its host's collector and interpreter alone."""
    import os
    import subprocess
    import sys

    env = {
        **os.environ,
        "GARDIEN_DATABASE_URL": f"sqlite:///{tmp_path}/g.db",
        "GARDIEN_KEYS_DIR": str(tmp_path / "k"),
        "GARDIEN_GIL_SWITCH_MS": "0.5",
    }
    migrate = subprocess.run([sys.executable, "-m", "gardien", "migrate"], env=env, capture_output=True, text=True)
    assert migrate.returncode == 0, migrate.stderr
    done = subprocess.run([sys.executable, "-c", FROZEN_PROBE, how], env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    interval, frozen_objects = done.stdout.split()[-2:]
    assert (int(frozen_objects) > 10_000) is frozen
    assert float(interval) == (0.0005 if frozen else 0.005)
