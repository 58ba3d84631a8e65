"""The request workflow in process, on SQLite and PostgreSQL, with a clock the test moves.

Expected deadlines are worked out by hand from Regulation 1182/71 and a calendar of the year.
E-mail goes through a real SMTP server (aiosmtpd) on the loopback interface.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

import orjson
import pytest
from sqlalchemy import select

from gardien.audit.models import EVENTS as LEDGER
from gardien.audit.service import Ledger
from gardien.core import service as core
from gardien.core.errors import Conflict, InvalidInput, NotFound
from gardien.core.runtime import Runtime
from gardien.rights.mail import Mailer
from gardien.rights.models import CODES, REQUESTS
from gardien.rights.personal import Identities
from gardien.rights.schemas import RejectionCode, RequestIn, RequestOut, RequestType, SettingsIn, Status
from gardien.rights.service import RightsService
from tests.smtp_server import Inbox, body_of, smtp_fixture  # noqa: F401  (the SMTP server fixture)

DPO = {"type": "api_key", "id": "dpo-key", "display": "DPO"}
APP = {"type": "api_key", "id": "app-key", "display": "shop backend"}


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def set(self, moment: datetime) -> None:
        self.now = moment


@dataclass
class World:
    runtime: Runtime
    rights: RightsService
    clock: Clock
    inbox: Inbox
    orgs: dict[str, str] = field(default_factory=dict)

    def org(self, country: str) -> str:
        if country not in self.orgs:
            with self.runtime.writes.begin() as session:
                self.orgs[country] = core.create_org(
                    session, slug=f"r-{uuid.uuid4().hex[:12]}", name=f"Les Ogres {country}", country=country
                ).id
        return self.orgs[country]

    def file(self, country: str = "FR", **body: Any) -> RequestOut:
        body.setdefault("type", "access")
        body.setdefault("email", f"p-{uuid.uuid4().hex[:8]}@example.org")
        return self.rights.create(self.org(country), RequestIn.model_validate(body), APP, "service")

    def last_code(self, address: str) -> str:
        messages = self.inbox.to(address)
        assert messages, f"no e-mail reached {address}"
        found = re.search(r"\b(\d{6})\b", body_of(messages[-1]))
        assert found is not None
        return found.group(1)


@pytest.fixture
def world(runtime: Runtime, ledger: Ledger, smtp: Inbox) -> World:
    clock = Clock(datetime(2027, 3, 1, 9, 0, tzinfo=UTC))  # 10:00 in Paris, Monday 1 March 2027
    rights = RightsService(runtime, ledger, clock=clock, mailer=Mailer(smtp.settings(runtime.settings)))
    return World(runtime, rights, clock, smtp)


def test_a_request_is_due_one_month_after_the_day_of_receipt(world: World) -> None:
    request = world.file()
    assert request.status is Status.RECEIVED
    assert request.received_on == date(2027, 3, 1)
    assert request.due_on == date(2027, 4, 1)  # Thursday 1 April 2027
    assert not request.overdue


def test_the_clock_stops_while_the_identity_is_awaited_in_france(world: World) -> None:
    org = world.org("FR")
    request = world.file(email="Emilie.Dupont@Example.org")
    world.clock.set(datetime(2027, 3, 2, 9, tzinfo=UTC))
    sent = world.rights.send_code(org, request.id, APP)
    assert sent.sent_to == "E***@example.org"
    pending = world.rights.get(org, request.id, reveal=True)
    assert pending.status is Status.IDENTITY_PENDING and pending.clock_paused

    # Five days into the pause, the deadline shown is the one the request would have if the code came now.
    world.clock.set(datetime(2027, 3, 7, 9, tzinfo=UTC))
    assert world.rights.get(org, request.id, reveal=True).due_on == date(2027, 4, 6)  # Tuesday 6 April

    # The person answers ten days later; the first code has long expired, a new one is sent.
    world.clock.set(datetime(2027, 3, 12, 9, tzinfo=UTC))
    world.rights.send_code(org, request.id, APP)
    code = world.last_code("Emilie.Dupont@Example.org")
    verified = world.rights.verify_code(org, request.id, code, APP)
    assert verified.status is Status.IN_PROGRESS
    assert verified.identity_method == "email_code"
    assert not verified.clock_paused
    assert verified.paused_days == 10
    # The month runs from 11 March: 11 April 2027 is a Sunday.
    assert verified.due_on == date(2027, 4, 12)


def test_the_clock_runs_on_in_belgium_unless_the_organisation_pauses_it(world: World) -> None:
    org = world.org("BE")
    assert not world.rights.settings(org).pause_for_identity
    request = world.file("BE")
    world.clock.set(datetime(2027, 3, 2, 9, tzinfo=UTC))
    world.rights.send_code(org, request.id, APP)
    world.clock.set(datetime(2027, 3, 12, 9, tzinfo=UTC))
    world.rights.send_code(org, request.id, APP)
    verified = world.rights.verify_code(org, request.id, world.last_code(request.email), APP)
    assert verified.paused_days == 0
    assert verified.due_on == date(2027, 4, 1)

    world.rights.put_settings(org, SettingsIn(pause_for_identity=True), DPO)
    world.clock.set(datetime(2027, 3, 1, 9, tzinfo=UTC))
    paused = world.file("BE")
    world.rights.send_code(org, paused.id, APP)
    world.clock.set(datetime(2027, 3, 11, 9, tzinfo=UTC))
    world.rights.send_code(org, paused.id, APP)
    done = world.rights.verify_code(org, paused.id, world.last_code(paused.email), APP)
    assert done.paused_days == 10
    assert done.due_on == date(2027, 4, 12)  # from 11 March; 11 April 2027 is a Sunday


def test_codes_are_stored_hashed_expire_and_allow_limited_attempts(world: World) -> None:
    org = world.org("FR")
    request = world.file()
    world.rights.send_code(org, request.id, APP)
    code = world.last_code(request.email)
    with world.runtime.engine.connect() as conn:
        stored = conn.execute(select(CODES).where(CODES.c.request_id == request.id)).one()
    assert code.encode() not in stored.code_mac and len(stored.code_mac) == 32

    world.clock.set(world.clock.now + timedelta(minutes=16))
    with pytest.raises(Conflict, match="expired"):
        world.rights.verify_code(org, request.id, code, APP)

    world.rights.send_code(org, request.id, APP)
    code = world.last_code(request.email)
    wrong = f"{(int(code) + 1) % 10**6:06d}"
    for left in (4, 3, 2, 1, 0):
        with pytest.raises(InvalidInput, match=f"{left} attempts? left"):
            world.rights.verify_code(org, request.id, wrong, APP)
    with pytest.raises(Conflict, match="too many"):
        world.rights.verify_code(org, request.id, code, APP)
    assert world.rights.get(org, request.id, reveal=False).status is Status.IDENTITY_PENDING

    failed = [h for h in world.rights.history(org, request.id).history if h.action == "identity_failed"]
    assert [h.details for h in failed] == [{"attempts": n} for n in range(1, 6)]

    for _ in range(3):
        world.rights.send_code(org, request.id, APP)
    with pytest.raises(Conflict, match="already sent"):
        world.rights.send_code(org, request.id, APP)
    # A fresh code works again after the failures.
    assert world.rights.verify_code(org, request.id, world.last_code(request.email), APP).status is Status.IN_PROGRESS


def test_the_code_email_speaks_the_requests_language(world: World) -> None:
    org = world.org("BE")
    request = world.file("BE", locale="nl")
    world.rights.send_code(org, request.id, APP)
    message = world.inbox.to(request.email)[-1]
    assert message["Subject"].startswith("Uw verificatiecode")
    assert message["From"] == "dpo@ogres.example"
    assert "Les Ogres BE" in body_of(message)


def test_extension_needs_the_first_month_still_running(world: World) -> None:
    org = world.org("FR")
    world.clock.set(datetime(2027, 3, 10, 9, tzinfo=UTC))
    request = world.file()
    assert request.due_on == date(2027, 4, 12)  # 10 April 2027 is a Saturday
    late = world.file()

    # 22:00 in Paris (summer time) on the last day of the first deadline.
    world.clock.set(datetime(2027, 4, 12, 20, tzinfo=UTC))
    extended = world.rights.extend(org, request.id, "two hundred tables across three systems", DPO)
    assert extended.extended and extended.extension_reason == "two hundred tables across three systems"
    assert extended.first_due_on == date(2027, 4, 12)
    assert extended.due_on == date(2027, 6, 10)  # 10 April + 2 months: Thursday 10 June
    with pytest.raises(Conflict, match="already extended"):
        world.rights.extend(org, request.id, "again", DPO)

    # 00:30 in Paris on 13 April: too late.
    world.clock.set(datetime(2027, 4, 12, 22, 30, tzinfo=UTC))
    with pytest.raises(Conflict, match="first deadline ran out on 2027-04-12"):
        world.rights.extend(org, late.id, "too late", DPO)
    assert world.rights.get(org, late.id, reveal=False).overdue


def test_lifecycle_rules_and_history(world: World) -> None:
    org = world.org("FR")
    request = world.file(type="erasure", ground="17(1)(a)")
    with pytest.raises(Conflict, match="verify the requester's identity first"):
        world.rights.transition(org, request.id, Status.IN_PROGRESS, "go", DPO)
    world.rights.verify_by_operator(org, request.id, "came to the desk with an ID card", DPO)
    with pytest.raises(InvalidInput, match="reason_code"):
        world.rights.transition(org, request.id, Status.REJECTED, "no", DPO)
    done = world.rights.transition(org, request.id, Status.COMPLETED, "erased by hand in the CRM", DPO)
    assert done.status is Status.COMPLETED and done.closed_at == world.clock.now
    with pytest.raises(Conflict, match="can no longer change"):
        world.rights.transition(org, request.id, Status.CANCELLED, "oops", DPO)
    with pytest.raises(NotFound):
        world.rights.transition(world.org("BE"), request.id, Status.CANCELLED, "not mine", DPO)

    history = world.rights.history(org, request.id).history
    assert [(h.action, h.from_status, h.to_status) for h in history] == [
        ("created", None, Status.RECEIVED),
        ("identity_verified", Status.RECEIVED, Status.IN_PROGRESS),
        ("completed", Status.IN_PROGRESS, Status.COMPLETED),
    ]
    assert history[0].actor == APP and history[2].actor == DPO
    assert history[1].reason == "came to the desk with an ID card"

    # Each step is an audit event of the ledger, with the same actor and reason, and no address.
    with world.runtime.engine.connect() as conn:
        rows = conn.execute(
            select(LEDGER.c.action, LEDGER.c.actor_id, LEDGER.c.canonical)
            .where(LEDGER.c.org_id == org, LEDGER.c.target_id == request.id)
            .order_by(LEDGER.c.seq)
        ).all()
    assert [(r.action, r.actor_id) for r in rows] == [
        ("rights.request.created", "app-key"),
        ("rights.request.identity_verified", "dpo-key"),
        ("rights.request.completed", "dpo-key"),
    ]
    assert orjson.loads(rows[2].canonical)["reason"] == "erased by hand in the CRM"
    assert all(request.email.encode() not in r.canonical for r in rows)


def test_a_rejection_carries_the_art_12_4_information(world: World) -> None:
    org = world.org("BE")
    request = world.file("BE", locale="fr")
    rejected = world.rights.transition(
        org, request.id, Status.REJECTED, "troisième demande identique ce mois-ci", DPO, RejectionCode.EXCESSIVE
    )
    assert rejected.outcome is not None and rejected.outcome.art12_4 is not None
    notice = rejected.outcome.art12_4
    assert rejected.outcome.reason_code is RejectionCode.EXCESSIVE
    assert notice.reasons == "troisième demande identique ce mois-ci"
    assert notice.authority == "Autorité de protection des données (APD)"
    assert "réclamation" in notice.complaint and "recours juridictionnel" in notice.judicial_remedy


def test_the_requester_is_kept_encrypted_and_pseudonymised(world: World) -> None:
    org = world.org("FR")
    request = world.file(email="secret.person@example.org", subject_id="customer-4242")
    with world.runtime.engine.connect() as conn:
        row = conn.execute(select(REQUESTS).where(REQUESTS.c.id == request.id)).one()
    everything = b"".join(v if isinstance(v, bytes) else str(v).encode() for v in row)
    assert b"secret.person" not in everything and b"customer-4242" not in everything
    assert world.rights.get(org, request.id, reveal=False).email == "s***@example.org"
    assert world.rights.identities(org, request.id).subject_id == "customer-4242"
    assert [r.id for r in world.rights.list_requests(org, email="Secret.Person@example.org").requests] == [request.id]


def test_a_direct_marketing_objection_blocks_from_receipt_and_cannot_be_rejected(world: World) -> None:
    org = world.org("FR")
    assert world.rights.can_process(org, "customer-7", "direct_marketing")
    request = world.file(type="objection", direct_marketing=True, subject_id="customer-7", email="seven@example.org")
    assert request.purposes == ["direct_marketing"]
    # The cached "allowed" answer was dropped when the block was recorded.
    assert not world.rights.can_process(org, "customer-7", "direct_marketing")
    assert not world.rights.can_process(org, "SEVEN@example.org", "direct_marketing")
    assert world.rights.can_process(org, "customer-7", "billing")
    assert world.rights.can_process(org, "customer-8", "direct_marketing")
    assert world.rights.check(org, "customer-7", "direct_marketing").blocked_by == ["direct_marketing"]
    with pytest.raises(Conflict, match="absolute"):
        world.rights.transition(org, request.id, Status.REJECTED, "we need the revenue", DPO, RejectionCode.OTHER)
    block = world.rights.blocks(org, "customer-7").blocks[0]
    with pytest.raises(Conflict, match="absolute"):
        world.rights.lift(org, block.id, "we need the revenue", DPO)
    # The person withdraws the objection: the block goes.
    world.rights.transition(org, request.id, Status.CANCELLED, "the person withdrew the objection", APP)
    assert world.rights.can_process(org, "customer-7", "direct_marketing")


def test_a_restriction_blocks_once_in_progress_until_lifted(world: World) -> None:
    org = world.org("FR")
    request = world.file(type="restriction", ground="18(1)(a)", subject_id="customer-9")
    assert request.purposes == ["*"]
    assert world.rights.can_process(org, "customer-9", "analytics")
    world.rights.verify_by_operator(org, request.id, "logged-in account", DPO)
    assert not world.rights.can_process(org, "customer-9", "analytics")
    assert world.rights.check(org, "customer-9", "billing").blocked_by == ["restriction"]
    world.rights.transition(org, request.id, Status.COMPLETED, "restricted", DPO)
    assert not world.rights.can_process(org, "customer-9", "billing")
    blocks = world.rights.blocks(org, "customer-9").blocks
    assert [(b.purpose, b.kind, b.active) for b in blocks] == [("*", "restriction", True)]
    lifted = world.rights.lift(org, blocks[0].id, "accuracy verified; person told on 2027-03-05", DPO)
    assert not lifted.active and lifted.lift_reason == "accuracy verified; person told on 2027-03-05"
    assert world.rights.can_process(org, "customer-9", "billing")
    with pytest.raises(Conflict, match="already lifted"):
        world.rights.lift(org, blocks[0].id, "again", DPO)


def test_a_rejected_objection_lifts_its_block(world: World) -> None:
    org = world.org("FR")
    request = world.file(type="objection", purposes=["profiling"], subject_id="customer-10", ground="21(1)")
    world.rights.verify_by_operator(org, request.id, "logged-in account", DPO)
    assert not world.rights.can_process(org, "customer-10", "profiling")
    world.rights.transition(
        org, request.id, Status.REJECTED, "compelling legitimate grounds: fraud checks", DPO, RejectionCode.OTHER
    )
    assert world.rights.can_process(org, "customer-10", "profiling")


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"type": "objection"}, "purposes"),
        ({"type": "access", "direct_marketing": True}, "direct_marketing"),
        ({"type": "access", "purposes": ["analytics"]}, "purposes"),
        ({"type": "rectification"}, "changes"),
        ({"type": "erasure", "changes": {"name": "X"}}, "changes"),
        ({"type": "access", "received_at": "2027-03-02T09:00:00Z"}, "received_at"),
        ({"type": "access", "received_at": "2026-02-01T09:00:00Z"}, "received_at"),
    ],
)
def test_inconsistent_requests_are_refused(world: World, body: dict[str, Any], field: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        world.file(**body)
    assert caught.value.extra["errors"][0]["field"] == field


SYSTEM = {"type": "system", "id": "datamap", "display": "execution engine"}


class RecordingEngine:
    """Stands where the datamap engine will: told when a request starts, it reports counts back."""

    def __init__(self) -> None:
        self.rights: RightsService | None = None
        self.calls: list[tuple[str, Identities]] = []

    def check(self, org_id: str, body: RequestIn) -> None:
        return None

    def started(
        self, org_id: str, request: RequestOut, identities: Identities, *, actor: dict[str, Any] | None = None
    ) -> None:
        self.calls.append((request.id, identities))
        assert self.rights is not None
        self.rights.complete(org_id, request.id, {"customers": 1, "orders": 12}, SYSTEM, "access package built")


def test_the_execution_engine_is_called_when_a_request_starts(runtime: Runtime, ledger: Ledger, world: World) -> None:
    engine = RecordingEngine()
    rights = engine.rights = RightsService(runtime, ledger, clock=world.clock, executor=engine)
    org = world.org("FR")
    request = rights.create(
        org, RequestIn(type=RequestType.ACCESS, email="eng@example.org", subject_id="c-1"), APP, "service"
    )
    done = rights.verify_by_operator(org, request.id, "logged-in account", DPO)
    assert done.status is Status.IN_PROGRESS  # the answer of the verification itself
    assert [(rid, ids.email, ids.subject_id) for rid, ids in engine.calls] == [(request.id, "eng@example.org", "c-1")]
    final = rights.get(org, request.id, reveal=False)
    assert final.status is Status.COMPLETED
    assert final.outcome is not None and final.outcome.summary == {"customers": 1, "orders": 12}
    assert rights.history(org, request.id).history[-1].actor == SYSTEM


def test_the_person_is_told_of_an_extension_and_of_a_rejection_by_e_mail(world: World, runtime: Runtime) -> None:
    org = world.org("FR")
    request = world.file(email="lea@example.org", locale="fr")
    extended = world.rights.extend(org, request.id, "volume exceptionnel de demandes", DPO)
    # Received Monday 1 March 2027: one month ends 1 April, two more end on Tuesday 1 June 2027.
    assert extended.due_on == date(2027, 6, 1)
    [told] = world.inbox.to("lea@example.org")
    assert told["Subject"] == "Votre demande auprès de Les Ogres FR : délai prolongé"
    assert "2027-06-01" in body_of(told) and "volume exceptionnel de demandes" in body_of(told)
    assert request.id in body_of(told)

    rejected = world.rights.transition(
        org, request.id, Status.REJECTED, "demande manifestement infondée", DPO, RejectionCode.MANIFESTLY_UNFOUNDED
    )
    letter = world.inbox.to("lea@example.org")[-1]
    assert letter["Subject"] == "Votre demande auprès de Les Ogres FR : pas de suite donnée"
    text = body_of(letter)
    assert "demande manifestement infondée" in text and "CNIL" in text and "article 79" in text
    steps = [(h.action, h.details) for h in world.rights.history(org, request.id).history]
    assert steps[-3:] == [
        ("person_notified", {"notice": "extension", "channel": "email"}),
        ("rejected", {"reason_code": "manifestly_unfounded"}),
        ("person_notified", {"notice": "rejection", "channel": "email"}),
    ]
    assert world.rights.get(org, request.id, reveal=False).closed_at == rejected.closed_at

    # The SMTP server gone: the rejection stands, and the history says the person was not reached.
    world.rights.mailer = Mailer(runtime.settings.model_copy(update={"smtp_host": "127.0.0.1", "smtp_port": 9}))
    other = world.file(email="noe@example.org", locale="nl")
    world.rights.transition(org, other.id, Status.REJECTED, "dubbel verzoek", DPO, RejectionCode.EXCESSIVE)
    last = world.rights.history(org, other.id).history[-1]
    assert last.action == "notification_failed" and last.reason is not None and "SMTP" in last.reason
    assert world.rights.get(org, other.id, reveal=False).status is Status.REJECTED
