"""The SCA advisor with memory: policies, per-payer counters, recorded decisions, challenges, reports.

`rules.decide` is the pure answer; this module feeds it what a PSP should not have to carry on every
call (counters since the last SCA, fraud rates, Art. 20 suspensions), records what was decided for
the Art. 21 report, and keeps challenges with dynamic linking. Every decision that triggers SCA and
every challenge step is an audit event tagged `SCA_TRIGGERED` for the DPIA log.

Each method comes twice: a plain one for in-process callers, and an `_async` one for the API that
runs the database work in a thread and awaits the ledger's group commit.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import ROUND_CEILING, Decimal
from typing import Any, TypeVar

from sqlalchemy import Row, case, func, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from gardien.audit.service import Ledger
from gardien.core.clock import utcnow
from gardien.core.db import is_sqlite
from gardien.core.errors import Conflict, InvalidInput, NotFound
from gardien.core.ids import new_id
from gardien.core.runtime import Runtime
from gardien.psd2 import linking, rules
from gardien.psd2.models import ScaChallenge, ScaCounter, ScaDecision, ScaFraudQuarter, ScaPolicy
from gardien.psd2.schemas import (
    Art21Report,
    ChallengeCreated,
    ChallengeIn,
    ChallengeOut,
    CountersOut,
    DecideIn,
    DecisionOut,
    ExemptionOut,
    ExemptionShare,
    FraudQuarterIn,
    FraudQuarterOut,
    FraudQuartersOut,
    FraudReportIn,
    PolicyIn,
    PolicyOut,
    RefusalOut,
    ReportSegment,
    SuspendedBand,
    VerifyIn,
)
from gardien.psd2.thresholds import RuleSet, load_ruleset

MICROS = Decimal(1_000_000)
MODULE = "psd2"
DPIA_SCA = {"dpia_event": "SCA_TRIGGERED"}
T = TypeVar("T")
Events = list[dict[str, Any]]

DISPLAY = {
    "en": "Confirm the payment of {amount} {currency} to {payees}",
    "fr": "Confirmez le paiement de {amount} {currency} à {payees}",
    "nl": "Bevestig de betaling van {amount} {currency} aan {payees}",
    "de": "Bestätigen Sie die Zahlung von {amount} {currency} an {payees}",
}
FAILED = "authentication failed"


def audit_event(
    action: str, crud: str, actor: Mapping[str, Any], target: tuple[str, str] | None, **extra: Any
) -> dict[str, Any]:
    """An event of this module for the ledger; `extra` adds reason, changes, fields or outcome."""
    event = {"module": MODULE, "action": action, "crud": crud, "actor": dict(actor), **extra}
    if target is not None:
        event["target"] = {"type": target[0], "id": target[1]}
    return event


def to_micros(amount: Decimal) -> int:
    """Euros to integer micro-euros, rounded up: a counter never under-counts."""
    return int((amount * MICROS).to_integral_value(ROUND_CEILING))


def from_micros(micros: int) -> Decimal:
    return (Decimal(micros) / MICROS).quantize(Decimal("0.000001")).normalize()


def display_amount(amount: Decimal) -> str:
    """Two decimals as payers expect them, unless that would hide a digit of what is bound."""
    cents = amount.quantize(Decimal("0.01"))
    return f"{cents:f}" if cents == amount else f"{amount.normalize():f}"


def _money(value: Decimal | None) -> str | None:
    return None if value is None else f"{value.normalize():f}"


@dataclass(frozen=True)
class LoadedPolicy:
    version: int
    document: PolicyIn
    policy: rules.Policy
    fraud_rates: dict[str, Decimal]
    suspended: frozenset[tuple[str, Decimal]]
    updated_at: datetime | None


class ScaAdvisor:
    def __init__(self, runtime: Runtime, ledger: Ledger, ruleset: RuleSet | None = None) -> None:
        self.runtime = runtime
        self.ledger = ledger
        self.ruleset = ruleset or load_ruleset()
        self._policies: dict[str, LoadedPolicy] = {}
        self._sqlite = is_sqlite(runtime.engine)

    # Pseudonyms and policy ------------------------------------------------------------------

    def pseudonym(self, reference: str) -> str:
        """The keyed pseudonym a payer is stored under.

        It uses the keyring's oldest HMAC key, which rotation retires but never removes, so a
        payer's counters survive a key rotation instead of silently restarting at zero.
        """
        oldest = next(iter(self.runtime.keyring.hmac_keys().values()))
        return oldest.digest(b"psd2-payer\0" + reference.encode()).hex()

    def _counter_key(self, loaded: LoadedPolicy, payer: str, instrument_id: str | None) -> str:
        if loaded.document.counter_scope == "instrument" and instrument_id is not None:
            return self.pseudonym(f"{payer}\0{instrument_id}")
        return self.pseudonym(payer)

    def _load_policy(self, session: Session, org_id: str) -> LoadedPolicy:
        row = session.execute(
            select(ScaPolicy.version, ScaPolicy.document, ScaPolicy.updated_at).where(ScaPolicy.org_id == org_id)
        ).first()
        version = row.version if row is not None else 0
        cached = self._policies.get(org_id)
        if cached is not None and cached.version == version:
            return cached
        document = PolicyIn.model_validate_json(row.document) if row is not None else PolicyIn()
        quarters = session.scalars(select(ScaFraudQuarter).where(ScaFraudQuarter.org_id == org_id)).all()
        history = [
            rules.QuarterRate(q.quarter, rules.Instrument(q.instrument), Decimal(q.rate_percent), q.resumption_notified)
            for q in quarters
        ]
        loaded = LoadedPolicy(
            version=version,
            document=document,
            policy=document.to_policy(),
            fraud_rates=document.fraud_rates.as_mapping(),
            suspended=rules.tra_suspensions(history, self.ruleset),
            updated_at=row.updated_at if row is not None else None,
        )
        self._policies[org_id] = loaded
        return loaded

    def get_policy(self, org_id: str) -> PolicyOut:
        with self.runtime.sessions() as session:
            loaded = self._load_policy(session, org_id)
        return PolicyOut(**loaded.document.model_dump(), version=loaded.version, updated_at=loaded.updated_at)

    def _bump_policy(self, session: Session, org_id: str, document: PolicyIn | None) -> int:
        row = session.get(ScaPolicy, org_id, with_for_update=not self._sqlite)
        now = utcnow()
        if row is None:
            text = (document or PolicyIn()).model_dump_json()
            session.add(ScaPolicy(org_id=org_id, version=1, document=text, updated_at=now))
            return 1
        row.version += 1
        row.updated_at = now
        if document is not None:
            row.document = document.model_dump_json()
        return row.version

    def _set_policy(self, org_id: str, document: PolicyIn, actor: Mapping[str, Any]) -> tuple[PolicyOut, Events]:
        with self.runtime.writes() as session, session.begin():
            before = self._load_policy(session, org_id).document
            version = self._bump_policy(session, org_id, document)
        event = audit_event(
            "sca.policy.updated",
            "update",
            actor,
            ("sca_policy", org_id),
            changes={"before": before.model_dump(mode="json"), "after": document.model_dump(mode="json")},
            fields={"version": version},
        )
        return self.get_policy(org_id), [event]

    # Fraud figures (Art. 19, 20) ------------------------------------------------------------

    def _record_quarter(
        self, org_id: str, quarter: str, instrument: rules.Instrument, body: FraudQuarterIn, actor: Mapping[str, Any]
    ) -> tuple[FraudQuartersOut, Events]:
        rules.quarter_index(quarter)
        with self.runtime.writes() as session, session.begin():
            row = session.get(ScaFraudQuarter, (org_id, quarter, instrument.value))
            if row is None:
                row = ScaFraudQuarter(org_id=org_id, quarter=quarter, instrument=instrument.value)
                session.add(row)
            row.rate_percent = f"{body.rate_percent.normalize():f}"
            row.resumption_notified = body.resumption_notified
            row.recorded_at = utcnow()
            self._bump_policy(session, org_id, None)
        result = self.fraud_quarters(org_id)
        event = audit_event(
            "sca.fraud_rate.recorded",
            "update",
            actor,
            ("sca_fraud_quarter", f"{quarter}/{instrument.value}"),
            fields={
                "rate_percent": row.rate_percent,
                "resumption_notified": body.resumption_notified,
                "tra_suspended": [band.model_dump(mode="json") for band in result.tra_suspended],
            },
        )
        return result, [event]

    def fraud_quarters(self, org_id: str) -> FraudQuartersOut:
        with self.runtime.sessions() as session:
            loaded = self._load_policy(session, org_id)
            rows = session.scalars(
                select(ScaFraudQuarter)
                .where(ScaFraudQuarter.org_id == org_id)
                .order_by(ScaFraudQuarter.quarter, ScaFraudQuarter.instrument)
            ).all()
        return FraudQuartersOut(
            quarters=[
                FraudQuarterOut(
                    quarter=r.quarter,
                    instrument=rules.Instrument(r.instrument),
                    rate_percent=r.rate_percent,
                    resumption_notified=r.resumption_notified,
                )
                for r in rows
            ],
            tra_suspended=[
                SuspendedBand(instrument=rules.Instrument(instrument), etv_eur=f"{etv:f}")
                for instrument, etv in sorted(loaded.suspended)
            ],
        )

    # Decisions ------------------------------------------------------------------------------

    def _decide(self, org_id: str, body: DecideIn, actor: Mapping[str, Any]) -> tuple[DecisionOut, Events]:
        if not body.record:
            with self.runtime.sessions() as session:
                loaded = self._load_policy(session, org_id)
                key = self._key_of(loaded, body)
                stored = self._counters(session, org_id, key) if key is not None and body.counters is None else None
            return self._answer(body, loaded, stored, None), []
        with self.runtime.writes() as session, session.begin():
            loaded = self._load_policy(session, org_id)
            key = self._key_of(loaded, body)
            stored = (
                self._counters(session, org_id, key, lock=True) if key is not None and body.counters is None else None
            )
            decision_id = new_id()
            out = self._answer(body, loaded, stored, decision_id)
            payment = body.payment if body.operation is rules.Operation.PAYMENT else None
            amount = Decimal(out.amount_eur) if out.amount_eur is not None else None
            now = utcnow()
            session.add(
                ScaDecision(
                    id=decision_id,
                    org_id=org_id,
                    decided_at=now,
                    payer_key=key,
                    operation=body.operation.value,
                    role=body.role.value,
                    channel=payment.channel.value if payment is not None else None,
                    instrument=payment.instrument.value if payment is not None else None,
                    amount_micros=to_micros(amount) if amount is not None else None,
                    outcome=out.outcome.value,
                    exemption=out.recommended.article if out.recommended is not None else None,
                    ruleset=out.ruleset,
                )
            )
            if key is not None and body.counters is None and payment is not None and amount is not None:
                self._count(session, org_id, key, out.outcome, payment.channel, amount, now)
        events: Events = []
        if out.sca_required:
            events.append(
                audit_event(
                    "sca.required",
                    "create",
                    actor,
                    ("payer", key) if key is not None else None,
                    reason=(out.reason or "")[:2000],
                    fields={
                        **DPIA_SCA,
                        "decision_id": decision_id,
                        "operation": body.operation.value,
                        "role": body.role.value,
                        "channel": payment.channel.value if payment is not None else None,
                        "instrument": payment.instrument.value if payment is not None else None,
                        "amount_eur": out.amount_eur,
                        "method": out.method.value,
                        "ruleset": out.ruleset,
                    },
                )
            )
        return out, events

    def _key_of(self, loaded: LoadedPolicy, body: DecideIn) -> str | None:
        payer = body.payer_ref()
        if payer is None:
            return None
        instrument_id = body.payment.instrument_id if body.payment is not None else None
        return self._counter_key(loaded, payer, instrument_id)

    def _answer(
        self, body: DecideIn, loaded: LoadedPolicy, stored: rules.Counters | None, decision_id: str | None
    ) -> DecisionOut:
        if body.counters is not None:
            c = body.counters
            counters = rules.Counters(c.contactless_count, c.contactless_sum_eur, c.remote_count, c.remote_sum_eur)
        else:
            counters = stored or rules.NO_COUNTERS
        request = body.to_request(counters, loaded.fraud_rates, loaded.suspended)
        try:
            decision = rules.decide(request, loaded.policy, self.ruleset)
        except ValueError as exc:
            raise InvalidInput(str(exc)) from None
        return decision_out(decision, decision_id)

    def _counters(self, session: Session, org_id: str, key: str, *, lock: bool = False) -> rules.Counters:
        stmt = select(ScaCounter).where(ScaCounter.org_id == org_id, ScaCounter.payer_key == key)
        if lock and not self._sqlite:
            stmt = stmt.with_for_update()
        row = session.scalars(stmt).first()
        if row is None:
            return rules.NO_COUNTERS
        return rules.Counters(
            row.contactless_count,
            from_micros(row.contactless_micros),
            row.remote_count,
            from_micros(row.remote_micros),
        )

    def _count(
        self,
        session: Session,
        org_id: str,
        key: str,
        outcome: rules.Outcome,
        channel: rules.Channel,
        amount: Decimal,
        now: datetime,
    ) -> None:
        """Add an exempted payment to the payer's counters since the last SCA (Art. 11 and 16)."""
        if outcome is not rules.Outcome.EXEMPT:
            return
        if channel is rules.Channel.REMOTE:
            count, total = ScaCounter.remote_count, ScaCounter.remote_micros
        elif channel is rules.Channel.CONTACTLESS_POS:
            count, total = ScaCounter.contactless_count, ScaCounter.contactless_micros
        else:
            return
        micros = to_micros(amount)
        values = {
            "org_id": org_id,
            "payer_key": key,
            "contactless_count": 0,
            "contactless_micros": 0,
            "remote_count": 0,
            "remote_micros": 0,
            "updated_at": now,
            count.key: 1,
            total.key: micros,
        }
        dialect = sqlite if self._sqlite else postgresql
        stmt = dialect.insert(ScaCounter).values(values)
        stmt = stmt.on_conflict_do_update(
            index_elements=[ScaCounter.org_id, ScaCounter.payer_key],
            set_={count.key: count + 1, total.key: total + micros, "updated_at": now},
        )
        session.execute(stmt)

    def _reset(self, session: Session, org_id: str, key: str, now: datetime) -> None:
        """SCA was applied: the counters start again from zero (Art. 11 and 16, "since the last SCA")."""
        values = {
            "contactless_count": 0,
            "contactless_micros": 0,
            "remote_count": 0,
            "remote_micros": 0,
            "last_sca_at": now,
            "updated_at": now,
        }
        dialect = sqlite if self._sqlite else postgresql
        stmt = dialect.insert(ScaCounter).values(org_id=org_id, payer_key=key, **values)
        session.execute(
            stmt.on_conflict_do_update(index_elements=[ScaCounter.org_id, ScaCounter.payer_key], set_=values)
        )

    def counters(self, org_id: str, payer: str, instrument_id: str | None = None) -> CountersOut:
        with self.runtime.sessions() as session:
            loaded = self._load_policy(session, org_id)
            key = self._counter_key(loaded, payer, instrument_id)
            row = session.get(ScaCounter, (org_id, key))
        if row is None:
            return CountersOut(
                contactless_count=0, contactless_sum_eur="0", remote_count=0, remote_sum_eur="0", last_sca_at=None
            )
        return CountersOut(
            contactless_count=row.contactless_count,
            contactless_sum_eur=f"{from_micros(row.contactless_micros):f}",
            remote_count=row.remote_count,
            remote_sum_eur=f"{from_micros(row.remote_micros):f}",
            last_sca_at=row.last_sca_at,
        )

    def _sca_performed(
        self, org_id: str, payer: str, instrument_id: str | None, actor: Mapping[str, Any]
    ) -> tuple[CountersOut, Events]:
        with self.runtime.writes() as session, session.begin():
            loaded = self._load_policy(session, org_id)
            key = self._counter_key(loaded, payer, instrument_id)
            self._reset(session, org_id, key, utcnow())
        event = audit_event(
            "sca.performed",
            "update",
            actor,
            ("payer", key),
            reason="strong customer authentication applied outside Gardien; counters reset",
            fields=dict(DPIA_SCA),
        )
        return self.counters(org_id, payer, instrument_id), [event]

    def _report_fraud(
        self, org_id: str, decision_id: str, body: FraudReportIn, actor: Mapping[str, Any]
    ) -> tuple[dict[str, Any], Events]:
        with self.runtime.writes() as session, session.begin():
            row = session.get(ScaDecision, decision_id, with_for_update=not self._sqlite)
            if row is None or row.org_id != org_id:
                raise NotFound(f"decision {decision_id}")
            if row.amount_micros is None:
                raise Conflict("only payment decisions carry an amount that can be reported as fraud")
            micros = to_micros(body.amount_eur) if body.amount_eur is not None else row.amount_micros
            if micros > row.amount_micros:
                raise InvalidInput(
                    "the fraudulent amount exceeds the payment's",
                    [{"path": "amount_eur", "message": f"at most {from_micros(row.amount_micros):f}"}],
                )
            row.fraud_micros = micros
            row.fraud_reported_at = utcnow()
        result = {"decision_id": decision_id, "fraud_amount_eur": f"{from_micros(micros):f}"}
        event = audit_event("sca.fraud.reported", "update", actor, ("sca_decision", decision_id), fields=result)
        return result, [event]

    # Challenges (Art. 4, 5) -----------------------------------------------------------------

    def _create_challenge(
        self, org_id: str, body: ChallengeIn, actor: Mapping[str, Any], instrument_id: str | None = None
    ) -> tuple[ChallengeCreated, Events]:
        payees = body.payee_list()
        code = linking.new_code()
        challenge_id = new_id()
        key = self.runtime.keyring.hmac_key()
        binding = linking.bind(
            key.secret, linking.binding_message(challenge_id, code, body.amount, body.currency, payees)
        )
        now = utcnow()
        with self.runtime.writes() as session, session.begin():
            loaded = self._load_policy(session, org_id)
            if body.decision_id is not None:
                decision = session.get(ScaDecision, body.decision_id)
                if decision is None or decision.org_id != org_id:
                    raise NotFound(f"decision {body.decision_id}")
            payer_key = self._counter_key(loaded, body.payer, instrument_id)
            session.add(
                ScaChallenge(
                    id=challenge_id,
                    org_id=org_id,
                    payer_key=payer_key,
                    decision_id=body.decision_id,
                    binding=binding,
                    hmac_kid=key.kid,
                    failed_attempts=0,
                    status="pending",
                    created_at=now,
                    last_activity_at=now,
                )
            )
        display = DISPLAY[body.locale].format(
            amount=display_amount(body.amount), currency=body.currency, payees=", ".join(payees)
        )
        created = ChallengeCreated(
            id=challenge_id, code=code, display=display, status="pending", expires_at=now + self._timeout()
        )
        return created, [self._challenge_event(org_id, challenge_id, payer_key, actor, "created", "create")]

    def _timeout(self) -> timedelta:
        return timedelta(seconds=self.ruleset.inactivity_timeout_seconds)

    def _challenge_event(
        self, org_id: str, challenge_id: str, payer_key: str, actor: Mapping[str, Any], step: str, crud: str
    ) -> dict[str, Any]:
        return audit_event(
            f"sca.challenge.{step}",
            crud,
            actor,
            ("sca_challenge", challenge_id),
            outcome="failure" if step in ("failed", "blocked", "expired") else "success",
            fields={**DPIA_SCA, "payer": payer_key},
        )

    def _verify_challenge(
        self, org_id: str, challenge_id: str, body: VerifyIn, actor: Mapping[str, Any]
    ) -> tuple[ChallengeOut, Events]:
        limit = self.ruleset.max_failed_attempts
        events: Events = []
        with self.runtime.writes() as session, session.begin():
            row = session.get(ScaChallenge, challenge_id, with_for_update=not self._sqlite)
            if row is None or row.org_id != org_id:
                raise NotFound(f"challenge {challenge_id}")
            now = utcnow()
            if row.status == "pending" and now - row.last_activity_at > self._timeout():
                row.status = "expired"
                row.completed_at = now
                events.append(self._challenge_event(org_id, row.id, row.payer_key, actor, "expired", "update"))
            elif row.status == "pending":
                message = linking.binding_message(row.id, body.code, body.amount, body.currency, body.payee_list())
                secret = self.runtime.keyring.hmac_key(row.hmac_kid).secret
                if linking.matches(secret, message, row.binding):
                    row.status = "verified"
                    row.completed_at = now
                    self._reset(session, org_id, row.payer_key, now)
                    events.append(self._challenge_event(org_id, row.id, row.payer_key, actor, "verified", "update"))
                else:
                    row.failed_attempts += 1
                    row.last_activity_at = now
                    step = "failed"
                    if row.failed_attempts >= limit:
                        row.status = "blocked"
                        row.completed_at = now
                        step = "blocked"
                    events.append(self._challenge_event(org_id, row.id, row.payer_key, actor, step, "update"))
            out = challenge_out(row, limit, self._timeout(), failed_now=bool(events) and row.status != "verified")
        return out, events

    def challenge(self, org_id: str, challenge_id: str) -> ChallengeOut:
        with self.runtime.sessions() as session:
            row = session.get(ScaChallenge, challenge_id)
            if row is None or row.org_id != org_id:
                raise NotFound(f"challenge {challenge_id}")
        if row.status == "pending" and utcnow() - row.last_activity_at > self._timeout():
            row.status = "expired"
        return challenge_out(row, self.ruleset.max_failed_attempts, self._timeout())

    # Art. 21 report -------------------------------------------------------------------------

    def art21_report(self, org_id: str, quarter: str) -> Art21Report:
        """Quarterly figures per Art. 21: value, fraud and use of each exemption, remote and not."""
        start, end = quarter_bounds(quarter)
        remote = case((ScaDecision.channel == rules.Channel.REMOTE.value, True), else_=False).label("remote")
        stmt = (
            select(
                remote,
                ScaDecision.instrument,
                ScaDecision.outcome,
                ScaDecision.exemption,
                func.count().label("n"),
                func.coalesce(func.sum(ScaDecision.amount_micros), 0).label("value"),
                func.coalesce(func.sum(ScaDecision.fraud_micros), 0).label("fraud"),
            )
            .where(
                ScaDecision.org_id == org_id,
                ScaDecision.decided_at >= start,
                ScaDecision.decided_at < end,
                ScaDecision.operation == rules.Operation.PAYMENT.value,
            )
            .group_by(remote, ScaDecision.instrument, ScaDecision.outcome, ScaDecision.exemption)
        )
        with self.runtime.sessions() as session:
            rows = session.execute(stmt).all()
        return build_report(quarter, start, end, self.ruleset.id, rows)

    # Async wrappers for the API --------------------------------------------------------------

    async def _audit_async(self, org_id: str, events: Events) -> None:
        if events:
            await self.ledger.append_async(org_id, [self.ledger.prepare(e) for e in events])

    def _audit(self, org_id: str, events: Events) -> None:
        if events:
            self.ledger.append_prepared(org_id, [self.ledger.prepare(e) for e in events])

    async def _run(self, org_id: str, work: Callable[[], tuple[T, Events]]) -> T:
        result, events = await run_in_threadpool(work)
        await self._audit_async(org_id, events)
        return result

    def _run_sync(self, org_id: str, work: Callable[[], tuple[T, Events]]) -> T:
        result, events = work()
        self._audit(org_id, events)
        return result

    def decide(self, org_id: str, body: DecideIn, actor: Mapping[str, Any]) -> DecisionOut:
        return self._run_sync(org_id, lambda: self._decide(org_id, body, actor))

    async def decide_async(self, org_id: str, body: DecideIn, actor: Mapping[str, Any]) -> DecisionOut:
        return await self._run(org_id, lambda: self._decide(org_id, body, actor))

    def set_policy(self, org_id: str, body: PolicyIn, actor: Mapping[str, Any]) -> PolicyOut:
        return self._run_sync(org_id, lambda: self._set_policy(org_id, body, actor))

    async def set_policy_async(self, org_id: str, body: PolicyIn, actor: Mapping[str, Any]) -> PolicyOut:
        return await self._run(org_id, lambda: self._set_policy(org_id, body, actor))

    def record_quarter(
        self, org_id: str, quarter: str, instrument: rules.Instrument, body: FraudQuarterIn, actor: Mapping[str, Any]
    ) -> FraudQuartersOut:
        return self._run_sync(org_id, lambda: self._record_quarter(org_id, quarter, instrument, body, actor))

    async def record_quarter_async(
        self, org_id: str, quarter: str, instrument: rules.Instrument, body: FraudQuarterIn, actor: Mapping[str, Any]
    ) -> FraudQuartersOut:
        return await self._run(org_id, lambda: self._record_quarter(org_id, quarter, instrument, body, actor))

    def sca_performed(
        self, org_id: str, payer: str, instrument_id: str | None, actor: Mapping[str, Any]
    ) -> CountersOut:
        return self._run_sync(org_id, lambda: self._sca_performed(org_id, payer, instrument_id, actor))

    async def sca_performed_async(
        self, org_id: str, payer: str, instrument_id: str | None, actor: Mapping[str, Any]
    ) -> CountersOut:
        return await self._run(org_id, lambda: self._sca_performed(org_id, payer, instrument_id, actor))

    def report_fraud(
        self, org_id: str, decision_id: str, body: FraudReportIn, actor: Mapping[str, Any]
    ) -> dict[str, Any]:
        return self._run_sync(org_id, lambda: self._report_fraud(org_id, decision_id, body, actor))

    async def report_fraud_async(
        self, org_id: str, decision_id: str, body: FraudReportIn, actor: Mapping[str, Any]
    ) -> dict[str, Any]:
        return await self._run(org_id, lambda: self._report_fraud(org_id, decision_id, body, actor))

    def create_challenge(
        self, org_id: str, body: ChallengeIn, actor: Mapping[str, Any], instrument_id: str | None = None
    ) -> ChallengeCreated:
        return self._run_sync(org_id, lambda: self._create_challenge(org_id, body, actor, instrument_id))

    async def create_challenge_async(
        self, org_id: str, body: ChallengeIn, actor: Mapping[str, Any], instrument_id: str | None = None
    ) -> ChallengeCreated:
        return await self._run(org_id, lambda: self._create_challenge(org_id, body, actor, instrument_id))

    def verify_challenge(
        self, org_id: str, challenge_id: str, body: VerifyIn, actor: Mapping[str, Any]
    ) -> ChallengeOut:
        return self._run_sync(org_id, lambda: self._verify_challenge(org_id, challenge_id, body, actor))

    async def verify_challenge_async(
        self, org_id: str, challenge_id: str, body: VerifyIn, actor: Mapping[str, Any]
    ) -> ChallengeOut:
        return await self._run(org_id, lambda: self._verify_challenge(org_id, challenge_id, body, actor))


