"""The data map service: registered maps per organisation, and the engine run for one person.

The request workflow (`gardien.rights`) calls `access`, `can_erase`, `erase`, `rectify` and
`recipients` with identities it has verified. Every change to host data, and every export, is
recorded in the ledger (module `datamap`) with counts, never the erased values.
"""

from __future__ import annotations

import hashlib
import re
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import IO, Any

import orjson
from dateutil.relativedelta import relativedelta
from sqlalchemy import func, insert, select, update
from sqlalchemy.engine import Connection

from gardien.audit.sealing import PreparedEvent
from gardien.audit.service import SYSTEM_ACTOR, Ledger, capability_event
from gardien.core.clock import utcnow
from gardien.core.errors import InvalidInput, NotFound
from gardien.core.ids import new_id
from gardien.core.keyring import HmacKey
from gardien.core.runtime import Runtime
from gardien.datamap.engine import Engine, Found, UnknownIdentity, is_held
from gardien.datamap.hosts import HostStoreError, HostStores, validate_live
from gardien.datamap.mapfile import DataMap, MapInvalid, load_map
from gardien.datamap.models import ERASURES, MAPS
from gardien.datamap.package import ProvidedOnly, RowSpool, write_package
from gardien.datamap.rectification import check_changes
from gardien.datamap.schemas import (
    AccessSummary,
    CanEraseOut,
    DatamapOut,
    ErasureOut,
    HoldOut,
    IssueOut,
    RecipientOut,
    RectificationOut,
    ValidationReport,
)

MODULE = "datamap"
# The DPIA event log's tags (gardien.registers reads `fields.dpia_event` from the ledger).
DATA_ACCESS, DATA_EXPORT, DATA_DELETION = "DATA_ACCESS", "DATA_EXPORT", "DATA_DELETION"


@dataclass(frozen=True)
class _Run:
    """Who runs which erasure, for its audit events."""

    org_id: str
    run_id: str
    key: str
    actor: Mapping[str, Any]
    request_id: str | None


Identities = Mapping[str, str | Sequence[str]]
CATEGORY = r"^[a-z0-9_]+(\.[a-z0-9_]+)*$"


def invalid_map(exc: MapInvalid, prefix: str = "document") -> InvalidInput:
    errors = [{"field": f"{prefix}.{i.path}", "message": i.message, "type": "datamap"} for i in exc.issues]
    return InvalidInput("; ".join(f"{e['field']}: {e['message']}" for e in errors[:5]), errors)


def _event(
    action: str, crud: str, actor: Mapping[str, Any], target: tuple[str, str], request_id: str | None, **extra: Any
) -> dict[str, Any]:
    if request_id is not None:
        extra["request_id"] = request_id
    return capability_event(MODULE, action, crud, actor, target, **extra)


def _categories(datamap: DataMap, tables: Iterable[str]) -> list[str]:
    """The tables' data categories that the ledger's event schema takes (it allows 64)."""
    found = {c for t in tables for c in datamap.tables[t].categories}
    return sorted(c for c in found if re.fullmatch(CATEGORY, c) and len(c) <= 128)[:64]


