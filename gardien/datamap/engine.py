"""The execution engine: find one person's rows across the host stores, erase and rectify them.

Everything is set-based: a walk issues one SELECT per table and round (values in IN-lists of at
most `CHUNK`), an erasure one DELETE and one UPDATE per table and chunk of rows, a rectification
one UPDATE per table and chunk. Nothing here knows about organisations or the ledger: the service
wraps it.
"""

from __future__ import annotations

import secrets
import threading
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from dateutil.relativedelta import relativedelta
from sqlalchemy import Column, ColumnElement, Table, and_, case, delete, false, or_, select, tuple_, update
from sqlalchemy.engine import Connection
from sqlalchemy.exc import SQLAlchemyError

from gardien.core.keyring import HmacKey
from gardien.datamap.hosts import HostStoreError, HostStores
from gardien.datamap.mapfile import DataMap, FieldSpec, Strategy, TableSpec

CHUNK = 1_000
HASH_MARK = "gdn:h:"
RANDOM_MARK = "gdn:r:"

Key = tuple[Any, ...]
RowSink = Callable[[str, Sequence[Mapping[str, Any]]], None]


class UnknownIdentity(ValueError):
    pass


@dataclass
class Found:
    """The subject's rows, by table: primary keys in the order found (each once)."""

    keys: dict[str, dict[Key, None]] = field(default_factory=lambda: defaultdict(dict))
    statements: int = 0

    def counts(self) -> dict[str, int]:
        return {table: len(keys) for table, keys in self.keys.items() if keys}

    def by_store(self, datamap: DataMap) -> dict[str, dict[str, list[Key]]]:
        plan: dict[str, dict[str, list[Key]]] = defaultdict(dict)
        for table, keys in self.keys.items():
            if keys:
                plan[datamap.tables[table].dataset][table] = list(keys)
        return dict(plan)


def coerce(column: Column[Any], values: Iterable[Any]) -> list[Any]:
    """Values turned into the column's Python type; those that cannot be are dropped (they match nothing)."""
    try:
        kind = column.type.python_type
    except NotImplementedError:
        return list(values)
    out = []
    for value in values:
        if value is None:
            continue
        if isinstance(value, kind) and not (kind is int and isinstance(value, bool)):
            out.append(value)
            continue
        try:
            if kind is int:
                out.append(int(str(value)))
            elif kind is str:
                out.append(value.isoformat() if isinstance(value, date) else str(value))
            elif kind is Decimal:
                out.append(Decimal(str(value)))
            elif kind is float:
                out.append(float(value))
            elif kind is date and isinstance(value, str):
                out.append(date.fromisoformat(value))
            elif kind is datetime and isinstance(value, str):
                out.append(datetime.fromisoformat(value))
        except (ValueError, InvalidOperation, TypeError):
            continue
    return out