def decision_out(decision: rules.Decision, decision_id: str | None) -> DecisionOut:
    return DecisionOut(
        decision_id=decision_id,
        outcome=decision.outcome,
        sca_required=decision.sca_required,
        recommended=exemption_out(decision.recommended) if decision.recommended is not None else None,
        exemptions=[exemption_out(e) for e in decision.exemptions],
        not_applicable=[
            RefusalOut(article=r.article, reason=r.reason, in_scope=r.in_scope) for r in decision.not_applicable
        ],
        reason=decision.reason,
        method=decision.method,
        challenge_indicator=decision.challenge_indicator,
        amount_eur=_money(decision.amount_eur),
        ruleset=decision.ruleset,
    )


def exemption_out(exemption: rules.Exemption) -> ExemptionOut:
    return ExemptionOut(
        article=exemption.article,
        name=exemption.name,
        mandatory=exemption.mandatory,
        etv_eur=_money(exemption.etv_eur),
    )


def challenge_out(row: ScaChallenge, limit: int, timeout: timedelta, *, failed_now: bool = False) -> ChallengeOut:
    status = row.status
    if status == "pending" and failed_now:
        status = "failed"
    details = {
        "pending": "waiting for the payer's code",
        "failed": FAILED,
        "verified": "authenticated",
        "blocked": f"{FAILED}; blocked after {limit} failed attempts",
        "expired": f"expired after {int(timeout.total_seconds()) // 60} minutes without activity",
    }
    return ChallengeOut(
        id=row.id,
        status=status,
        verified=status == "verified",
        attempts_left=max(limit - row.failed_attempts, 0) if row.status == "pending" else 0,
        detail=details[status],
        expires_at=row.last_activity_at + timeout if row.status == "pending" else None,
    )


