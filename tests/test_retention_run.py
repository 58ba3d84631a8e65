"""`gardien retention run`: the dry run counts what the real run then does, in batches, under holds.

Host databases are real SQLite, PostgreSQL and MariaDB databases; so is Gardien's own.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest
from sqlalchemy import select

from gardien.audit.models import EVENTS
from gardien.audit.service import Ledger
from gardien.core.runtime import Runtime
from gardien.datamap.service import DatamapService
from gardien.privacy.operators import OperatorContext, apply
from gardien.retention.jobs import Runner
from gardien.retention.models import RUNS
from gardien.retention.schemas import HoldIn, IdentityIn, PolicyIn
from gardien.retention.service import RetentionService
from tests.retention_samples import EVENTS as EVENTS_ROWS
from tests.retention_samples import NOW, App, app_fixture, context_of, make_app  # noqa: F401

ACTOR = {"type": "user", "id": "dpo-1", "display": "DPO"}


def _tools(runtime: Runtime, ledger: Ledger) -> tuple[RetentionService, Runner, DatamapService]:
    maps = DatamapService(runtime, ledger)
    return RetentionService(runtime, ledger), Runner(runtime, ledger, maps), maps


def _policy(**overrides: Any) -> PolicyIn:
    fields: dict[str, Any] = {
        "name": "inactive accounts",
        "target": {"kind": "table", "map": "app", "table": "app.accounts"},
        "period": "P2Y",
        "reference": "last_login",
        "action": "delete",
        "legal_basis": "contract",
        "batch_size": 40,
    }
    fields.update(overrides)
    return PolicyIn.model_validate(fields)


def _older_than(app: App, column: str, table: str, days: int) -> int:
    """Rows whose reference column lies more than `days` before NOW (the test's own count)."""
    cutoff = (NOW - timedelta(days=days)).replace(tzinfo=None)
    rows = app.rows(app.accounts if table == "accounts" else app.events)
    return sum(1 for r in rows if r[column] is not None and r[column] < cutoff)  # type: ignore[operator]


def _run(runner: Runner, service: RetentionService, org: str, policy_id: str, *, dry_run: bool) -> Any:
    run_id = runner.run_policy(org, service.policy_row(org, policy_id), dry_run=dry_run, trigger="cli", actor=ACTOR)
    return service.get_run(org, run_id)


def test_dry_run_counts_exactly_what_the_real_run_deletes(
    runtime: Runtime, ledger: Ledger, org: str, app_db: App
) -> None:
    service, runner, maps = _tools(runtime, ledger)
    maps.register(org, "app", app_db.map_yaml(), ACTOR)
    policy = service.create_policy(org, _policy(), ACTOR)
    two_years = (NOW - (NOW.replace(year=NOW.year - 2))).days
    expected = _older_than(app_db, "last_login", "accounts", two_years)
    assert 0 < expected < 300

    dry = _run(runner, service, org, policy.id, dry_run=True)
    assert dry.status == "completed"
    assert dry.counts["app.accounts"]["matched"] == expected
    assert app_db.count(app_db.accounts) == 300  # the dry run changed nothing
    oldest_kept = min(int(s[0]) for s in dry.samples["app.accounts"])

    real = _run(runner, service, org, policy.id, dry_run=False)
    assert real.status == "completed"
    assert real.counts["app.accounts"]["matched"] == expected
    assert real.counts["app.accounts"]["deleted"] == expected
    assert real.samples == dry.samples
    assert real.batches == -(-expected // 40)  # batches of at most 40 rows
    assert app_db.count(app_db.accounts) == 300 - expected
    assert not [r for r in app_db.rows(app_db.accounts) if int(r["id"]) >= oldest_kept]  # type: ignore[call-overload]

    again = _run(runner, service, org, policy.id, dry_run=True)
    assert again.counts["app.accounts"]["matched"] == 0

    actions = _actions(runtime, org)
    assert actions.count("retention.run.started") == 1
    assert actions.count("retention.run") == 1
    assert actions.count("retention.dry_run") == 2
    event = _last_event(runtime, org, "retention.run")
    assert event["fields"]["counts"]["app.accounts"]["deleted"] == expected
    assert ledger.verify(org).status == "ok"


def _actions(runtime: Runtime, org: str) -> list[str]:
    with runtime.engine.connect() as conn:
        return list(conn.execute(select(EVENTS.c.action).where(EVENTS.c.org_id == org)).scalars())


def _last_event(runtime: Runtime, org: str, action: str) -> dict[str, Any]:
    with runtime.engine.connect() as conn:
        canonical = conn.execute(
            select(EVENTS.c.canonical)
            .where(EVENTS.c.org_id == org, EVENTS.c.action == action)
            .order_by(EVENTS.c.seq.desc())
            .limit(1)
        ).scalar_one()
    event: dict[str, Any] = orjson.loads(canonical)
    return event


def test_anonymise_applies_the_maps_operators_to_columns_and_json_paths_once(
    runtime: Runtime, ledger: Ledger, org: str, app_db: App
) -> None:
    service, runner, maps = _tools(runtime, ledger)
    maps.register(org, "app", app_db.map_yaml(), ACTOR)
    before = {r["id"]: r for r in app_db.rows(app_db.events)}
    policy = service.create_policy(
        org,
        _policy(
            name="events after 90 days",
            target={"kind": "table", "map": "app", "table": "app.events"},
            period="P90D",
            reference="created",
            action="anonymise",
        ),
        ACTOR,
    )
    expected = _older_than(app_db, "created", "events", 90)
    dry = _run(runner, service, org, policy.id, dry_run=True)
    real = _run(runner, service, org, policy.id, dry_run=False)
    assert dry.counts["app.events"]["matched"] == expected == real.counts["app.events"]["anonymised"]

    context = OperatorContext(keys=runtime.keyring, scope=org)
    cutoff = (NOW - timedelta(days=90)).replace(tzinfo=None)
    for row in app_db.rows(app_db.events):
        old = before[row["id"]]
        if old["created"] < cutoff:  # type: ignore[operator]
            assert row["ip"] == apply("truncate_ip", old["ip"])
            ctx, old_ctx = context_of(row), context_of(old)
            assert ctx["ip"] == apply("truncate_ip", old_ctx["ip"])
            user_id = old_ctx["card"]["user_id"]  # type: ignore[index]
            assert ctx["card"] == {"user_id": apply("hmac", user_id, context, domain="card.user_id")}
        else:
            assert row["ip"] == old["ip"] and context_of(row) == context_of(old)

    # A second run anonymises nothing twice: its window starts where the first one ended.
    second = _run(runner, service, org, policy.id, dry_run=False)
    assert second.counts["app.events"]["anonymised"] == 0
    assert ledger.verify(org).status == "ok"


def _hold_user250(service: RetentionService, org: str) -> Any:
    """A subject hold on the person behind account 250 (and the events that reference it)."""
    identity = IdentityIn(type="email", value="user250@example.org")
    hold = HoldIn(scope="subject", target="app", identity=identity, reason="dispute with this customer", owner="Claims")
    return service.create_hold(org, hold, ACTOR)


def test_holds_suspend_a_policy_for_a_subject_a_table_or_the_organisation(
    runtime: Runtime, ledger: Ledger, org: str, tmp_path: Path
) -> None:
    service, runner, maps = _tools(runtime, ledger)
    with make_app("sqlite", tmp_path) as app:
        maps.register(org, "app", app.map_yaml(), ACTOR)
        policy = service.create_policy(org, _policy(), ACTOR)
        expected = _older_than(app, "last_login", "accounts", (NOW - NOW.replace(year=NOW.year - 2)).days)

        whole = service.create_hold(org, HoldIn(scope="organisation", reason="CNIL inspection", owner="Legal"), ACTOR)
        suspended = _run(runner, service, org, policy.id, dry_run=False)
        assert suspended.status == "suspended"
        assert "CNIL inspection" in suspended.errors[0]
        assert app.count(app.accounts) == 300
        service.release_hold(org, whole.id, ACTOR)

        table = service.create_hold(
            org, HoldIn(scope="table", target="app.accounts", reason="litigation", owner="Legal"), ACTOR
        )
        assert _run(runner, service, org, policy.id, dry_run=True).status == "suspended"
        service.release_hold(org, table.id, ACTOR)

        _hold_user250(service, org)
        dry = _run(runner, service, org, policy.id, dry_run=True)
        assert dry.counts["app.accounts"] == {"matched": expected - 1, "held": 1}
        real = _run(runner, service, org, policy.id, dry_run=False)
        assert real.counts["app.accounts"]["deleted"] == expected - 1
        assert app.count(app.accounts, "id = 250") == 1
        assert app.count(app.accounts) == 300 - expected + 1
        actions = _actions(runtime, org)
        assert actions.count("retention.hold.created") == 3
        assert actions.count("retention.hold.released") == 2


def _cli_env(runtime: Runtime) -> dict[str, str]:
    settings = runtime.settings
    return {
        **os.environ,
        "GARDIEN_DATABASE_URL": settings.database_url,
        "GARDIEN_KEYS_DIR": str(settings.keys_dir),
        "GARDIEN_INSTANCE_NAME": settings.instance_name,
    }


def _batches(runtime: Runtime, org: str) -> int:
    with runtime.engine.connect() as conn:
        found = conn.execute(
            select(RUNS.c.batches).where(RUNS.c.org_id == org, RUNS.c.dry_run.is_(False))
        ).scalar_one_or_none()
    return int(found or 0)


@pytest.mark.parametrize("action", ["delete", "anonymise"])
def test_a_run_killed_mid_way_resumes_and_ends_as_one_uninterrupted_run_would(
    runtime: Runtime, ledger: Ledger, org: str, app_db: App, tmp_path: Path, action: str
) -> None:
    service, runner, maps = _tools(runtime, ledger)
    maps.register(org, "app", app_db.map_yaml(), ACTOR)
    if action == "delete":
        spec = _policy(batch_size=10)
        table, verb = "app.accounts", "deleted"
    else:
        spec = _policy(
            target={"kind": "table", "map": "app", "table": "app.events"},
            period="P90D",
            reference="created",
            action="anonymise",
            batch_size=10,
        )
        table, verb = "app.events", "anonymised"
    policy = service.create_policy(org, spec, ACTOR)
    before = app_db.rows(app_db.events)
    planned = _run(runner, service, org, policy.id, dry_run=True).counts[table]["matched"]
    assert planned > 60

    log = (tmp_path / "run.log").open("wb")
    child = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "gardien",
            "retention",
            "run",
            "--org",
            org,
            "--policy",
            policy.id,
            "--throttle-ms",
            "150",
        ],
        env=_cli_env(runtime),
        stdout=log,
        stderr=log,
    )
    try:
        deadline = time.monotonic() + 60
        while _batches(runtime, org) < 3 and time.monotonic() < deadline and child.poll() is None:
            time.sleep(0.02)
        child.send_signal(signal.SIGKILL)
    finally:
        child.wait(15)
    assert child.returncode == -signal.SIGKILL, (tmp_path / "run.log").read_text()
    interrupted = service.list_runs(org).items[0]
    assert interrupted.status == "running" and not interrupted.dry_run
    assert 0 < interrupted.counts[table].get(verb, 0) < planned

    resumed = _run(runner, service, org, policy.id, dry_run=False)
    assert resumed.id == interrupted.id
    assert resumed.status == "completed"
    assert resumed.counts[table][verb] == planned
    if action == "delete":
        assert app_db.count(app_db.accounts) == 300 - planned
    else:
        context = OperatorContext(keys=runtime.keyring, scope=org)
        cutoff = resumed.cutoff.replace(tzinfo=None)
        after = {r["id"]: r for r in app_db.rows(app_db.events)}
        for old in before:
            if old["created"] < cutoff:  # type: ignore[operator]
                user_id = context_of(old)["card"]["user_id"]  # type: ignore[index]
                # Exactly once: a batch done twice would have hashed the pseudonym again.
                assert context_of(after[old["id"]])["card"] == {
                    "user_id": apply("hmac", user_id, context, domain="card.user_id")
                }
    assert ledger.verify(org).status == "ok"


