"""Running a retention policy: plan the tables, count (dry run) or act in keyset batches.

A run fixes its cutoff (now − period) when it starts and keeps it when it resumes. Each table is
walked in primary-key order, `batch_size` rows at a time; each batch is one transaction on the host
database (one SELECT, then one DELETE or one UPDATE), so locks are held for one batch only.

Resuming after a crash is exact. Before a batch commits on the host, the run records in Gardien's
database the batch's last key and a digest of what the rows will hold afterwards (for a delete, that
they are gone), together with the previous batch marked done: one write to Gardien per batch. A run
found `running` at start (its process died) resumes from the last key done; if a batch was pending,
it looks at the host: the rows as the digest says → that batch committed, skip it; otherwise do it
again.

Anonymisation changes rows that stay, so a row must not be anonymised twice: each table's window
is `through <= reference < cutoff`, where `through` is the cutoff of the last completed run; rows
kept back by a subject's legal hold are remembered (their primary keys) and done once it ends.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import orjson
from dateutil.relativedelta import relativedelta
from sqlalchemy import Engine, Table, Text, cast, func, select, text, update
from sqlalchemy.engine import Connection
from sqlalchemy.exc import SQLAlchemyError

from gardien.audit.service import Ledger, capability_event
from gardien.core.clock import utcnow
from gardien.core.db import is_sqlite
from gardien.core.errors import Conflict, InvalidInput, Problem
from gardien.core.ids import new_id
from gardien.core.keyring import HmacKey
from gardien.core.process import COLLECTOR_PAUSED
from gardien.core.runtime import Runtime
from gardien.datamap.engine import Engine as MapEngine
from gardien.datamap.engine import UnknownIdentity
from gardien.datamap.hosts import HostStoreError, HostStores
from gardien.datamap.mapfile import TableSpec
from gardien.datamap.service import DatamapService
from gardien.privacy.operators import KeySource, OperatorContext, OperatorSpec
from gardien.privacy.records import RecordPolicy
from gardien.retention import hostsql
from gardien.retention.models import HOLDS, POLICIES, RUNS
from gardien.retention.schemas import CategoryTarget, PolicyIn, StoreTarget, TableTarget, parse_period

MODULE = "retention"
SAMPLES = 5
Key = tuple[Any, ...]
Progress = Callable[[str, str, int, int], None]  # policy name, table, rows done, rows planned


class RunFailed(Exception):
    """A table could not be finished; the run stays resumable."""


@dataclass
class TableWork:
    """One table of one policy run: how its rows are chosen and what is done to them."""

    qualified: str
    store: str
    table: Table
    engine: Engine
    pk: tuple[str, ...]
    reference: str
    action: str
    rules: dict[str, OperatorSpec] = field(default_factory=dict)
    subject: str | None = None
    hold_since: tuple[str, datetime] | None = None  # a data map hold: (column, rows held if later than this)
    held_keys: list[Key] = field(default_factory=list)
    deferred: list[Key] = field(default_factory=list)
    through: datetime | None = None
    suspended: str | None = None

    @property
    def columns(self) -> list[str]:
        return list(dict.fromkeys(path.split(".")[0] for path in self.rules))

    def window(self, cutoff: datetime) -> Any:
        ref = self.table.c[self.reference]
        parts = [ref < hostsql.bound(ref, cutoff)]
        if self.through is not None:
            parts.append(ref >= hostsql.bound(ref, self.through))
        window = hostsql.all_of(*parts)
        if not self.deferred:
            return window
        return hostsql.any_of(window, hostsql.among(self.table, self.pk, self.deferred))

    def hold_free(self, cutoff: datetime) -> Any:
        """Rows that no hold keeps: not a held subject's, and past a data map hold (deletes only)."""
        parts = [hostsql.not_among(self.table, self.pk, self.held_keys)]
        if self.hold_since is not None and self.action == "delete":
            column, limit = self.hold_since
            since = self.table.c[column]
            parts.append(since.is_not(None))
            parts.append(since < hostsql.bound(since, limit))
        return hostsql.all_of(*parts)

    def chosen(self, cutoff: datetime) -> Any:
        return hostsql.all_of(self.window(cutoff), self.hold_free(cutoff))


@dataclass
class RunContext:
    org_id: str
    run_id: str
    policy_id: str
    name: str
    cutoff: datetime
    dry_run: bool
    checkpoint: dict[str, dict[str, Any]]
    counts: dict[str, dict[str, int]]
    samples: dict[str, list[list[Any]]]
    errors: list[str]
    batches: int = 0


