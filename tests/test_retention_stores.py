"""Retention policies on Gardien's own `consents` and `requests` stores, on SQLite and PostgreSQL.

Consent proofs are kept while the choice is in force and for the period after it ended (replaced
by the next choice of the same consent id, or expired); closed requests keep their skeleton and
lose the requester's contact data. Dates are worked out by hand from calendar months.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import func, select

from gardien.audit.models import EVENTS as LEDGER
from gardien.audit.service import Ledger
from gardien.consent.models import EVENTS, STATES
from gardien.consent.schemas import ChoiceIn, NoticeIn, SettingsIn, WithdrawIn
from gardien.consent.service import ConsentService
from gardien.core import service as core
from gardien.core.errors import NotFound
from gardien.core.runtime import Runtime
from gardien.datamap.service import DatamapService
from gardien.retention.jobs import Runner
from gardien.retention.models import RUNS
from gardien.retention.schemas import HoldIn, IdentityIn, PolicyIn
from gardien.retention.service import RetentionService
from gardien.rights.models import BLOCKS, CODES, HISTORY, REQUESTS
from gardien.rights.schemas import RejectionCode, RequestIn, Status
from gardien.rights.service import RightsService
from tests.consent_samples import sample_notice
from tests.test_rights_workflow import Clock

ACTOR = {"type": "user", "id": "dpo-1", "display": "DPO"}
APP = {"type": "api_key", "id": "app-key", "display": "shop backend"}


def at(year: int, month: int, day: int) -> datetime:
    return datetime(year, month, day, 12, 0, tzinfo=UTC)


def _tools(runtime: Runtime, ledger: Ledger, now: datetime) -> tuple[RetentionService, Runner]:
    runner = Runner(runtime, ledger, DatamapService(runtime, ledger))
    runner.clock = lambda: now
    return RetentionService(runtime, ledger), runner


def _run(runner: Runner, service: RetentionService, org: str, policy_id: str, *, dry_run: bool) -> Any:
    run_id = runner.run_policy(org, service.policy_row(org, policy_id), dry_run=dry_run, trigger="cli", actor=ACTOR)
    return service.get_run(org, run_id)


def _store_policy(service: RetentionService, org: str, store: str, period: str, action: str, **extra: Any) -> str:
    body = {"name": f"{store} after {period}", "target": {"kind": "store", "store": store}, "period": period}
    return service.create_policy(org, PolicyIn.model_validate({**body, "action": action, **extra}), ACTOR).id


def _hold_user(service: RetentionService, org: str, user_id: str, reason: str) -> None:
    identity = IdentityIn(type="user_id", value=user_id)
    hold = HoldIn(scope="subject", target="shop", identity=identity, reason=reason, owner="Legal")
    service.create_hold(org, hold, ACTOR)


def _actions(runtime: Runtime, org: str) -> list[str]:
    with runtime.engine.connect() as conn:
        return list(
            conn.execute(select(LEDGER.c.action).where(LEDGER.c.org_id == org).order_by(LEDGER.c.seq)).scalars()
        )


# --- consents -------------------------------------------------------------------------------------


class Consents:
    def __init__(self, runtime: Runtime, org: str) -> None:
        self.clock = Clock(at(2019, 12, 1))
        self.service = ConsentService(runtime, Ledger(runtime), clock=self.clock)
        self.service.create_notice(org, NoticeIn.model_validate(sample_notice()), APP)
        self.org = org
        self.ids: dict[str, str] = {}
        self.events: dict[str, list[str]] = {}

    def months(self, months: int) -> None:
        self.service.put_settings(self.org, SettingsIn(validity_months=months), APP)

    def choose(self, name: str, when: datetime, method: str = "accept_all", **body: Any) -> str:
        self.clock.now = when
        consent_id = self.ids.setdefault(name, str(uuid.uuid4()))
        state = self.service.record(
            self.org, ChoiceIn.model_validate({"consent_id": consent_id, "method": method, **body}), APP
        )
        self.events.setdefault(name, []).append(state.last_event_id)
        return state.last_event_id

    def withdraw(self, name: str, when: datetime) -> str:
        self.clock.now = when
        state = self.service.withdraw(self.org, self.ids[name], WithdrawIn(), APP)
        self.events.setdefault(name, []).append(state.last_event_id)
        return state.last_event_id


def _left(runtime: Runtime, org: str) -> set[str]:
    with runtime.engine.connect() as conn:
        return set(conn.execute(select(EVENTS.c.id).where(EVENTS.c.org_id == org)).scalars())


def _states(runtime: Runtime, org: str) -> set[str]:
    with runtime.engine.connect() as conn:
        return set(conn.execute(select(STATES.c.consent_id).where(STATES.c.org_id == org)).scalars())


def _consent_world(runtime: Runtime, org: str) -> Consents:
    """Choices made in 2019–2021; a run on 15 January 2026 with a five-year period cuts at 15 January 2021."""
    world = Consents(runtime, org)
    # A: consent on 10 Jan 2020 (six months: until 10 Jul 2020), withdrawn 1 Mar 2020 (that choice: until 1 Sep 2020).
    world.choose("A", at(2020, 1, 10))
    world.withdraw("A", at(2020, 3, 1))
    # B: renewed on 1 Jul 2020 (until 1 Jan 2021), then on 1 Dec 2025 (until 1 Jun 2026: in force at the run).
    world.choose("B", at(2020, 1, 10))
    world.choose("B", at(2020, 7, 1))
    world.choose("B", at(2025, 12, 1))
    world.months(13)
    # E: thirteen months from 1 Jun 2020 (until 1 Jul 2021), replaced on 1 Sep 2020 (until 1 Oct 2021).
    world.choose("E", at(2020, 6, 1))
    world.choose("E", at(2020, 9, 1), method="reject_all")
    # F: thirteen months from 1 Jun 2020, replaced on 1 Mar 2021, after the cutoff.
    world.choose("F", at(2020, 6, 1))
    world.choose("F", at(2021, 3, 1))
    world.months(6)
    # H: a user whose consents a legal hold keeps; ended on 10 Jul 2020.
    world.choose("H", at(2020, 1, 10), user_id="customer-77")
    world.clock.now = at(2026, 1, 15)
    return world


def test_consent_proofs_go_once_their_period_after_the_end_of_the_choice_is_over(
    runtime: Runtime, ledger: Ledger, org: str
) -> None:
    world = _consent_world(runtime, org)
    ev = world.events
    service, runner = _tools(runtime, ledger, at(2026, 1, 15))
    policy = _store_policy(service, org, "consents", "P5Y", "delete", batch_size=2)
    _hold_user(service, org, "customer-77", "claim about marketing e-mails")
    # A replica that answered before the purge, from its cache.
    replica = ConsentService(runtime, Ledger(runtime), clock=world.clock)
    assert replica.is_allowed(org, world.ids["B"], "analytics")
    assert not replica.is_allowed(org, world.ids["A"], "analytics")
    assert not replica.is_allowed(org, world.ids["E"], "analytics")

    gone = {*ev["A"], ev["B"][0], ev["B"][1], ev["E"][0]}
    kept = {ev["B"][2], ev["E"][1], *ev["F"], *ev["H"]}
    assert gone | kept == _left(runtime, org)

    dry = _run(runner, service, org, policy, dry_run=True)
    assert dry.status == "completed", dry.errors
    assert dry.counts["consents"] == {"matched": len(gone), "held": 1}
    assert {s[1] for s in dry.samples["consents"]} <= gone
    assert _left(runtime, org) == gone | kept  # the dry run changed nothing

    real = _run(runner, service, org, policy, dry_run=False)
    assert real.status == "completed", real.errors
    assert real.counts["consents"] == {"matched": len(gone), "held": 1, "deleted": len(gone)}
    assert real.batches == 3  # five events, two at a time
    assert _left(runtime, org) == kept
    # A's current state went with its last event; the others' stay.
    assert _states(runtime, org) == {world.ids[n] for n in ("B", "E", "F", "H")}

    # The checks are unchanged, from the replica's cache and from a fresh read.
    fresh = ConsentService(runtime, Ledger(runtime), clock=world.clock)
    for checker in (replica, fresh):
        assert checker.is_allowed(org, world.ids["B"], "analytics")
        assert not checker.is_allowed(org, world.ids["A"], "analytics")
        assert not checker.is_allowed(org, world.ids["E"], "analytics")
    with pytest.raises(NotFound):
        fresh.state(org, world.ids["A"])
    proof = str(fresh.proof(org, world.ids["B"], "json"))
    assert ev["B"][2] in proof and ev["B"][0] not in proof and ev["B"][1] not in proof

    again = _run(runner, service, org, policy, dry_run=False)
    assert again.counts["consents"] == {"matched": 0, "held": 1, "deleted": 0}
    actions = _actions(runtime, org)
    assert actions.count("retention.consents.deleted") == 3
    assert actions[-1] == "retention.run"
    assert ledger.verify(org).status == "ok"


class Crash(BaseException):
    """Stands for the process dying: nothing catches it, the transaction in flight rolls back."""


def test_a_consent_purge_interrupted_mid_way_resumes_the_same_run_exactly(
    runtime: Runtime, ledger: Ledger, org: str
) -> None:
    _consent_world(runtime, org)
    service, runner = _tools(runtime, ledger, at(2026, 1, 15))
    policy = _store_policy(service, org, "consents", "P5Y", "delete", batch_size=1)
    planned = _run(runner, service, org, policy, dry_run=True).counts["consents"]["matched"]
    before = _left(runtime, org)
    transact = runner.ledger.transact
    calls = {"n": 0}

    def dying(org_id: str, work: Any) -> Any:
        calls["n"] += 1
        if calls["n"] == 4:  # run start, two batches, then death inside the third batch

            def killed(conn: Any) -> Any:
                work(conn)
                raise Crash

            return transact(org_id, killed)
        return transact(org_id, work)

    runner.ledger.transact = dying  # type: ignore[method-assign]
    with pytest.raises(Crash):
        _run(runner, service, org, policy, dry_run=False)
    runner.ledger.transact = transact  # type: ignore[method-assign]
    assert len(before - _left(runtime, org)) == 2  # the third batch rolled back

    resumed = _run(runner, service, org, policy, dry_run=False)
    assert resumed.status == "completed", resumed.errors
    assert resumed.counts["consents"]["deleted"] == planned
    assert resumed.batches == planned
    assert len(before - _left(runtime, org)) == planned
    with runtime.engine.connect() as conn:
        runs = conn.execute(select(func.count()).where(RUNS.c.policy_id == policy, RUNS.c.dry_run.is_(False)))
        assert runs.scalar_one() == 1  # resumed in the same run row
    assert _actions(runtime, org).count("retention.consents.deleted") == planned


# --- requests -------------------------------------------------------------------------------------


def _org(runtime: Runtime) -> str:
    with runtime.writes.begin() as session:
        return core.create_org(session, slug=f"s-{uuid.uuid4().hex[:12]}", name="Les Ogres", country="FR").id


def test_closed_requests_lose_the_requesters_data_and_keep_their_skeleton(runtime: Runtime, ledger: Ledger) -> None:
    org = _org(runtime)
    clock = Clock(at(2021, 3, 1))
    rights = RightsService(runtime, ledger, clock=clock)

    def file(**body: Any) -> str:
        body.setdefault("type", "access")
        body.setdefault("email", f"p-{uuid.uuid4().hex[:8]}@example.org")
        return rights.create(org, RequestIn.model_validate(body), APP, "service").id

    done = file(email="ana.lopez@example.org", subject_id="customer-1", note="Ana López, 12 rue des Lilas")
    rights.verify_by_operator(org, done, "Ana López came with her ID card", ACTOR)
    rights.extend(org, done, "Ana López asked for ten years of invoices", ACTOR)
    rights.transition(org, done, Status.COMPLETED, "sent to ana.lopez@example.org", ACTOR)
    rejected = file(email="bob@example.org")
    rights.transition(org, rejected, Status.REJECTED, "Bob sent it three times", ACTOR, RejectionCode.EXCESSIVE)
    cancelled = file(email="carla@example.org")
    rights.transition(org, cancelled, Status.CANCELLED, "Carla withdrew it", APP)
    restricted = file(type="restriction", ground="18(1)(a)", subject_id="customer-9", email="dan@example.org")
    rights.verify_by_operator(org, restricted, "account", ACTOR)
    rights.transition(org, restricted, Status.COMPLETED, "restricted", ACTOR)  # its block stays in force
    held = file(email="eve@example.org", subject_id="customer-5")
    rights.transition(org, held, Status.CANCELLED, "duplicate", APP)
    clock.now = at(2023, 6, 1)
    recent = file(email="fay@example.org")
    rights.transition(org, recent, Status.CANCELLED, "duplicate", APP)
    still_open = file(email="gus@example.org")

    clock.now = at(2024, 6, 2)
    before = {r.id: r for r in rights.list_requests(org, reveal=True, limit=100).requests}
    service, runner = _tools(runtime, ledger, at(2024, 6, 2))
    policy = _store_policy(service, org, "requests", "P3Y", "anonymise", batch_size=2)
    _hold_user(service, org, "customer-5", "litigation")
    due = {done, rejected, cancelled}
    dry = _run(runner, service, org, policy, dry_run=True)
    assert dry.counts["requests"] == {"matched": 3, "held": 1}
    real = _run(runner, service, org, policy, dry_run=False)
    assert real.status == "completed", real.errors
    assert real.counts["requests"] == {"matched": 3, "held": 1, "anonymised": 3}
    assert real.batches == 2

    after = {r.id: r for r in rights.list_requests(org, reveal=True, limit=100).requests}
    assert after.keys() == before.keys()  # nothing deleted: the reports still count them
    for rid, out in after.items():
        was = before[rid]
        assert out.anonymised is (rid in due)
        assert (out.type, out.status, out.received_at, out.due_on, out.closed_at, out.extended) == (
            was.type,
            was.status,
            was.received_at,
            was.due_on,
            was.closed_at,
            was.extended,
        )
        if rid in due:
            assert out.email == "" and out.extension_reason is None
        else:
            assert out.email == was.email
    assert after[rejected].outcome is not None and after[rejected].outcome.reason_code is RejectionCode.EXCESSIVE
    assert after[rejected].outcome.art12_4 is not None and after[rejected].outcome.art12_4.reasons == ""
    assert after[done].identity_method == "operator"
    assert rights.list_requests(org, email="ana.lopez@example.org").requests == []
    assert [r.id for r in rights.list_requests(org, email="gus@example.org").requests] == [still_open]
    assert rights.identities(org, done).email == "" and rights.identities(org, done).subject_id is None

    history = rights.history(org, done).history
    assert [h.action for h in history] == ["created", "identity_verified", "extended", "completed"]
    assert all(h.reason is None for h in history)
    with runtime.engine.connect() as conn:
        stored = b"".join(
            str(v).encode() if not isinstance(v, bytes) else v
            for table in (REQUESTS, HISTORY, BLOCKS, CODES)
            for row in conn.execute(select(table).where(table.c.org_id == org))
            for v in row
        )
    for text in (b"ana.lopez", "López".encode(), b"Lilas", b"Bob sent", b"Carla"):
        assert text not in stored
    assert b"dan@example.org" not in stored  # sealed all along; its block keeps the pseudonym only
    assert not rights.can_process(org, "customer-9", "billing")  # the restriction still holds

    again = _run(runner, service, org, policy, dry_run=False)
    assert again.counts["requests"] == {"matched": 0, "held": 1, "anonymised": 0}
    assert _actions(runtime, org).count("retention.requests.anonymised") == 2
    assert ledger.verify(org).status == "ok"


def test_a_hold_on_a_store_or_the_organisation_suspends_its_policies(runtime: Runtime, ledger: Ledger) -> None:
    org = _org(runtime)
    clock = Clock(at(2021, 3, 1))
    rights = RightsService(runtime, ledger, clock=clock)
    request = rights.create(org, RequestIn.model_validate({"type": "access", "email": "x@example.org"}), APP, "api")
    rights.transition(org, request.id, Status.CANCELLED, "duplicate", APP)
    service, runner = _tools(runtime, ledger, at(2025, 1, 1))
    policy = _store_policy(service, org, "requests", "P3Y", "anonymise")
    for hold in (
        HoldIn(scope="table", target="requests", reason="CNIL inspection", owner="DPO"),
        HoldIn(scope="organisation", reason="litigation", owner="Legal"),
    ):
        placed = service.create_hold(org, hold, ACTOR)
        run = _run(runner, service, org, policy, dry_run=False)
        assert run.status == "suspended" and hold.reason in run.errors[0]
        assert rights.get(org, request.id, reveal=True).email == "x@example.org"
        service.release_hold(org, placed.id, ACTOR)
    # A hold on another store does not.
    service.create_hold(org, HoldIn(scope="table", target="consents", reason="audit", owner="DPO"), ACTOR)
    assert _run(runner, service, org, policy, dry_run=False).counts["requests"]["anonymised"] == 1
    assert rights.get(org, request.id, reveal=True).anonymised


@pytest.mark.parametrize(
    ("store", "action", "message"),
    [("requests", "delete", "anonymise only"), ("consents", "anonymise", "delete only")],
)
def test_a_store_takes_only_the_action_that_keeps_what_must_stay(store: str, action: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        PolicyIn.model_validate(
            {"name": "x", "target": {"kind": "store", "store": store}, "period": "P1Y", "action": action}
        )