def test_gardien_anonymize_older_than_applies_the_maps_rules_once(
    runtime: Runtime, ledger: Ledger, org: str, tmp_path: Path
) -> None:
    _, _, maps = _tools(runtime, ledger)
    with make_app("sqlite", tmp_path) as app:
        maps.register(org, "app", app.map_yaml(), ACTOR)
        before = {r["id"]: r for r in app.rows(app.events)}
        expected = _older_than(app, "created", "events", 90)

        def cli(*args: str) -> str:
            done = subprocess.run(
                [sys.executable, "-m", "gardien", "anonymize", "--older-than", "90d", "--org", org, *args],
                env=_cli_env(runtime),
                capture_output=True,
                text=True,
                timeout=120,
            )
            assert done.returncode == 0, done.stdout + done.stderr
            return done.stdout

        dry = cli("--dry-run")
        assert "DRY RUN" in dry and f"app.events: matched {expected:,}, held 0" in dry
        assert [r["ip"] for r in app.rows(app.events)] == [r["ip"] for r in before.values()]
        real = cli()
        assert f"anonymised {expected:,}" in real
        cutoff = (NOW - timedelta(days=90)).replace(tzinfo=None)
        for row in app.rows(app.events):
            old = before[row["id"]]
            due = old["created"] < cutoff  # type: ignore[operator]
            assert row["ip"] == (apply("truncate_ip", old["ip"]) if due else old["ip"])
            assert (context_of(row) != context_of(old)) is due
        again = cli()
        assert "anonymised 0" in again  # the window moved on: nothing is anonymised twice
        assert "app.accounts" not in real  # no rules, no dated_by: not touched