def _key_json(key: Key) -> list[Any]:
    return [v.isoformat() if hasattr(v, "isoformat") else v for v in key]


def _digest(rows: Sequence[Mapping[str, Any]], names: Sequence[str]) -> str:
    h = hashlib.sha256()
    for row in rows:
        h.update(orjson.dumps([row[n] for n in names], default=str, option=orjson.OPT_SORT_KEYS))
    return h.hexdigest()


def _parsed(row: dict[str, Any], columns: set[str]) -> dict[str, Any]:
    if not columns:
        return row
    return {k: _json_value(v) if k in columns else v for k, v in row.items()}


class CachedKeys:
    """The keyring's keys, looked up once per run instead of once per value."""

    def __init__(self, keys: KeySource) -> None:
        self.keys = keys
        self._hmac: dict[str | None, HmacKey] = {}

    def hmac_key(self, kid: str | None = None) -> HmacKey:
        found = self._hmac.get(kid)
        if found is None:
            found = self._hmac[kid] = self.keys.hmac_key(kid)
        return found

    def hmac_keys(self) -> dict[str, HmacKey]:
        return self.keys.hmac_keys()

    def encryption_key(self, kid: str | None = None) -> tuple[str, bytes]:
        return self.keys.encryption_key(kid)


def _json_value(value: Any) -> Any:
    """JSON read back from a host as text compares equal to what was written as an object."""
    if isinstance(value, str) and value[:1] in "{[":
        try:
            return orjson.loads(value)
        except orjson.JSONDecodeError:
            return value
    return value