def quarter_bounds(quarter: str) -> tuple[datetime, datetime]:
    index = rules.quarter_index(quarter)
    year, q = divmod(index, 4)
    start = datetime(year, 3 * q + 1, 1, tzinfo=utcnow().tzinfo)
    end_year, end_q = divmod(index + 1, 4)
    return start, datetime(end_year, 3 * end_q + 1, 1, tzinfo=start.tzinfo)


def _percent(part: int, whole: int, places: str = "0.01") -> str:
    if whole == 0:
        return "0"
    return f"{(Decimal(part) * 100 / Decimal(whole)).quantize(Decimal(places)):f}"


def build_report(quarter: str, start: datetime, end: datetime, ruleset: str, rows: Sequence[Row[Any]]) -> Art21Report:
    segments: dict[tuple[bool, str], dict[str, Any]] = {}
    out_of_scope = 0
    for row in rows:
        remote, instrument, outcome, exemption, n, value, fraud = tuple(row)
        if outcome == rules.Outcome.OUT_OF_SCOPE.value or instrument is None:
            out_of_scope += n
            continue
        seg = segments.setdefault((bool(remote), instrument), {"n": 0, "value": 0, "fraud": 0, "by": {}})
        seg["n"] += n
        seg["value"] += int(value)
        seg["fraud"] += int(fraud)
        label = exemption or "sca"
        seg["by"][label] = seg["by"].get(label, 0) + n
    result = []
    for (remote, instrument), seg in sorted(segments.items()):
        result.append(
            ReportSegment(
                remote=remote,
                instrument=rules.Instrument(instrument),
                transactions=seg["n"],
                value_eur=f"{from_micros(seg['value']):f}",
                average_value_eur=f"{(from_micros(seg['value']) / seg['n']).quantize(Decimal('0.01')):f}",
                fraud_value_eur=f"{from_micros(seg['fraud']):f}",
                fraud_rate_percent=_percent(seg["fraud"], seg["value"], "0.0001"),
                by_exemption=[
                    ExemptionShare(
                        exemption=label,
                        name=rules.EXEMPTION_NAMES.get(label, "strong_customer_authentication"),
                        count=count,
                        share_percent=_percent(count, seg["n"]),
                    )
                    for label, count in sorted(seg["by"].items(), key=lambda item: (-item[1], item[0]))
                ],
            )
        )
    return Art21Report(
        quarter=quarter, start=start, end=end, ruleset=ruleset, segments=result, out_of_scope=out_of_scope
    )