class Crash(BaseException):
    """A process dying: nothing catches it, nothing after it runs."""


class CrashingRunner(Runner):
    """Dies at one checkpoint write: before the host commits a batch, or just after."""

    def __init__(self, *args: Any, when: str) -> None:
        super().__init__(*args)
        self.when = when
        self.armed = True

    def _save_checkpoint(self, ctx: Any) -> None:
        points = [p for p in ctx.checkpoint.values() if isinstance(p, dict)]
        pending = any(p.get("pending") for p in points)
        if self.armed and self.when == "after-commit" and not pending and any(p.get("after") for p in points):
            # The host committed the batch; Gardien never hears of it: its checkpoint still says pending.
            self.armed = False
            raise Crash
        super()._save_checkpoint(ctx)
        if self.armed and self.when == "before-commit" and pending and any(p.get("after") for p in points):
            # The batch's intent is saved; the host transaction around it is rolled back by the crash.
            self.armed = False
            raise Crash


@pytest.mark.parametrize("when", ["before-commit", "after-commit"])
@pytest.mark.parametrize("action", ["delete", "anonymise"])
def test_the_batch_in_flight_at_a_crash_is_done_exactly_once(
    runtime: Runtime, ledger: Ledger, org: str, tmp_path: Path, when: str, action: str
) -> None:
    service, runner, maps = _tools(runtime, ledger)
    with make_app("sqlite", tmp_path) as app:
        maps.register(org, "app", app.map_yaml(), ACTOR)
        if action == "delete":
            spec, table, verb = _policy(batch_size=10), "app.accounts", "deleted"
        else:
            spec = _policy(
                target={"kind": "table", "map": "app", "table": "app.events"},
                period="P90D",
                reference="created",
                action="anonymise",
                batch_size=10,
            )
            table, verb = "app.events", "anonymised"
        policy = service.create_policy(org, spec, ACTOR)
        before = app.rows(app.events)
        planned = _run(runner, service, org, policy.id, dry_run=True).counts[table]["matched"]
        crashing = CrashingRunner(runtime, ledger, maps, when=when)
        with pytest.raises(Crash):
            crashing.run_policy(org, service.policy_row(org, policy.id), dry_run=False, trigger="cli", actor=ACTOR)
        resumed = _run(runner, service, org, policy.id, dry_run=False)
        assert resumed.status == "completed"
        assert resumed.counts[table][verb] == planned
        assert resumed.batches == -(-planned // 10)
        if action == "delete":
            assert app.count(app.accounts) == 300 - planned
            return
        context = OperatorContext(keys=runtime.keyring, scope=org)
        after = {r["id"]: r for r in app.rows(app.events)}
        cutoff = resumed.cutoff.replace(tzinfo=None)
        for old in before:
            if old["created"] < cutoff:  # type: ignore[operator]
                user_id = context_of(old)["card"]["user_id"]  # type: ignore[index]
                assert context_of(after[old["id"]])["card"] == {
                    "user_id": apply("hmac", user_id, context, domain="card.user_id")
                }


def test_a_policy_on_a_map_that_does_not_exist_fails_and_is_not_left_running(
    runtime: Runtime, ledger: Ledger, org: str
) -> None:
    service, runner, _ = _tools(runtime, ledger)
    policy = service.create_policy(org, _policy(target={"kind": "table", "map": "nowhere", "table": "app.t"}), ACTOR)
    run = _run(runner, service, org, policy.id, dry_run=False)
    assert run.status == "failed" and "nowhere" in run.errors[0]
    assert not runner.has_interrupted(org, policy.id)


def _anonymise_events() -> PolicyIn:
    return _policy(
        name="events after 90 days",
        target={"kind": "table", "map": "app", "table": "app.events"},
        period="P90D",
        reference="created",
        action="anonymise",
    )


def test_a_retention_hold_suspends_an_anonymise_policy_too(
    runtime: Runtime, ledger: Ledger, org: str, tmp_path: Path
) -> None:
    service, runner, maps = _tools(runtime, ledger)
    with make_app("sqlite", tmp_path) as app:
        maps.register(org, "app", app.map_yaml(), ACTOR)
        policy = service.create_policy(org, _anonymise_events(), ACTOR)
        before = app.rows(app.events)
        expected = _older_than(app, "created", "events", 90)
        for hold in (
            HoldIn(scope="organisation", reason="CNIL inspection", owner="Legal"),
            HoldIn(scope="table", target="app.events", reason="litigation", owner="Legal"),
        ):
            placed = service.create_hold(org, hold, ACTOR)
            run = _run(runner, service, org, policy.id, dry_run=False)
            assert run.status == "suspended" and hold.reason in run.errors[0]
            assert app.rows(app.events) == before
            service.release_hold(org, placed.id, ACTOR)

        # A subject's hold keeps that person's rows as they are; the first run after it ends does them.
        subject = _hold_user250(service, org)
        run = _run(runner, service, org, policy.id, dry_run=False)
        assert run.counts["app.events"] == {"matched": expected - 1, "held": 1, "anonymised": expected - 1}
        held = next(r for r in app.rows(app.events) if r["id"] == 250)
        assert held == next(r for r in before if r["id"] == 250)
        service.release_hold(org, subject.id, ACTOR)
        after = _run(runner, service, org, policy.id, dry_run=False)
        assert after.counts["app.events"]["anonymised"] == 1
        assert next(r for r in app.rows(app.events) if r["id"] == 250)["ip"] == "192.0.2.0"


@pytest.mark.parametrize("until", ["years", "forever"])
def test_a_data_map_hold_stops_deletion_but_not_anonymisation(
    runtime: Runtime, ledger: Ledger, org: str, tmp_path: Path, until: str
) -> None:
    """Invoices kept ten years (Code de commerce L123-22): never deleted before, anonymised after 90 days."""
    service, runner, maps = _tools(runtime, ledger)
    with make_app("sqlite", tmp_path) as app:
        bound = "years: 10, since: created" if until == "years" else "basis: legal_obligation"
        hold = f"      hold: {{reason: invoices kept ten years, {bound}}}\n"
        maps.register(org, "app", app.map_yaml().replace("    app.events:\n", "    app.events:\n" + hold), ACTOR)
        expected = _older_than(app, "created", "events", 90)
        assert expected > 0
        delete = service.create_policy(
            org,
            _policy(
                name="delete events",
                target={"kind": "table", "map": "app", "table": "app.events"},
                period="P90D",
                reference="created",
            ),
            ACTOR,
        )
        refused = _run(runner, service, org, delete.id, dry_run=False)
        if until == "years":  # every row is younger than ten years: all held, none deleted
            assert refused.counts["app.events"] == {"matched": 0, "held": expected, "deleted": 0}
        else:
            assert "held by the data map" in refused.errors[0]
        assert app.count(app.events) == EVENTS_ROWS

        anonymise = service.create_policy(org, _anonymise_events(), ACTOR)
        done = _run(runner, service, org, anonymise.id, dry_run=False)
        assert done.status == "completed", done.errors
        assert done.counts["app.events"] == {"matched": expected, "held": 0, "anonymised": expected}
        assert app.count(app.events) == EVENTS_ROWS
        assert app.count(app.events, "ip LIKE '%.0'") >= expected