def _chunks(items: Sequence[Any], size: int = CHUNK) -> Iterator[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def key_filter(table: Table, pk: Sequence[str], keys: Sequence[Key]) -> ColumnElement[bool]:
    if len(pk) == 1:
        return table.c[pk[0]].in_(coerce(table.c[pk[0]], (k[0] for k in keys)))
    columns = [table.c[name] for name in pk]
    typed = [
        tuple(coerce(col, [v])[0] if coerce(col, [v]) else v for col, v in zip(columns, k, strict=True)) for k in keys
    ]
    # The leading column's own IN-list first: SQLite (3.40) plans `(a, b) IN (VALUES …)` as a scan of
    # the whole table; with `a IN (…)` beside it, it reads the key's index, then checks the pairs.
    leading = list(dict.fromkeys(k[0] for k in typed))
    return and_(columns[0].in_(leading), tuple_(*columns).in_(typed))


class Engine:
    """Walks, erases and rectifies against one map's stores."""

    def __init__(self, stores: HostStores) -> None:
        self.stores = stores
        self.map = stores.datamap
        self._out_edges: dict[str, list[tuple[str, str, str]]] = defaultdict(list)
        for edge in self.map.edges:
            self._out_edges[edge.source[0]].append((edge.source[1], edge.target[0], edge.target[1]))

    # --- finding ----------------------------------------------------------------------------------

    def seeds(self, identities: Mapping[str, str | Sequence[str]]) -> dict[tuple[str, str], set[Any]]:
        known = self.map.identities
        pending: dict[tuple[str, str], set[Any]] = defaultdict(set)
        for kind, given in identities.items():
            values = [given] if isinstance(given, str) else list(given)
            for target in known.get(kind, ()):
                pending[target].update(v for v in values if v not in (None, ""))
        if not any(kind in known for kind in identities):
            raise UnknownIdentity(
                f"none of the identities given ({', '.join(sorted(identities)) or 'none'}) is in the map; "
                f"it knows: {', '.join(sorted(known))}"
            )
        return pending

    def columns(self, qualified: str, *, everything: bool) -> list[str]:
        spec = self.map.tables[qualified]
        table = self.stores.table(qualified)
        wanted = list(self.stores.primary_key(qualified))
        wanted += (source for source, _, _ in self._out_edges[qualified])
        if spec.hold is not None and spec.hold.since is not None:
            wanted.append(spec.hold.since)
        if everything:
            wanted += spec.fields
        chosen = set(wanted)
        return [column.name for column in table.c if column.name in chosen]

    def walk(self, identities: Mapping[str, str | Sequence[str]], sink: RowSink | None = None) -> Found:
        """Breadth first from the identities; each (table, field, value) is asked once."""
        pending = self.seeds(identities)
        asked: dict[tuple[str, str], set[Any]] = defaultdict(set)
        found = Found()
        lock = threading.Lock()
        while pending:
            work: dict[str, dict[str, list[Any]]] = defaultdict(dict)
            for (table, name), values in pending.items():
                column = self.stores.table(table).c[name]
                fresh = [v for v in coerce(column, values) if v not in asked[(table, name)]]
                asked[(table, name)].update(fresh)
                if fresh:
                    work[table][name] = fresh
            pending = defaultdict(set)
            by_store: dict[str, list[str]] = defaultdict(list)
            for table in work:
                by_store[self.map.tables[table].dataset].append(table)

            def take(table: str, rows: list[Mapping[str, Any]], pending: Any = pending) -> None:
                # Rows arrive a batch at a time from each store's thread: memory holds one batch,
                # not a table, and the sink, the keys and the next round's values are shared.
                with lock:
                    self._take(table, rows, found, pending, asked, sink)

            def run(store: str, tables: list[str], work: dict[str, dict[str, list[Any]]] = work) -> int:
                return self._round(store, tables, work, sink is not None, take)

            if len(by_store) > 1:
                with ThreadPoolExecutor(max_workers=min(len(by_store), 8)) as pool:
                    found.statements += sum(pool.map(lambda item: run(*item), by_store.items()))
            else:
                found.statements += sum(run(store, tables) for store, tables in by_store.items())
        return found

    def _round(
        self,
        store: str,
        tables: list[str],
        work: Mapping[str, Mapping[str, list[Any]]],
        everything: bool,
        take: Callable[[str, list[Mapping[str, Any]]], None],
    ) -> int:
        """One SELECT per table and chunk of values, its rows handed to `take` by batch; the statements issued."""
        statements = 0
        try:
            with self.stores.engine(store).connect() as conn:
                for qualified in tables:
                    table = self.stores.table(qualified)
                    cols = [table.c[name] for name in self.columns(qualified, everything=everything)]
                    for condition in _conditions(table, work[qualified]):
                        statements += 1
                        result = conn.execution_options(yield_per=CHUNK).execute(select(*cols).where(condition))
                        for batch in result.partitions():
                            take(qualified, [dict(r._mapping) for r in batch])
        except SQLAlchemyError as exc:
            raise HostStoreError(store, str(exc).splitlines()[0][:300]) from exc
        return statements

    def _take(
        self,
        qualified: str,
        rows: list[Mapping[str, Any]],
        found: Found,
        pending: dict[tuple[str, str], set[Any]],
        asked: Mapping[tuple[str, str], set[Any]],
        sink: RowSink | None,
    ) -> None:
        pk = self.stores.primary_key(qualified)
        seen = found.keys[qualified]
        new = []
        for row in rows:
            key = tuple(row[name] for name in pk)
            if key in seen:
                continue
            seen[key] = None
            new.append(row)
        if sink is not None and new:
            sink(qualified, new)
        for source, target, target_field in self._out_edges[qualified]:
            values = {row[source] for row in new if row[source] is not None}
            values -= asked.get((target, target_field), set())
            if values:
                pending[(target, target_field)].update(values)

    # --- erasing ------------------------------------------------------------------------------------

    def erase_order(self, tables: Iterable[str]) -> list[str]:
        """Tables holding a foreign key before the tables they point to, `erase_after` honoured.

        The database's own foreign keys decide, not the map's references: they are what refuses a
        DELETE in the wrong order. A cycle of foreign keys is broken by name.
        """
        chosen = sorted(set(tables))
        by_name = {(self.stores.table(t).schema, self.stores.table(t).name): t for t in chosen}
        before: dict[str, set[str]] = {t: set() for t in chosen}
        for child in chosen:
            for fk in self.stores.table(child).foreign_keys:
                parent = by_name.get((fk.column.table.schema, fk.column.table.name))
                if parent is not None and parent != child:
                    before[parent].add(child)
            for other in self.map.tables[child].erase_after:
                if other in before:
                    before[child].add(other)
        order: list[str] = []
        remaining = dict(before)
        while remaining:
            ready = [t for t, deps in remaining.items() if not deps & remaining.keys()]
            for table in ready or [min(remaining)]:
                order.append(table)
                del remaining[table]
        return order

    def erase_store(
        self, store: str, plan: Mapping[str, Sequence[Key]], key: HmacKey, today: date
    ) -> dict[str, dict[str, int]]:
        """Erase the planned rows of one store in one transaction; per-table counts."""
        counts: dict[str, dict[str, int]] = {}
        try:
            with self.stores.engine(store).begin() as conn:
                for qualified in self.erase_order(plan):
                    keys = [tuple(k) for k in plan[qualified]]
                    counts[qualified] = self._erase_table(conn, qualified, keys, key, today)
        except SQLAlchemyError as exc:
            raise HostStoreError(store, str(exc).splitlines()[0][:300]) from exc
        return counts

    def _erase_table(
        self, conn: Connection, qualified: str, keys: list[Key], key: HmacKey, today: date
    ) -> dict[str, int]:
        spec = self.map.tables[qualified]
        table = self.stores.table(qualified)
        pk = self.stores.primary_key(qualified)
        counts = {"deleted": 0, "updated": 0, "held": 0}
        changed_fields = [
            name
            for name, fspec in spec.fields.items()
            if name not in pk
            and name in table.c
            and {fspec.strategy(held=h, delete_rows=spec.delete_rows) for h in (False, True)} - {Strategy.KEEP}
        ]
        since = spec.hold.since if spec.hold is not None else None
        wanted = list(dict.fromkeys([*pk, *changed_fields, *([since] if since else [])]))
        for chunk in _chunks(keys):
            rows = [
                dict(r._mapping)
                for r in conn.execute(select(*(table.c[n] for n in wanted)).where(key_filter(table, pk, chunk)))
            ]
            held = [r for r in rows if is_held(spec, r, today)]
            free = [r for r in rows if not is_held(spec, r, today)]
            counts["held"] += len(held)
            if spec.delete_rows and free:
                result = conn.execute(delete(table).where(key_filter(table, pk, [_key(r, pk) for r in free])))
                counts["deleted"] += result.rowcount
                free = []
            for group, under_hold in ((free, False), (held, True)):
                if group:
                    counts["updated"] += self._anonymise(conn, spec, table, pk, group, under_hold, key)
        return counts

    def _anonymise(
        self,
        conn: Connection,
        spec: TableSpec,
        table: Table,
        pk: Sequence[str],
        rows: list[dict[str, Any]],
        held: bool,
        key: HmacKey,
    ) -> int:
        """One UPDATE for the rows that still hold something to erase; how many there were."""
        values: dict[str, Any] = {}
        touched: dict[Key, None] = {}
        for name, fspec in spec.fields.items():
            if name in pk or name not in table.c:
                continue
            strategy = fspec.strategy(held=held, delete_rows=spec.delete_rows)
            if strategy in (Strategy.KEEP, Strategy.DELETE):
                continue
            changes = {}
            for row in rows:
                new = (
                    None
                    if strategy is Strategy.NULL
                    else _transform(strategy, fspec, qualified_field(spec, name), row[name], key)
                )
                if new != row[name]:
                    changes[_key(row, pk)] = new
            if not changes:
                continue
            touched.update(dict.fromkeys(changes))
            values[name] = None if strategy is Strategy.NULL else _case(table, pk, changes, table.c[name])
        if values:
            conn.execute(update(table).where(key_filter(table, pk, list(touched))).values(values))
        return len(touched)

    # --- rectifying ---------------------------------------------------------------------------------

    def rectify_store(
        self, store: str, plan: Mapping[str, Sequence[Key]], changes: Mapping[str, Mapping[str, Any]]
    ) -> dict[str, dict[str, Any]]:
        """Set the new values on the subject's rows of one store; the distinct values before, per field."""
        before: dict[str, dict[str, Any]] = {}
        try:
            with self.stores.engine(store).begin() as conn:
                for qualified, fields in changes.items():
                    keys = [tuple(k) for k in plan.get(qualified, ())]
                    if not keys:
                        continue
                    table = self.stores.table(qualified)
                    pk = self.stores.primary_key(qualified)
                    seen: dict[str, dict[Any, None]] = {name: {} for name in fields}
                    updated = 0
                    for chunk in _chunks(keys):
                        condition = key_filter(table, pk, chunk)
                        for row in conn.execute(select(*(table.c[n] for n in fields)).where(condition)):
                            for name in fields:
                                seen[name][row._mapping[name]] = None
                        updated += conn.execute(update(table).where(condition).values(dict(fields))).rowcount
                    before[qualified] = {"rows": updated, "before": {n: list(v) for n, v in seen.items()}}
        except SQLAlchemyError as exc:
            raise HostStoreError(store, str(exc).splitlines()[0][:300]) from exc
        return before


def qualified_field(spec: TableSpec, name: str) -> str:
    return f"{spec.qualified}.{name}"


def _key(row: Mapping[str, Any], pk: Sequence[str]) -> Key:
    return tuple(row[name] for name in pk)


def is_held(spec: TableSpec, row: Mapping[str, Any], today: date) -> bool:
    hold = spec.hold
    if hold is None:
        return False
    if hold.since is None or hold.years is None:
        return True
    start = row.get(hold.since)
    if isinstance(start, datetime):
        start = start.date()
    if not isinstance(start, date):
        return True  # no date to count from: keep it rather than destroy accounting records
    return bool(start + relativedelta(years=hold.years) >= today)


def _case(table: Table, pk: Sequence[str], changes: Mapping[Key, Any], column: Column[Any]) -> Any:
    if len(pk) == 1:
        return case({k[0]: v for k, v in changes.items()}, value=table.c[pk[0]], else_=column)
    whens = [(and_(*(table.c[n] == v for n, v in zip(pk, k, strict=True))), new) for k, new in changes.items()]
    return case(*whens, else_=column)


def _transform(strategy: Strategy, fspec: FieldSpec, where: str, value: Any, key: HmacKey) -> Any:
    if value is None:
        return None
    if strategy is Strategy.KEYED_HASH:
        if isinstance(value, str) and value.startswith(HASH_MARK):
            return value
        digest = key.digest(b"datamap\0" + where.encode() + b"\0" + str(value).encode())
        return HASH_MARK + digest.hex()[:32]
    if strategy is Strategy.RANDOM:
        if isinstance(value, str) and value.startswith(RANDOM_MARK):
            return value
        return RANDOM_MARK + secrets.token_hex(16)
    return generalise(fspec, value)


def generalise(fspec: FieldSpec, value: Any) -> Any:
    options = fspec.options
    if isinstance(value, datetime | date):
        day = value.date() if isinstance(value, datetime) else value
        day = day.replace(day=1) if options.to == "month" else day.replace(month=1, day=1)
        return datetime(day.year, day.month, day.day, tzinfo=value.tzinfo) if isinstance(value, datetime) else day
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and options.step:
        step = max(1, int(options.step))
        return (value // step) * step
    if isinstance(value, Decimal) and options.step:
        exact = Decimal(str(options.step))
        return (value // exact) * exact
    if isinstance(value, float) and options.step:
        return (value // options.step) * options.step
    if isinstance(value, str) and options.keep is not None:
        return value[: options.keep]
    return value


def _conditions(table: Table, fields: Mapping[str, list[Any]]) -> Iterator[ColumnElement[bool]]:
    """OR of IN-lists over the fields, at most CHUNK values a statement."""
    parts: list[ColumnElement[bool]] = []
    size = 0
    for name, values in fields.items():
        for chunk in _chunks(values):
            if size + len(chunk) > CHUNK and parts:
                yield or_(*parts)
                parts, size = [], 0
            parts.append(table.c[name].in_(chunk))
            size += len(chunk)
    yield or_(*parts) if parts else false()