class DatamapService:
    def __init__(self, runtime: Runtime, ledger: Ledger, clock: Callable[[], datetime] | None = None) -> None:
        self.runtime = runtime
        self.ledger = ledger
        self.clock = clock or utcnow
        self._hosts: dict[tuple[str, str, int], HostStores] = {}
        self._lock = threading.Lock()

    # --- registered maps ----------------------------------------------------------------------------

    def register(self, org_id: str, key: str, document: str, actor: Mapping[str, Any]) -> DatamapOut:
        """A new version of the map, unless it is the latest one already; 422 with every problem."""
        try:
            datamap = load_map(document)
        except MapInvalid as exc:
            raise invalid_map(exc) from exc
        digest = hashlib.sha256(document.encode()).hexdigest()
        now = self.clock()
        by = str(actor.get("id", "unknown"))[:256]

        def work(conn: Connection) -> tuple[dict[str, Any], list[PreparedEvent]]:
            latest = conn.execute(
                select(MAPS).where(MAPS.c.org_id == org_id, MAPS.c.key == key).order_by(MAPS.c.version.desc()).limit(1)
            ).first()
            if latest is not None and latest.sha256 == digest:
                return dict(latest._mapping), []
            version = (latest.version + 1) if latest is not None else 1
            row = {
                "org_id": org_id,
                "key": key,
                "version": version,
                "sha256": digest,
                "document": document,
                "created_at": now,
                "created_by": by,
            }
            conn.execute(insert(MAPS).values(row))
            event = _event(
                "datamap.register",
                "create",
                actor,
                ("datamap", key),
                None,
                fields={"version": version, "sha256": digest, "tables": sorted(datamap.tables)},
            )
            return row, [self.ledger.prepare(event)]

        row, _ = self.ledger.transact(org_id, work)
        return self._out(row, datamap, with_document=False)

    @staticmethod
    def _out(row: Mapping[str, Any], datamap: DataMap, *, with_document: bool) -> DatamapOut:
        return DatamapOut(
            key=row["key"],
            version=row["version"],
            sha256=row["sha256"],
            created_at=row["created_at"],
            created_by=row["created_by"],
            stores=sorted(datamap.stores),
            tables=sorted(datamap.tables),
            identities=sorted(datamap.identities),
            document=row["document"] if with_document else None,
        )

    def _row(self, org_id: str, key: str, version: int | None = None) -> Mapping[str, Any]:
        stmt = select(MAPS).where(MAPS.c.org_id == org_id, MAPS.c.key == key)
        stmt = stmt.where(MAPS.c.version == version) if version is not None else stmt.order_by(MAPS.c.version.desc())
        with self.runtime.engine.connect() as conn:
            row = conn.execute(stmt.limit(1)).first()
        if row is None:
            raise NotFound(f"data map {key!r}" + (f" version {version}" if version is not None else ""))
        return dict(row._mapping)

    def get(self, org_id: str, key: str, version: int | None = None) -> DatamapOut:
        row = self._row(org_id, key, version)
        return self._out(row, load_map(row["document"]), with_document=True)

    def keys(self, org_id: str) -> list[str]:
        """The keys of the organisation's maps, without reading the maps."""
        with self.runtime.engine.connect() as conn:
            found = conn.execute(select(MAPS.c.key).where(MAPS.c.org_id == org_id).distinct().order_by(MAPS.c.key))
            return list(found.scalars())

    def list_maps(self, org_id: str) -> list[DatamapOut]:
        latest = (
            select(MAPS.c.key, func.max(MAPS.c.version).label("version"))
            .where(MAPS.c.org_id == org_id)
            .group_by(MAPS.c.key)
            .subquery()
        )
        stmt = (
            select(MAPS)
            .join(latest, (MAPS.c.key == latest.c.key) & (MAPS.c.version == latest.c.version))
            .where(MAPS.c.org_id == org_id)
            .order_by(MAPS.c.key)
        )
        with self.runtime.engine.connect() as conn:
            rows = conn.execute(stmt).all()
        return [self._out(dict(r._mapping), load_map(r.document), with_document=False) for r in rows]

    def hosts(self, org_id: str, key: str, version: int | None = None) -> tuple[int, HostStores]:
        """The map's stores, connected once per map version and kept."""
        row = self._row(org_id, key, version)
        cache_key = (org_id, key, int(row["version"]))
        with self._lock:
            stores = self._hosts.get(cache_key)
            if stores is None:
                stores = self._hosts[cache_key] = HostStores(load_map(row["document"]))
        return int(row["version"]), stores

    def validate(self, org_id: str, key: str) -> ValidationReport:
        """The latest version against the databases as they are now (not the cached reflection)."""
        row = self._row(org_id, key)
        version = int(row["version"])
        stores = HostStores(load_map(row["document"]))
        try:
            issues = validate_live(stores)
        finally:
            stores.close()
        return ValidationReport(
            key=key,
            version=version,
            valid=not issues,
            issues=[IssueOut(field=i.path, message=i.message) for i in issues],
        )

    def close(self) -> None:
        with self._lock:
            for stores in self._hosts.values():
                stores.close()
            self._hosts.clear()

    # --- one person ---------------------------------------------------------------------------------

    def _engine(self, org_id: str, key: str, version: int | None = None) -> tuple[int, Engine]:
        version, stores = self.hosts(org_id, key, version)
        return version, Engine(stores)

    @staticmethod
    def _walk(engine: Engine, identities: Identities, sink: Any = None) -> Found:
        try:
            return engine.walk(identities, sink)
        except UnknownIdentity as exc:
            message = str(exc)
            raise InvalidInput(
                f"identities: {message}", [{"field": "identities", "message": message, "type": "datamap"}]
            ) from exc

    def access(
        self,
        org_id: str,
        key: str,
        identities: Identities,
        out: IO[bytes],
        *,
        actor: Mapping[str, Any] = SYSTEM_ACTOR,
        request_id: str | None = None,
        portable: bool = False,
    ) -> AccessSummary:
        """Write the person's access package (ZIP, Art. 15) to `out`; with `portable`, the portability
        package instead: only what the person provided, as JSON and CSV (Art. 20)."""
        version, engine = self._engine(org_id, key)
        spool = RowSpool()
        try:
            sink = ProvidedOnly(spool, engine.map, engine.stores.primary_key) if portable else spool
            found = self._walk(engine, identities, sink)
            start = out.tell() if out.seekable() else 0
            write_package(out, engine.map, spool, identities, self.clock(), portable=portable)
            size = (out.tell() - start) if out.seekable() else 0
        finally:
            spool.close()
        counts = spool.counts if portable else found.counts()
        self.ledger.record(
            org_id,
            _event(
                "datamap.portability" if portable else "datamap.access",
                "read",
                actor,
                ("datamap", key),
                request_id,
                data_categories=_categories(engine.map, counts),
                fields={"version": version, "rows": counts, "dpia_event": DATA_EXPORT if portable else DATA_ACCESS},
            ),
        )
        return AccessSummary(counts=counts, statements=found.statements, bytes=size)

    def _holds(self, engine: Engine, identities: Identities) -> tuple[Found, list[HoldOut]]:
        today = self.clock().date()
        held: dict[str, list[date | None]] = {}

        def sink(table: str, rows: Sequence[Mapping[str, Any]]) -> None:
            spec = engine.map.tables[table]
            if spec.hold is None:
                return
            for row in rows:
                if is_held(spec, row, today):
                    start = row.get(spec.hold.since) if spec.hold.since else None
                    held.setdefault(table, []).append(start.date() if isinstance(start, datetime) else start)

        found = self._walk(engine, identities, sink)
        holds = []
        for table, starts in sorted(held.items()):
            hold = engine.map.tables[table].hold
            assert hold is not None
            until = None
            if hold.years is not None and all(isinstance(s, date) for s in starts):
                until = max(s for s in starts if s is not None) + relativedelta(years=hold.years)
            holds.append(
                HoldOut(
                    table=table,
                    reason=hold.reason,
                    basis=hold.basis,
                    years=hold.years,
                    rows=len(starts),
                    until=until,
                )
            )
        return found, holds

    def can_erase(self, org_id: str, key: str, identities: Identities) -> CanEraseOut:
        _, engine = self._engine(org_id, key)
        found, holds = self._holds(engine, identities)
        return CanEraseOut(erasable=not holds, holds=holds, rows=found.counts())

    def erase(
        self,
        org_id: str,
        key: str,
        identities: Identities,
        *,
        actor: Mapping[str, Any] = SYSTEM_ACTOR,
        request_id: str | None = None,
        run_id: str | None = None,
    ) -> ErasureOut:
        """Erase the person; resume the run `run_id` instead when given (the identities are then unused)."""
        holds: list[HoldOut] = []
        if run_id is None:
            version, engine = self._engine(org_id, key)
            found, holds = self._holds(engine, identities)
            run_id = self._plan(org_id, key, version, found.by_store(engine.map), found.counts(), actor, request_id)
        run = self._run(org_id, run_id)
        if run["status"] == "completed":
            return self._erasure_out(run, holds)
        _, engine = self._engine(org_id, key, int(run["map_version"]))
        plan: dict[str, dict[str, list[list[Any]]]] = orjson.loads(run["plan"])
        done: list[str] = orjson.loads(run["done"])
        counts: dict[str, dict[str, int]] = orjson.loads(run["counts"])
        hmac_key = self._hash_key()
        today = self.clock().date()
        failure: HostStoreError | None = None
        context = _Run(org_id, run_id, key, actor, request_id)
        # In the map's order; a failing store does not stop the others, the run resumes it later.
        for store in [s for s in dict.fromkeys(t.dataset for t in engine.map.tables.values()) if s in plan]:
            if store in done:
                continue
            keys = {t: [tuple(k) for k in rows] for t, rows in plan[store].items()}
            try:
                store_counts = engine.erase_store(store, keys, hmac_key, today)
            except HostStoreError as exc:
                self._set_run(context, "datamap.erasure.store", "partial", {"store": store}, error=exc.detail)
                failure = failure or exc
                continue
            done.append(store)
            counts.update(store_counts)
            self._set_run(
                context,
                "datamap.erasure.store",
                "partial",
                {"store": store, "tables": store_counts},
                done=orjson.dumps(done).decode(),
                counts=orjson.dumps(counts).decode(),
                error=None,
            )
        if failure is not None:
            failure.extra["run_id"] = run_id  # what the caller resumes with
            raise failure
        fields = {"tables": counts, "dpia_event": DATA_DELETION}
        self._set_run(context, "datamap.erasure", "completed", fields, plan="{}")
        return self._erasure_out(self._run(org_id, run_id), holds)

    def _hash_key(self) -> HmacKey:
        # The oldest key, which rotation retires but never removes: the same value hashes the same
        # way after a rotation, so a second pass recognises what the first one did.
        return next(iter(self.runtime.keyring.hmac_keys().values()))

    def _run(self, org_id: str, run_id: str) -> Mapping[str, Any]:
        with self.runtime.engine.connect() as conn:
            row = conn.execute(select(ERASURES).where(ERASURES.c.org_id == org_id, ERASURES.c.id == run_id)).first()
        if row is None:
            raise NotFound(f"erasure run {run_id!r}")
        return dict(row._mapping)

    def _plan(
        self,
        org_id: str,
        key: str,
        version: int,
        plan: Mapping[str, Any],
        rows: Mapping[str, int],
        actor: Mapping[str, Any],
        request_id: str | None,
    ) -> str:
        run_id = new_id()
        now = self.clock()

        def work(conn: Connection) -> tuple[None, list[PreparedEvent]]:
            conn.execute(
                insert(ERASURES).values(
                    id=run_id,
                    org_id=org_id,
                    map_key=key,
                    map_version=version,
                    request_id=request_id,
                    status="planned",
                    plan=orjson.dumps(plan, default=str).decode(),
                    done="[]",
                    counts="{}",
                    created_at=now,
                    updated_at=now,
                )
            )
            event = _event(
                "datamap.erasure.plan",
                "create",
                actor,
                ("erasure", run_id),
                request_id,
                fields={"map": key, "version": version, "rows": dict(rows), "stores": sorted(plan)},
            )
            return None, [self.ledger.prepare(event)]

        self.ledger.transact(org_id, work)
        return run_id

    def _set_run(self, run: _Run, action: str, status: str, fields: dict[str, Any], **values: Any) -> None:
        """The run's new state and its audit event, in one transaction."""
        values.update(status=status, updated_at=self.clock())
        failed = values.get("error") is not None
        event = _event(
            action,
            "delete",
            run.actor,
            ("erasure", run.run_id),
            run.request_id,
            fields={"map": run.key, **fields},
            **({"outcome": "failure", "reason": str(values["error"])[:2000]} if failed else {}),
        )

        def work(conn: Connection) -> tuple[None, list[PreparedEvent]]:
            where = (ERASURES.c.org_id == run.org_id) & (ERASURES.c.id == run.run_id)
            conn.execute(update(ERASURES).where(where).values(values))
            return None, [self.ledger.prepare(event)]

        self.ledger.transact(run.org_id, work)

    @staticmethod
    def _erasure_out(run: Mapping[str, Any], holds: list[HoldOut]) -> ErasureOut:
        return ErasureOut(
            run_id=run["id"],
            status=run["status"],
            counts=orjson.loads(run["counts"]),
            stores_done=orjson.loads(run["done"]),
            holds=holds,
        )

    def rectify(
        self,
        org_id: str,
        key: str,
        identities: Identities,
        changes: Mapping[str, Any],
        *,
        actor: Mapping[str, Any] = SYSTEM_ACTOR,
        request_id: str | None = None,
    ) -> RectificationOut:
        """Set `{"dataset.table.field": value}` on the person's rows; 422 and no change if any value is refused."""
        _, engine = self._engine(org_id, key)
        checked = check_changes(engine.map, changes)
        found = self._walk(engine, identities)
        plan = found.by_store(engine.map)
        result: dict[str, dict[str, Any]] = {}
        by_store: dict[str, dict[str, dict[str, Any]]] = {}
        for table, values in checked.items():
            by_store.setdefault(engine.map.tables[table].dataset, {})[table] = values
        for store, tables in sorted(by_store.items()):
            before = engine.rectify_store(store, plan.get(store, {}), tables)
            events = []
            for table, seen in before.items():
                after = {name: _jsonable(v) for name, v in tables[table].items()}
                result[table] = {"rows": seen["rows"], "after": after}
                events.append(
                    _event(
                        "datamap.rectification",
                        "update",
                        actor,
                        ("table", table),
                        request_id,
                        data_categories=_categories(engine.map, [table]),
                        changes={"before": _jsonable(seen["before"]), "after": after},
                        fields={"map": key, "rows": seen["rows"]},
                    )
                )
            if events:
                self.ledger.append_batch(org_id, events)
        return RectificationOut(tables=result)

    def check_changes(self, org_id: str, key: str, changes: Mapping[str, Any]) -> None:
        """422 with every refused value, as `rectify` would answer, without touching the host databases."""
        _, stores = self.hosts(org_id, key)
        check_changes(stores.datamap, changes)

    def recipients(self, org_id: str, key: str, *, tables: Sequence[str] | None = None) -> list[RecipientOut]:
        """Art. 19: who received data of these tables (all tables when none are named)."""
        _, stores = self.hosts(org_id, key)
        datamap = stores.datamap
        unknown = [t for t in tables or () if t not in datamap.tables]
        if unknown:
            raise InvalidInput(
                f"tables: unknown {', '.join(unknown)}",
                [{"field": "tables", "message": f"not in the map: {t}", "type": "datamap"} for t in unknown],
            )
        chosen = list(tables) if tables is not None else list(datamap.tables)
        categories = {c for t in chosen for c in datamap.tables[t].categories}
        out = []
        for r in datamap.recipients:
            by_table = bool(set(r.tables) & set(chosen))
            by_category = any(c == rc or c.startswith(rc + ".") for rc in r.categories for c in categories)
            if by_table or by_category:
                out.append(RecipientOut(name=r.name, contact=r.contact, country=r.country, categories=r.categories))
        return out


def _jsonable(value: Any) -> Any:
    return orjson.loads(orjson.dumps(value, default=str))
