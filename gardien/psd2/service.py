"""The SCA advisor with memory: policies, per-payer counters, recorded decisions, challenges, reports.

`rules.decide` is the pure answer; this module feeds it what a PSP should not have to carry on every
call (counters since the last SCA, fraud rates, Art. 20 suspensions), records what was decided for
the Art. 21 report, and keeps challenges with dynamic linking. Every decision that triggers SCA and
every challenge step is an audit event tagged `SCA_TRIGGERED` for the DPIA log.

Each write is a piece of work run inside the ledger's transaction (`Ledger.transact`), so a change
and its audit events commit together. Each write method comes twice: a plain one for in-process
callers, and an `_async` one for the API that awaits the ledger's group commit.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from decimal import ROUND_CEILING, Decimal
from typing import Any

from sqlalchemy import Connection, Integer, Row, String, Table, bindparam, case, cast, func, insert, select, update
from sqlalchemy.dialects import postgresql, sqlite
from starlette.concurrency import run_in_threadpool

from gardien.audit.sealing import PreparedEvent, Sealed
from gardien.audit.service import Ledger
from gardien.audit.writer import BatchWork
from gardien.audit.writer import Work as LedgerWork
from gardien.core.clock import utcnow
from gardien.core.db import is_sqlite
from gardien.core.errors import Conflict, InvalidInput, NotFound
from gardien.core.ids import new_id
from gardien.core.keyring import HmacKey
from gardien.core.runtime import Runtime
from gardien.psd2 import linking, rules
from gardien.psd2.models import CHALLENGES, COUNTERS, DECISIONS, FRAUD_QUARTERS, POLICIES
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
    PaymentIn,
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
Events = list[dict[str, Any]]
# What the service runs inside a ledger transaction: it returns its result and the audit events.
Work = Callable[[Connection], tuple[Any, Events]]

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
        self._pseudonym_key: HmacKey | None = None
        self._sqlite = is_sqlite(runtime.engine)
        # Per counted channel (Art. 11 contactless, Art. 16 remote): the counter upsert.
        self._counting = {
            rules.Channel.REMOTE: self._upsert_count("remote_count", "remote_micros"),
            rules.Channel.CONTACTLESS_POS: self._upsert_count("contactless_count", "contactless_micros"),
        }
        reset: dict[str, Any] = {
            name: 0 for name in ("contactless_count", "contactless_micros", "remote_count", "remote_micros")
        }
        reset.update(last_sca_at=bindparam("now"), updated_at=bindparam("now"))
        self._reset_stmt = self._insert(COUNTERS).values(org_id=bindparam("org"), payer_key=bindparam("key"), **reset)
        self._reset_stmt = self._reset_stmt.on_conflict_do_update(
            index_elements=[COUNTERS.c.org_id, COUNTERS.c.payer_key], set_=reset
        )

    def _insert(self, table: Table) -> Any:
        return (sqlite if self._sqlite else postgresql).insert(table)

    def _upsert_count(self, count: str, total: str) -> Any:
        """Add one payment of `micros` to a payer's counters, creating the row if needed."""
        values: dict[str, Any] = {
            "org_id": bindparam("org"),
            "payer_key": bindparam("key"),
            "contactless_count": 0,
            "contactless_micros": 0,
            "remote_count": 0,
            "remote_micros": 0,
            "updated_at": bindparam("now"),
        }
        values.update({count: 1, total: bindparam("micros")})
        stmt = self._insert(COUNTERS).values(values)
        return stmt.on_conflict_do_update(
            index_elements=[COUNTERS.c.org_id, COUNTERS.c.payer_key],
            set_={
                count: COUNTERS.c[count] + 1,
                total: COUNTERS.c[total] + bindparam("micros"),
                "updated_at": bindparam("now"),
            },
        )

    # Pseudonyms and policy ------------------------------------------------------------------

    def pseudonym(self, reference: str) -> str:
        """The keyed pseudonym a payer is stored under.

        It uses the keyring's oldest HMAC key, which rotation retires but never removes, so a
        payer's counters survive a key rotation instead of silently restarting at zero.
        """
        if self._pseudonym_key is None:
            self._pseudonym_key = next(iter(self.runtime.keyring.hmac_keys().values()))
        return self._pseudonym_key.digest(b"psd2-payer\0" + reference.encode()).hex()

    def _counter_key(self, loaded: LoadedPolicy, payer: str, instrument_id: str | None) -> str:
        if loaded.document.counter_scope == "instrument" and instrument_id is not None:
            return self.pseudonym(f"{payer}\0{instrument_id}")
        return self.pseudonym(payer)

    def _load_policy(self, conn: Connection, org_id: str) -> LoadedPolicy:
        """The organisation's policy; parsed once per version, the version read on every call."""
        row = conn.execute(POLICY_VERSION, {"org": org_id}).first()
        version = row.version if row is not None else 0
        cached = self._policies.get(org_id)
        if cached is not None and cached.version == version:
            return cached
        document = PolicyIn.model_validate_json(row.document) if row is not None else PolicyIn()
        quarters = conn.execute(select(FRAUD_QUARTERS).where(FRAUD_QUARTERS.c.org_id == org_id)).all()
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
        with self.runtime.engine.connect() as conn:
            loaded = self._load_policy(conn, org_id)
        return PolicyOut(**loaded.document.model_dump(), version=loaded.version, updated_at=loaded.updated_at)

    def _bump_policy(self, conn: Connection, org_id: str, document: PolicyIn | None) -> int:
        """Store a new version of the policy (or only bump it, when fraud figures changed)."""
        stmt = select(POLICIES.c.version).where(POLICIES.c.org_id == org_id)
        version = conn.execute(stmt if self._sqlite else stmt.with_for_update()).scalar()
        now = utcnow()
        if version is None:
            text = (document or PolicyIn()).model_dump_json()
            conn.execute(insert(POLICIES).values(org_id=org_id, version=1, document=text, updated_at=now))
            return 1
        values: dict[str, Any] = {"version": version + 1, "updated_at": now}
        if document is not None:
            values["document"] = document.model_dump_json()
        conn.execute(update(POLICIES).where(POLICIES.c.org_id == org_id).values(values))
        return int(version) + 1

    def _set_policy(self, org_id: str, document: PolicyIn, actor: Mapping[str, Any]) -> Work:
        def work(conn: Connection) -> tuple[int, Events]:
            before = self._load_policy(conn, org_id).document
            version = self._bump_policy(conn, org_id, document)
            event = audit_event(
                "sca.policy.updated",
                "update",
                actor,
                ("sca_policy", org_id),
                changes={"before": before.model_dump(mode="json"), "after": document.model_dump(mode="json")},
                fields={"version": version},
            )
            return version, [event]

        return work

    # Fraud figures (Art. 19, 20) ------------------------------------------------------------

    def _record_quarter(
        self, org_id: str, quarter: str, instrument: rules.Instrument, body: FraudQuarterIn, actor: Mapping[str, Any]
    ) -> Work:
        rules.quarter_index(quarter)
        rate = f"{body.rate_percent.normalize():f}"

        def work(conn: Connection) -> tuple[None, Events]:
            values = {"rate_percent": rate, "resumption_notified": body.resumption_notified, "recorded_at": utcnow()}
            stmt = self._insert(FRAUD_QUARTERS).values(
                org_id=org_id, quarter=quarter, instrument=instrument.value, **values
            )
            conn.execute(
                stmt.on_conflict_do_update(
                    index_elements=[FRAUD_QUARTERS.c.org_id, FRAUD_QUARTERS.c.quarter, FRAUD_QUARTERS.c.instrument],
                    set_=values,
                )
            )
            self._bump_policy(conn, org_id, None)
            suspended = self._load_policy(conn, org_id).suspended
            event = audit_event(
                "sca.fraud_rate.recorded",
                "update",
                actor,
                ("sca_fraud_quarter", f"{quarter}/{instrument.value}"),
                fields={
                    "rate_percent": rate,
                    "resumption_notified": body.resumption_notified,
                    "tra_suspended": [{"instrument": i, "etv_eur": f"{etv:f}"} for i, etv in sorted(suspended)],
                },
            )
            return None, [event]

        return work

    def fraud_quarters(self, org_id: str) -> FraudQuartersOut:
        with self.runtime.engine.connect() as conn:
            loaded = self._load_policy(conn, org_id)
            rows = conn.execute(
                select(FRAUD_QUARTERS)
                .where(FRAUD_QUARTERS.c.org_id == org_id)
                .order_by(FRAUD_QUARTERS.c.quarter, FRAUD_QUARTERS.c.instrument)
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

    def _simulate(self, org_id: str, body: DecideIn) -> DecisionOut:
        with self.runtime.engine.connect() as conn:
            loaded = self._load_policy(conn, org_id)
            key = self._key_of(loaded, body)
            stored = self._counters(conn, org_id, key) if key is not None and body.counters is None else None
        return self._answer(body, loaded, stored, None)

    def _decide_many(self, conn: Connection, items: list[_Pending]) -> list[tuple[DecisionOut, list[PreparedEvent]]]:
        """Decisions of a whole writer group, in arrival order, in a few statements.

        One policy read per organisation, one read of every payer's counters (locked on PostgreSQL),
        then the decisions in order with the counters kept here, so that a payer's second payment
        in the group sees the first; then one multi-row insert of the decisions and one of the
        counter upserts per counted channel. The counters row is written by the same increments in
        SQL, which stay the source of truth across groups and replicas.
        """
        loaded, keys, counters = self._policies_and_counters(conn, items)
        now = utcnow()
        rows: list[dict[str, Any]] = []
        counted: dict[rules.Channel, list[dict[str, Any]]] = {}
        answers: list[tuple[DecisionOut, list[PreparedEvent]]] = []
        for item, key in zip(items, keys, strict=True):
            org_id, body = item.org_id, item.body
            stored = counters.get((org_id, key), rules.NO_COUNTERS) if key is not None else None
            decision_id = new_id()
            out = self._answer(body, loaded[org_id], stored, decision_id)
            payment = body.payment if body.operation is rules.Operation.PAYMENT else None
            amount = Decimal(out.amount_eur) if out.amount_eur is not None else None
            micros = to_micros(amount) if amount is not None else None
            rows.append(
                {
                    "d_id": decision_id,
                    "d_org_id": org_id,
                    "d_decided_at": now,
                    "d_payer_key": key,
                    "d_operation": body.operation.value,
                    "d_role": body.role.value,
                    "d_channel": payment.channel.value if payment is not None else None,
                    "d_instrument": payment.instrument.value if payment is not None else None,
                    "d_amount_micros": micros,
                    "d_outcome": out.outcome.value,
                    "d_exemption": out.recommended.article if out.recommended is not None else None,
                    "d_ruleset": out.ruleset,
                    "d_fraud_micros": None,
                    "d_fraud_reported_at": None,
                }
            )
            channel = payment.channel if payment is not None else None
            if (
                channel in self._counting
                and stored is not None
                and micros is not None
                and out.outcome is rules.Outcome.EXEMPT
            ):
                # Art. 11 and 16 count every payment made without SCA since the last SCA.
                assert channel is not None and key is not None
                counters[(org_id, key)] = counted_payment(stored, channel, micros)
                counted.setdefault(channel, []).append({"org": org_id, "key": key, "micros": micros, "now": now})
            answers.append((out, self._sca_required_events(item, key, out, payment)))
        conn.execute(INSERT_DECISION, rows)
        for channel, params in counted.items():
            conn.execute(self._counting[channel], params)
        return answers

    def _policies_and_counters(
        self, conn: Connection, items: list[_Pending]
    ) -> tuple[dict[str, LoadedPolicy], list[str | None], dict[tuple[str, str | None], rules.Counters]]:
        """Each organisation's policy, each item's counter key, and the payers' stored counters.

        The keys depend on the policy (counters per payer or per instrument), so they are first
        computed from the policy this process last read, and one statement per organisation then
        locks the counters and reads the policy's version. Only when the version moved is the
        policy read again, and the counters with it if the keys changed.
        """
        orgs = {item.org_id for item in items}
        loaded = {org_id: self._policies.get(org_id) or self._load_policy(conn, org_id) for org_id in orgs}
        keys = self._keys_of(loaded, items)
        counters, versions = self._locked_counters(conn, items, keys)
        stale = [org_id for org_id in orgs if versions.get(org_id, 0) != loaded[org_id].version]
        if stale:
            loaded.update({org_id: self._load_policy(conn, org_id) for org_id in stale})
            fresh = self._keys_of(loaded, items)
            if fresh != keys:
                keys = fresh
                counters, _ = self._locked_counters(conn, items, keys)
        return loaded, keys, counters

    def _keys_of(self, loaded: Mapping[str, LoadedPolicy], items: list[_Pending]) -> list[str | None]:
        return [self._key_of(loaded[item.org_id], item.body) if item.body.counters is None else None for item in items]

    def _locked_counters(
        self, conn: Connection, items: list[_Pending], keys: list[str | None]
    ) -> tuple[dict[tuple[str, str | None], rules.Counters], dict[str, int]]:
        """The stored counters of the group's payers (rows locked in key order on PostgreSQL), and
        each organisation's policy version, in one statement per organisation."""
        by_org: dict[str, set[str]] = {item.org_id: set() for item in items}
        for item, key in zip(items, keys, strict=True):
            if key is not None:
                by_org[item.org_id].add(key)
        found: dict[tuple[str, str | None], rules.Counters] = {}
        versions: dict[str, int] = {}
        stmt = GROUP_READ if self._sqlite else GROUP_READ_FOR_UPDATE
        for org_id, org_keys in by_org.items():
            for row in conn.execute(stmt, {"org": org_id, "keys": sorted(org_keys)}):
                if row.policy_version is not None:
                    versions[org_id] = row.policy_version
                else:
                    found[(org_id, row.payer_key)] = counters_of(row)
        return found, versions

    def _sca_required_events(
        self, item: _Pending, key: str | None, out: DecisionOut, payment: PaymentIn | None
    ) -> list[PreparedEvent]:
        if not out.sca_required:
            return []
        event = audit_event(
            "sca.required",
            "create",
            item.actor,
            ("payer", key) if key is not None else None,
            reason=(out.reason or "")[:2000],
            fields={
                **DPIA_SCA,
                "decision_id": out.decision_id,
                "operation": item.body.operation.value,
                "role": item.body.role.value,
                "channel": payment.channel.value if payment is not None else None,
                "instrument": payment.instrument.value if payment is not None else None,
                "amount_eur": out.amount_eur,
                "method": out.method.value,
                "ruleset": out.ruleset,
            },
        )
        return [self.ledger.prepare(event)]

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

    def _counters(self, conn: Connection, org_id: str, key: str) -> rules.Counters:
        row = conn.execute(SELECT_COUNTERS, {"org": org_id, "key": key}).first()
        return rules.NO_COUNTERS if row is None else counters_of(row)

    def counters(self, org_id: str, payer: str, instrument_id: str | None = None) -> CountersOut:
        with self.runtime.engine.connect() as conn:
            loaded = self._load_policy(conn, org_id)
            row = conn.execute(SELECT_COUNTERS, {"org": org_id, "key": self._counter_key(loaded, payer, instrument_id)})
            counters = row.first()
        if counters is None:
            return CountersOut(
                contactless_count=0, contactless_sum_eur="0", remote_count=0, remote_sum_eur="0", last_sca_at=None
            )
        return CountersOut(
            contactless_count=counters.contactless_count,
            contactless_sum_eur=f"{from_micros(counters.contactless_micros):f}",
            remote_count=counters.remote_count,
            remote_sum_eur=f"{from_micros(counters.remote_micros):f}",
            last_sca_at=counters.last_sca_at,
        )

    def _sca_performed(self, org_id: str, payer: str, instrument_id: str | None, actor: Mapping[str, Any]) -> Work:
        def work(conn: Connection) -> tuple[None, Events]:
            key = self._counter_key(self._load_policy(conn, org_id), payer, instrument_id)
            conn.execute(self._reset_stmt, {"org": org_id, "key": key, "now": utcnow()})
            event = audit_event(
                "sca.performed",
                "update",
                actor,
                ("payer", key),
                reason="strong customer authentication applied outside Gardien; counters reset",
                fields=dict(DPIA_SCA),
            )
            return None, [event]

        return work

    def _report_fraud(self, org_id: str, decision_id: str, body: FraudReportIn, actor: Mapping[str, Any]) -> Work:
        def work(conn: Connection) -> tuple[dict[str, Any], Events]:
            stmt = select(DECISIONS.c.org_id, DECISIONS.c.amount_micros).where(DECISIONS.c.id == decision_id)
            row = conn.execute(stmt if self._sqlite else stmt.with_for_update()).first()
            if row is None or row.org_id != org_id:
                raise NotFound(f"decision {decision_id}")
            if row.amount_micros is None:
                raise Conflict("only payment decisions carry an amount that can be reported as fraud")
            micros = to_micros(body.amount_eur) if body.amount_eur is not None else row.amount_micros
            if micros > row.amount_micros:
                raise InvalidInput(
                    "the fraudulent amount exceeds the payment's",
                    [{"field": "amount_eur", "in": "body", "message": f"at most {from_micros(row.amount_micros):f}"}],
                )
            conn.execute(
                update(DECISIONS)
                .where(DECISIONS.c.id == decision_id)
                .values(fraud_micros=micros, fraud_reported_at=utcnow())
            )
            result = {"decision_id": decision_id, "fraud_amount_eur": f"{from_micros(micros):f}"}
            return result, [
                audit_event("sca.fraud.reported", "update", actor, ("sca_decision", decision_id), fields=result)
            ]

        return work

    # Challenges (Art. 4, 5) -----------------------------------------------------------------

    def _create_challenge(self, org_id: str, body: ChallengeIn, actor: Mapping[str, Any]) -> Work:
        payees = body.payee_list()
        code = linking.new_code()
        challenge_id = new_id()
        key = self.runtime.keyring.hmac_key()
        binding = linking.bind(
            key.secret, linking.binding_message(challenge_id, code, body.amount, body.currency, payees)
        )

        def work(conn: Connection) -> tuple[ChallengeCreated, Events]:
            loaded = self._load_policy(conn, org_id)
            if body.decision_id is not None:
                owner = conn.execute(select(DECISIONS.c.org_id).where(DECISIONS.c.id == body.decision_id)).scalar()
                if owner != org_id:
                    raise NotFound(f"decision {body.decision_id}")
            payer_key = self._counter_key(loaded, body.payer, body.instrument_id)
            now = utcnow()
            conn.execute(
                insert(CHALLENGES).values(
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
                    completed_at=None,
                )
            )
            display = DISPLAY[body.locale].format(
                amount=display_amount(body.amount), currency=body.currency, payees=", ".join(payees)
            )
            created = ChallengeCreated(
                id=challenge_id, code=code, display=display, status="pending", expires_at=now + self._timeout()
            )
            return created, [self._challenge_event(challenge_id, payer_key, actor, "created", "create")]

        return work

    def _timeout(self) -> timedelta:
        return timedelta(seconds=self.ruleset.inactivity_timeout_seconds)

    def _expired(self, state: ChallengeState, now: datetime) -> bool:
        """Pending, but idle longer than Art. 4(3)(d) allows."""
        return state.status == "pending" and now - state.last_activity_at > self._timeout()

    def _challenge_event(
        self, challenge_id: str, payer_key: str, actor: Mapping[str, Any], step: str, crud: str
    ) -> dict[str, Any]:
        return audit_event(
            f"sca.challenge.{step}",
            crud,
            actor,
            ("sca_challenge", challenge_id),
            outcome="failure" if step in ("failed", "blocked", "expired") else "success",
            fields={**DPIA_SCA, "payer": payer_key},
        )

    def _verify_challenge(self, org_id: str, challenge_id: str, body: VerifyIn, actor: Mapping[str, Any]) -> Work:
        limit = self.ruleset.max_failed_attempts

        def work(conn: Connection) -> tuple[ChallengeOut, Events]:
            stmt = select(CHALLENGES).where(CHALLENGES.c.id == challenge_id)
            row = conn.execute(stmt if self._sqlite else stmt.with_for_update()).first()
            if row is None or row.org_id != org_id:
                raise NotFound(f"challenge {challenge_id}")
            state = ChallengeState(row.id, row.status, row.failed_attempts, row.last_activity_at)
            now = utcnow()
            step = ""
            if self._expired(state, now):
                state.status, step = "expired", "expired"
            elif state.status == "pending":
                message = linking.binding_message(row.id, body.code, body.amount, body.currency, body.payee_list())
                secret = self.runtime.keyring.hmac_key(row.hmac_kid).secret
                if linking.matches(secret, message, row.binding):
                    state.status, step = "verified", "verified"
                    conn.execute(self._reset_stmt, {"org": org_id, "key": row.payer_key, "now": now})
                else:
                    state.failed_attempts += 1
                    state.last_activity_at = now
                    step = "failed"
                    if state.failed_attempts >= limit:
                        state.status, step = "blocked", "blocked"
            if not step:
                return challenge_out(state, limit, self._timeout()), []
            conn.execute(
                update(CHALLENGES)
                .where(CHALLENGES.c.id == challenge_id)
                .values(
                    status=state.status,
                    failed_attempts=state.failed_attempts,
                    last_activity_at=state.last_activity_at,
                    completed_at=now if state.status != "pending" else None,
                )
            )
            out = challenge_out(state, limit, self._timeout(), failed_now=step == "failed")
            return out, [self._challenge_event(row.id, row.payer_key, actor, step, "update")]

        return work

    def challenge(self, org_id: str, challenge_id: str) -> ChallengeOut:
        with self.runtime.engine.connect() as conn:
            row = conn.execute(select(CHALLENGES).where(CHALLENGES.c.id == challenge_id)).first()
        if row is None or row.org_id != org_id:
            raise NotFound(f"challenge {challenge_id}")
        state = ChallengeState(row.id, row.status, row.failed_attempts, row.last_activity_at)
        if self._expired(state, utcnow()):
            state.status = "expired"
        return challenge_out(state, self.ruleset.max_failed_attempts, self._timeout())

    # Art. 21 report -------------------------------------------------------------------------

    def art21_report(self, org_id: str, quarter: str) -> Art21Report:
        """Quarterly figures per Art. 21: value, fraud and use of each exemption, remote and not."""
        start, end = quarter_bounds(quarter)
        remote = case((DECISIONS.c.channel == rules.Channel.REMOTE.value, True), else_=False).label("remote")
        stmt = (
            select(
                remote,
                DECISIONS.c.instrument,
                DECISIONS.c.outcome,
                DECISIONS.c.exemption,
                func.count().label("n"),
                func.coalesce(func.sum(DECISIONS.c.amount_micros), 0).label("value"),
                func.coalesce(func.sum(DECISIONS.c.fraud_micros), 0).label("fraud"),
            )
            .where(
                DECISIONS.c.org_id == org_id,
                DECISIONS.c.decided_at >= start,
                DECISIONS.c.decided_at < end,
                DECISIONS.c.operation == rules.Operation.PAYMENT.value,
            )
            .group_by(remote, DECISIONS.c.instrument, DECISIONS.c.outcome, DECISIONS.c.exemption)
        )
        with self.runtime.engine.connect() as conn:
            rows = conn.execute(stmt).all()
        return build_report(quarter, start, end, self.ruleset.id, rows)

    # Running the work: in-process (sync) and for the API (async) -----------------------------

    def _sealing(self, work: Work) -> LedgerWork:
        def run(conn: Connection) -> tuple[Any, list[PreparedEvent]]:
            result, events = work(conn)
            return result, [self.ledger.prepare(event) for event in events]

        return run

    def _run_sync(self, org_id: str, work: Work) -> Any:
        return self.ledger.transact(org_id, self._sealing(work))[0]

    async def _run(self, org_id: str, work: Work) -> Any:
        return (await self.ledger.transact_async(org_id, self._sealing(work)))[0]

    def decide(self, org_id: str, body: DecideIn, actor: Mapping[str, Any]) -> DecisionOut:
        if not body.record:
            return self._simulate(org_id, body)
        work = self._decision_work(org_id, body, actor)
        outcome: tuple[DecisionOut, list[Sealed]] = self.ledger.transact(org_id, work)
        return outcome[0]

    async def decide_async(self, org_id: str, body: DecideIn, actor: Mapping[str, Any]) -> DecisionOut:
        if not body.record:
            return await run_in_threadpool(self._simulate, org_id, body)
        work = self._decision_work(org_id, body, actor)
        outcome: tuple[DecisionOut, list[Sealed]] = await self.ledger.transact_async(org_id, work)
        return outcome[0]

    def _decision_work(self, org_id: str, body: DecideIn, actor: Mapping[str, Any]) -> BatchWork:
        """A recorded decision: ledger work that the writer batches with its neighbours."""
        return BatchWork(self._decide_many, _Pending(org_id, body, actor))

    def set_policy(self, org_id: str, body: PolicyIn, actor: Mapping[str, Any]) -> PolicyOut:
        self._run_sync(org_id, self._set_policy(org_id, body, actor))
        return self.get_policy(org_id)

    async def set_policy_async(self, org_id: str, body: PolicyIn, actor: Mapping[str, Any]) -> PolicyOut:
        await self._run(org_id, self._set_policy(org_id, body, actor))
        return await run_in_threadpool(self.get_policy, org_id)

    def record_quarter(
        self, org_id: str, quarter: str, instrument: rules.Instrument, body: FraudQuarterIn, actor: Mapping[str, Any]
    ) -> FraudQuartersOut:
        self._run_sync(org_id, self._record_quarter(org_id, quarter, instrument, body, actor))
        return self.fraud_quarters(org_id)

    async def record_quarter_async(
        self, org_id: str, quarter: str, instrument: rules.Instrument, body: FraudQuarterIn, actor: Mapping[str, Any]
    ) -> FraudQuartersOut:
        await self._run(org_id, self._record_quarter(org_id, quarter, instrument, body, actor))
        return await run_in_threadpool(self.fraud_quarters, org_id)

    def sca_performed(
        self, org_id: str, payer: str, instrument_id: str | None, actor: Mapping[str, Any]
    ) -> CountersOut:
        self._run_sync(org_id, self._sca_performed(org_id, payer, instrument_id, actor))
        return self.counters(org_id, payer, instrument_id)

    async def sca_performed_async(
        self, org_id: str, payer: str, instrument_id: str | None, actor: Mapping[str, Any]
    ) -> CountersOut:
        await self._run(org_id, self._sca_performed(org_id, payer, instrument_id, actor))
        return await run_in_threadpool(self.counters, org_id, payer, instrument_id)

    def report_fraud(
        self, org_id: str, decision_id: str, body: FraudReportIn, actor: Mapping[str, Any]
    ) -> dict[str, Any]:
        result: dict[str, Any] = self._run_sync(org_id, self._report_fraud(org_id, decision_id, body, actor))
        return result

    async def report_fraud_async(
        self, org_id: str, decision_id: str, body: FraudReportIn, actor: Mapping[str, Any]
    ) -> dict[str, Any]:
        result: dict[str, Any] = await self._run(org_id, self._report_fraud(org_id, decision_id, body, actor))
        return result

    def create_challenge(self, org_id: str, body: ChallengeIn, actor: Mapping[str, Any]) -> ChallengeCreated:
        created: ChallengeCreated = self._run_sync(org_id, self._create_challenge(org_id, body, actor))
        return created

    async def create_challenge_async(
        self, org_id: str, body: ChallengeIn, actor: Mapping[str, Any]
    ) -> ChallengeCreated:
        created: ChallengeCreated = await self._run(org_id, self._create_challenge(org_id, body, actor))
        return created

    def verify_challenge(
        self, org_id: str, challenge_id: str, body: VerifyIn, actor: Mapping[str, Any]
    ) -> ChallengeOut:
        out: ChallengeOut = self._run_sync(org_id, self._verify_challenge(org_id, challenge_id, body, actor))
        return out

    async def verify_challenge_async(
        self, org_id: str, challenge_id: str, body: VerifyIn, actor: Mapping[str, Any]
    ) -> ChallengeOut:
        out: ChallengeOut = await self._run(org_id, self._verify_challenge(org_id, challenge_id, body, actor))
        return out


@dataclass
class ChallengeState:
    id: str
    status: str
    failed_attempts: int
    last_activity_at: datetime


POLICY_VERSION = select(POLICIES.c.version, POLICIES.c.document, POLICIES.c.updated_at).where(
    POLICIES.c.org_id == bindparam("org")
)
SELECT_COUNTERS = select(COUNTERS).where(
    COUNTERS.c.org_id == bindparam("org"), COUNTERS.c.payer_key == bindparam("key")
)


def _group_read(locked: bool) -> Any:
    """A group's counters (locked when asked) and, in an extra row, the organisation's policy version."""
    counters = select(
        COUNTERS.c.payer_key,
        COUNTERS.c.contactless_count,
        COUNTERS.c.contactless_micros,
        COUNTERS.c.remote_count,
        COUNTERS.c.remote_micros,
        cast(None, Integer).label("policy_version"),
    ).where(COUNTERS.c.org_id == bindparam("org"), COUNTERS.c.payer_key.in_(bindparam("keys", expanding=True)))
    counters = counters.order_by(COUNTERS.c.payer_key)
    if locked:
        counters = counters.with_for_update()
    held = counters.cte("held")
    nothing = cast(None, Integer)
    policy = select(
        cast(None, String), nothing, nothing, nothing, nothing, POLICIES.c.version.label("policy_version")
    ).where(POLICIES.c.org_id == bindparam("org"))
    return select(held).union_all(policy)


GROUP_READ = _group_read(locked=False)
GROUP_READ_FOR_UPDATE = _group_read(locked=True)
INSERT_DECISION = insert(DECISIONS).values({column.name: bindparam(f"d_{column.name}") for column in DECISIONS.c})


@dataclass(frozen=True)
class _Pending:
    """A decision to record, waiting for the writer's next group."""

    org_id: str
    body: DecideIn
    actor: Mapping[str, Any]


def counted_payment(counters: rules.Counters, channel: rules.Channel, micros: int) -> rules.Counters:
    """The counters after one more exempted payment, as the channel's upsert leaves them in SQL."""
    amount = from_micros(micros)
    if channel is rules.Channel.REMOTE:
        return replace(
            counters, remote_count=counters.remote_count + 1, remote_sum_eur=counters.remote_sum_eur + amount
        )
    return replace(
        counters,
        contactless_count=counters.contactless_count + 1,
        contactless_sum_eur=counters.contactless_sum_eur + amount,
    )


def counters_of(row: Row[Any]) -> rules.Counters:
    return rules.Counters(
        row.contactless_count,
        from_micros(row.contactless_micros),
        row.remote_count,
        from_micros(row.remote_micros),
    )


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


def challenge_out(row: ChallengeState, limit: int, timeout: timedelta, *, failed_now: bool = False) -> ChallengeOut:
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