class Runner:
    """Plans and runs policies for the CLI, the worker and the API."""

    def __init__(self, runtime: Runtime, ledger: Ledger, datamaps: DatamapService) -> None:
        self.runtime = runtime
        self.ledger = ledger
        self.datamaps = datamaps
        self.clock = utcnow
        self.throttle = 0.0

    # --- planning ---------------------------------------------------------------------------------

    def active_holds(self, org_id: str) -> list[Mapping[str, Any]]:
        with self.runtime.engine.connect() as conn:
            return [
                dict(r._mapping)
                for r in conn.execute(select(HOLDS).where(HOLDS.c.org_id == org_id, HOLDS.c.released_at.is_(None)))
            ]

    def _map_tables(self, org_id: str, target: TableTarget | CategoryTarget) -> list[tuple[str, HostStores, str]]:
        """(map key, stores, qualified table) of every table the target names."""
        if isinstance(target, TableTarget):
            _, stores = self.datamaps.hosts(org_id, target.map)
            if target.table not in stores.datamap.tables:
                raise InvalidInput(
                    f"target.table: the data map {target.map!r} has no table {target.table!r}",
                    [{"field": "target.table", "message": "no such table in the map", "type": "retention"}],
                )
            return [(target.map, stores, target.table)]
        keys = [target.map] if target.map else [m.key for m in self.datamaps.list_maps(org_id)]
        found = []
        for key in keys:
            _, stores = self.datamaps.hosts(org_id, key)
            for qualified, spec in sorted(stores.datamap.tables.items()):
                if any(c == target.category or c.startswith(target.category + ".") for c in spec.categories):
                    found.append((key, stores, qualified))
        return found

    def plan(self, org_id: str, policy: PolicyIn, state: Mapping[str, Any]) -> list[TableWork]:
        target = policy.target
        if isinstance(target, StoreTarget):
            return []
        holds = self.active_holds(org_id)
        org_hold = next((h for h in holds if h["scope"] == "organisation"), None)
        works = []
        for map_key, stores, qualified in self._map_tables(org_id, target):
            spec = stores.datamap.tables[qualified]
            table = stores.table(qualified)
            pk = stores.primary_key(qualified)
            work = TableWork(
                qualified=qualified,
                store=spec.dataset,
                table=table,
                engine=stores.engine(spec.dataset),
                pk=pk,
                reference=policy.reference_column(),
                action=policy.action,
            )
            works.append(work)
            if work.reference not in table.c:
                work.suspended = f"no column {work.reference!r} to count the period from"
                continue
            if policy.action == "anonymise":
                work.rules = self._rules(policy, spec)
                if not work.rules:
                    work.suspended = "no anonymisation rule: give operators, or declare `anonymize` in the map"
                    continue
                missing = [c for c in work.columns if c not in table.c]
                if missing:
                    work.suspended = f"no column {missing[0]!r}"
                    continue
                if work.reference in work.columns:
                    work.suspended = "the reference column cannot be anonymised by its own policy"
                    continue
                identity = next((f.name for f in spec.fields.values() if f.identity), None)
                work.subject = identity or pk[0]
                table_state = state.get(qualified, {})
                if table_state.get("through"):
                    work.through = datetime.fromisoformat(table_state["through"])
                work.deferred = [tuple(k) for k in table_state.get("deferred", [])]
            if spec.hold is not None:
                if spec.hold.since is None or spec.hold.years is None:
                    if policy.action == "delete":
                        work.suspended = "held by the data map (legal hold on the whole table)"
                        continue
                else:
                    work.hold_since = (spec.hold.since, self.clock() - relativedelta(years=spec.hold.years))
            hold = org_hold or next((h for h in holds if h["scope"] == "table" and h["target"] == qualified), None)
            if hold is not None:
                work.suspended = f"legal hold {hold['id']} ({hold['owner']}): {hold['reason'][:200]}"
                continue
            work.held_keys = self._subject_keys(stores, map_key, qualified, holds)
        return works

    def anonymisable_tables(self, org_id: str, map_key: str | None) -> list[tuple[str, str, str]]:
        """(map, table, dated_by) of every mapped table with `anonymize` rules and a `dated_by` column."""
        keys = [map_key] if map_key else [m.key for m in self.datamaps.list_maps(org_id)]
        found = []
        for key in keys:
            _, stores = self.datamaps.hosts(org_id, key)
            for qualified, spec in sorted(stores.datamap.tables.items()):
                if spec.dated_by and spec.anonymize_rules():
                    found.append((key, qualified, spec.dated_by))
        return found

    @staticmethod
    def _rules(policy: PolicyIn, spec: TableSpec) -> dict[str, OperatorSpec]:
        if policy.operators:
            return dict(policy.operators)
        return spec.anonymize_rules()

    @staticmethod
    def _subject_keys(
        stores: HostStores, map_key: str, qualified: str, holds: Sequence[Mapping[str, Any]]
    ) -> list[Key]:
        keys: dict[Key, None] = {}
        for hold in holds:
            if hold["scope"] != "subject" or hold["target"] != map_key:
                continue
            try:
                found = MapEngine(stores).walk({hold["identity_type"]: hold["identity_value"]})
            except UnknownIdentity:
                continue
            keys.update(dict.fromkeys(found.keys.get(qualified, {})))
        return list(keys)

    # --- counting ---------------------------------------------------------------------------------

    def count(self, work: TableWork, cutoff: datetime) -> tuple[int, int, list[list[Any]]]:
        """Rows the run acts on, rows a hold keeps, and the first few keys acted on."""
        pk_cols = [work.table.c[n] for n in work.pk]
        try:
            with work.engine.connect() as conn:
                matched = conn.execute(
                    select(func.count()).select_from(work.table).where(work.chosen(cutoff))
                ).scalar_one()
                held = 0
                if work.held_keys or (work.hold_since and work.action == "delete"):
                    held = conn.execute(
                        select(func.count()).select_from(work.table).where(work.window(cutoff), ~work.hold_free(cutoff))
                    ).scalar_one()
                samples = [
                    _key_json(tuple(r))
                    for r in conn.execute(select(*pk_cols).where(work.chosen(cutoff)).order_by(*pk_cols).limit(SAMPLES))
                ]
        except SQLAlchemyError as exc:
            raise HostStoreError(work.store, str(exc).splitlines()[0][:300]) from exc
        return int(matched), int(held), samples

    # --- acting -----------------------------------------------------------------------------------

    def act(self, ctx: RunContext, work: TableWork, batch_size: int, progress: Progress | None, planned: int) -> None:
        """Every batch of one table, from the checkpoint on."""
        point = ctx.checkpoint.setdefault(work.qualified, {"after": None, "pending": None, "done": False})
        if point.get("done"):
            return
        counts = ctx.counts.setdefault(work.qualified, {})
        verb = "deleted" if work.action == "delete" else "anonymised"
        counts.setdefault(verb, 0)
        if point.get("pending"):
            self._settle_pending(ctx, work, point, counts, verb)
        # Only date shifting needs the row's subject; the others are spared a lookup per row.
        shifts = any(spec.operator == "date_shift" for spec in work.rules.values())
        policy = RecordPolicy(work.rules, subject_path=work.subject if shifts else None) if work.rules else None
        context = OperatorContext(keys=CachedKeys(self.runtime.keyring), scope=ctx.org_id)
        # JSON held as text is parsed once per row, whatever the number of paths ruled inside it.
        nested = {path.split(".")[0] for path in work.rules if "." in path}
        pk_cols = [work.table.c[n] for n in work.pk]
        columns = work.columns
        wanted = list(dict.fromkeys([*work.pk, *columns, *([work.subject] if work.subject else [])]))
        while True:
            after = tuple(point["after"]) if point["after"] is not None else None
            with COLLECTOR_PAUSED, work.engine.begin() as conn:
                condition = hostsql.all_of(work.chosen(ctx.cutoff), hostsql.after_key(work.table, work.pk, after))
                # JSON columns come as text and are parsed once, by orjson, not by the driver or SQLAlchemy.
                selected = [cast(work.table.c[n], Text).label(n) if n in nested else work.table.c[n] for n in wanted]
                rows = [
                    dict(zip(wanted, r, strict=True))
                    for r in conn.execute(select(*selected).where(condition).order_by(*pk_cols).limit(batch_size))
                ]
                if not rows:
                    break
                keys = [tuple(r[n] for n in work.pk) for r in rows]
                if policy is not None:
                    new_rows = [policy.apply(_parsed(r, nested), context) for r in rows]
                    digest = _digest(new_rows, columns)
                    self._pending(ctx, point, keys[0], keys[-1], len(rows), digest)
                    changed = [n for n, o in zip(new_rows, rows, strict=True) if any(n[c] != o[c] for c in columns)]
                    hostsql.update_rows(conn, work.table, work.pk, columns, changed)
                    done = len(rows)
                else:
                    self._pending(ctx, point, keys[0], keys[-1], len(rows), "")
                    done = hostsql.delete_keys(conn, work.table, work.pk, keys)
            # Recorded with the next batch's intent (or at the end): until then, a crash finds this
            # batch pending and settles it by looking at the host, which says it committed.
            point["after"] = _key_json(keys[-1])
            point["pending"] = None
            counts[verb] += done
            ctx.batches += 1
            if progress is not None:
                progress(ctx.name, work.qualified, counts[verb], planned)
            if self.throttle:
                time.sleep(self.throttle)
        point["done"] = True
        self._save_checkpoint(ctx)

    def _pending(self, ctx: RunContext, point: dict[str, Any], first: Key, last: Key, rows: int, digest: str) -> None:
        point["pending"] = {"first": _key_json(first), "last": _key_json(last), "rows": rows, "digest": digest}
        self._save_checkpoint(ctx)

    def _settle_pending(
        self, ctx: RunContext, work: TableWork, point: dict[str, Any], counts: dict[str, int], verb: str
    ) -> None:
        """Did the batch in flight when the run stopped commit on the host? Look at its rows."""
        pending = point["pending"]
        after = tuple(point["after"]) if point["after"] is not None else None
        last = tuple(pending["last"])
        span = hostsql.all_of(
            hostsql.after_key(work.table, work.pk, after), hostsql.upto_key(work.table, work.pk, last)
        )
        pk_cols = [work.table.c[n] for n in work.pk]
        with work.engine.connect() as conn:
            if work.action == "delete":
                left = conn.execute(
                    select(func.count()).select_from(work.table).where(span, work.chosen(ctx.cutoff))
                ).scalar_one()
                committed = left == 0
            else:
                rows = [
                    {c: _json_value(r._mapping[c]) for c in work.columns}
                    for r in conn.execute(
                        select(*(work.table.c[c] for c in work.columns))
                        .where(span, work.window(ctx.cutoff), work.hold_free(ctx.cutoff))
                        .order_by(*pk_cols)
                    )
                ]
                committed = len(rows) == pending["rows"] and _digest(rows, work.columns) == pending["digest"]
        if committed:
            point["after"] = pending["last"]
            counts[verb] += int(pending["rows"])
            ctx.batches += 1
        point["pending"] = None
        self._save_checkpoint(ctx)

    def _save_checkpoint(self, ctx: RunContext) -> None:
        with self.runtime.engine.begin() as conn:
            conn.execute(
                update(RUNS)
                .where(RUNS.c.id == ctx.run_id)
                .values(
                    checkpoint=orjson.dumps(ctx.checkpoint).decode(),
                    counts=orjson.dumps(ctx.counts).decode(),
                    batches=ctx.batches,
                )
            )

    # --- one policy ---------------------------------------------------------------------------------

    def run_policy(
        self,
        org_id: str,
        policy_row: Mapping[str, Any],
        *,
        dry_run: bool,
        trigger: str,
        actor: Mapping[str, Any],
        progress: Progress | None = None,
        locked: bool = False,
    ) -> str:
        """Run (or count) one policy; resumes the policy's interrupted run if there is one. The run's id.

        `locked`: the caller already holds the policy's lock (the worker's scheduler does).
        """
        if locked:
            return self._run_locked(org_id, policy_row, dry_run, trigger, actor, progress)
        with self.policy_lock(policy_row["id"]) as got:
            if not got:
                raise Conflict(f"policy {policy_row['id']} is already running elsewhere")
            return self._run_locked(org_id, policy_row, dry_run, trigger, actor, progress)

    def _run_locked(
        self,
        org_id: str,
        policy_row: Mapping[str, Any],
        dry_run: bool,
        trigger: str,
        actor: Mapping[str, Any],
        progress: Progress | None,
    ) -> str:
        policy = PolicyIn.model_validate_json(policy_row["document"])
        ctx = None if dry_run else self.interrupted(org_id, policy_row)
        resumed = ctx is not None
        if ctx is None:
            ctx = self.start(org_id, policy_row, policy, dry_run, trigger, actor)
        if isinstance(policy.target, StoreTarget):
            from gardien.retention.archive import run_store_policy

            return run_store_policy(self, ctx, policy_row, policy, actor, progress)
        state: dict[str, Any] = orjson.loads(policy_row["state"] or "{}")
        try:
            works = self.plan(org_id, policy, state)
        except Problem as exc:  # an unknown map or table, a host that cannot be reached
            ctx.errors.append(str(exc.detail)[:500])
            return self.finish(ctx, policy_row, policy, [], actor, "failed")
        status = "completed"
        if works and all(w.suspended for w in works) and any("legal hold" in (w.suspended or "") for w in works):
            status = "suspended"
        for work in works:
            if work.suspended:
                ctx.counts.setdefault(work.qualified, {"matched": 0})
                ctx.errors.append(f"{work.qualified}: skipped, {work.suspended}")
                continue
            try:
                matched, held, samples = self.count(work, ctx.cutoff)
                entry = ctx.counts.setdefault(work.qualified, {})
                if not resumed or "matched" not in entry:
                    entry.update(matched=matched, held=held)
                    ctx.samples[work.qualified] = samples
                if not ctx.dry_run:
                    self.act(ctx, work, policy.batch_size, progress, entry["matched"])
            except Exception as exc:  # recorded as a failed run, resumable; a crash leaves it running
                detail = exc.detail if isinstance(exc, Problem) else f"{type(exc).__name__}: {exc}"
                ctx.errors.append(f"{work.qualified}: {str(detail).splitlines()[0][:300] if detail else ''}")
                status = "failed"
        return self.finish(ctx, policy_row, policy, works, actor, status)

    def store_hold(self, org_id: str, store: str) -> str | None:
        """Why a hold suspends policies on one of Gardien's stores, or None."""
        for hold in self.active_holds(org_id):
            if hold["scope"] == "organisation" or (hold["scope"] == "table" and hold["target"] == store):
                return f"legal hold {hold['id']} ({hold['owner']}): {hold['reason'][:200]}"
        return None

    def has_interrupted(self, org_id: str, policy_id: str) -> bool:
        with self.runtime.engine.connect() as conn:
            found = conn.execute(
                select(RUNS.c.id)
                .where(
                    RUNS.c.org_id == org_id,
                    RUNS.c.policy_id == policy_id,
                    RUNS.c.status == "running",
                    RUNS.c.dry_run.is_(False),
                )
                .limit(1)
            ).first()
        return found is not None

    @contextmanager
    def policy_lock(self, policy_id: str) -> Iterator[bool]:
        """Once across replicas: a PostgreSQL session advisory lock per policy. SQLite: one process."""
        if is_sqlite(self.runtime.engine):
            yield True
            return
        key = int.from_bytes(
            hashlib.sha256(b"gardien.retention\0" + policy_id.encode()).digest()[:8], "big", signed=True
        )
        with self.runtime.engine.connect() as conn:
            locked = bool(conn.execute(text("SELECT pg_try_advisory_lock(:k)"), {"k": key}).scalar())
            conn.commit()
            try:
                yield locked
            finally:
                if locked:
                    conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": key})
                    conn.commit()

    def interrupted(self, org_id: str, policy_row: Mapping[str, Any]) -> RunContext | None:
        with self.runtime.engine.connect() as conn:
            row = conn.execute(
                select(RUNS)
                .where(
                    RUNS.c.org_id == org_id,
                    RUNS.c.policy_id == policy_row["id"],
                    RUNS.c.status == "running",
                    RUNS.c.dry_run.is_(False),
                )
                .order_by(RUNS.c.started_at.desc())
                .limit(1)
            ).first()
        if row is None:
            return None
        return RunContext(
            org_id=org_id,
            run_id=row.id,
            policy_id=row.policy_id,
            name=policy_row["name"],
            cutoff=row.cutoff,
            dry_run=False,
            checkpoint=orjson.loads(row.checkpoint),
            counts=orjson.loads(row.counts),
            samples=orjson.loads(row.samples),
            errors=orjson.loads(row.errors),
            batches=row.batches,
        )

    def start(
        self,
        org_id: str,
        policy_row: Mapping[str, Any],
        policy: PolicyIn,
        dry_run: bool,
        trigger: str,
        actor: Mapping[str, Any],
    ) -> RunContext:
        now = self.clock()
        cutoff = now - parse_period(policy.period)
        ctx = RunContext(org_id, new_id(), policy_row["id"], policy_row["name"], cutoff, dry_run, {}, {}, {}, [])
        row = {
            "id": ctx.run_id,
            "org_id": org_id,
            "policy_id": policy_row["id"],
            "policy_version": policy_row["version"],
            "dry_run": dry_run,
            "trigger": trigger,
            "status": "running",
            "cutoff": cutoff,
            "started_at": now,
            "finished_at": None,
            "counts": "{}",
            "samples": "{}",
            "checkpoint": "{}",
            "errors": "[]",
            "batches": 0,
        }

        def work(conn: Connection) -> tuple[None, list[Any]]:
            conn.execute(RUNS.insert().values(row))
            if dry_run:
                return None, []
            event = capability_event(
                MODULE,
                "retention.run.started",
                "execute",
                actor,
                ("retention_run", ctx.run_id),
                fields={
                    "policy_id": policy_row["id"],
                    "policy_version": policy_row["version"],
                    "policy": policy_row["name"],
                    "cutoff": cutoff.isoformat(),
                    "trigger": trigger,
                },
            )
            return None, [self.ledger.prepare(event)]

        self.ledger.transact(org_id, work)
        return ctx

    def finish(
        self,
        ctx: RunContext,
        policy_row: Mapping[str, Any],
        policy: PolicyIn,
        works: Sequence[TableWork],
        actor: Mapping[str, Any],
        status: str,
    ) -> str:
        now = self.clock()
        new_state: dict[str, Any] | None = None
        if not ctx.dry_run and status == "completed" and policy.action == "anonymise":
            new_state = orjson.loads(policy_row["state"] or "{}")
            for work in works:
                if not work.suspended:
                    new_state[work.qualified] = {
                        "through": ctx.cutoff.isoformat(),
                        "deferred": [_key_json(k) for k in work.held_keys],
                    }

        def apply(conn: Connection) -> tuple[None, list[Any]]:
            conn.execute(
                update(RUNS)
                .where(RUNS.c.id == ctx.run_id)
                .values(
                    status=status,
                    finished_at=now,
                    counts=orjson.dumps(ctx.counts).decode(),
                    samples=orjson.dumps(ctx.samples).decode(),
                    checkpoint=orjson.dumps(ctx.checkpoint).decode(),
                    errors=orjson.dumps(ctx.errors[:200]).decode(),
                    batches=ctx.batches,
                )
            )
            if new_state is not None:
                conn.execute(
                    update(POLICIES)
                    .where(POLICIES.c.id == ctx.policy_id)
                    .values(state=orjson.dumps(new_state).decode())
                )
            event = capability_event(
                MODULE,
                "retention.dry_run" if ctx.dry_run else "retention.run",
                "read" if ctx.dry_run else ("delete" if policy.action == "delete" else "update"),
                actor,
                ("retention_run", ctx.run_id),
                outcome="failure" if status == "failed" else "success",
                legal_basis=policy.legal_basis,
                fields={
                    "policy_id": ctx.policy_id,
                    "policy": ctx.name,
                    "status": status,
                    "cutoff": ctx.cutoff.isoformat(),
                    "counts": ctx.counts,
                    "errors": ctx.errors[:20],
                    "batches": ctx.batches,
                },
                **({"reason": "; ".join(ctx.errors)[:1000]} if status == "failed" else {}),
            )
            return None, [self.ledger.prepare(event)]

        self.ledger.transact(ctx.org_id, apply)
        return ctx.run_id
