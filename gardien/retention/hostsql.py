"""Set-based statements on a host table: select a keyset batch, delete it, write its new values.

One statement per batch whatever its size: a DELETE with an IN-list of primary keys, and an UPDATE
joined to the batch's new values (`WITH v(...) AS (VALUES …) UPDATE … FROM v` on PostgreSQL and
SQLite, `UPDATE … JOIN (SELECT … UNION ALL …)` on MariaDB/MySQL).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, date, datetime
from typing import Any

import orjson
from sqlalchemy import Column, ColumnElement, Table, and_, delete, or_, true, tuple_
from sqlalchemy.engine import Connection

from gardien.datamap.engine import key_filter

Key = tuple[Any, ...]


def bound(column: Column[Any], moment: datetime) -> Any:
    """A moment as the column stores it: a date, a naive or aware datetime, ISO text or epoch seconds."""
    try:
        kind = column.type.python_type
    except NotImplementedError:
        kind = datetime
    if kind is datetime:
        aware = bool(getattr(column.type, "timezone", False))
        return moment if aware else moment.astimezone(UTC).replace(tzinfo=None)
    if kind is date:
        return moment.date()
    if kind is str:
        return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S")
    if kind in (int, float):
        return int(moment.timestamp())
    return moment.astimezone(UTC).replace(tzinfo=None)


def after_key(table: Table, pk: Sequence[str], key: Key | None) -> ColumnElement[bool] | None:
    """Rows strictly after `key` in primary-key order (keyset pagination)."""
    if key is None:
        return None
    if len(pk) == 1:
        later: ColumnElement[bool] = table.c[pk[0]] > key[0]
    else:
        later = tuple_(*(table.c[n] for n in pk)) > tuple_(*key)
    return later


def upto_key(table: Table, pk: Sequence[str], key: Key) -> ColumnElement[bool]:
    if len(pk) == 1:
        earlier: ColumnElement[bool] = table.c[pk[0]] <= key[0]
    else:
        earlier = tuple_(*(table.c[n] for n in pk)) <= tuple_(*key)
    return earlier


def among(table: Table, pk: Sequence[str], keys: Sequence[Key]) -> ColumnElement[bool]:
    return key_filter(table, pk, list(keys))


def not_among(table: Table, pk: Sequence[str], keys: Sequence[Key]) -> ColumnElement[bool] | None:
    if not keys:
        return None
    return ~key_filter(table, pk, list(keys))


def any_of(*parts: ColumnElement[bool] | None) -> ColumnElement[bool] | None:
    present = [p for p in parts if p is not None]
    return or_(*present) if present else None


def all_of(*parts: ColumnElement[bool] | None) -> ColumnElement[bool]:
    return and_(true(), *(p for p in parts if p is not None))


def delete_keys(conn: Connection, table: Table, pk: Sequence[str], keys: Sequence[Key]) -> int:
    return conn.execute(delete(table).where(key_filter(table, pk, list(keys)))).rowcount


def _param(value: Any) -> Any:
    if isinstance(value, dict | list):
        return orjson.dumps(value).decode()
    return value


def update_rows(
    conn: Connection, table: Table, pk: Sequence[str], columns: Sequence[str], rows: Sequence[Mapping[str, Any]]
) -> int:
    """Write each row's new `columns` in one statement; the number of rows it matched.

    With a one-column key, the statement also bounds the key to the batch's range: the planner then
    reads the batch's rows by index instead of hashing the whole table to join it.
    """
    if not rows or not columns:
        return 0
    dialect = conn.dialect
    quote = dialect.identifier_preparer.quote
    target = dialect.identifier_preparer.format_table(table)
    mark = "?" if dialect.paramstyle == "qmark" else "%s"
    names = [*pk, *columns]
    params = [_param(row[n]) for row in rows for n in names]
    span = ""
    if len(pk) == 1:
        keys = [row[pk[0]] for row in rows]
        span = f" AND {{t}}.{quote(pk[0])} >= {mark} AND {{t}}.{quote(pk[0])} <= {mark}"
        params += [min(keys), max(keys)]
    if dialect.name == "mysql":
        first = "SELECT " + ", ".join(f"{mark} AS {quote(n)}" for n in names)
        rest = " UNION ALL SELECT " + ", ".join(mark for _ in names)
        derived = first + rest * (len(rows) - 1)
        join = " AND ".join(f"t.{quote(n)} = v.{quote(n)}" for n in pk)
        sets = ", ".join(f"t.{quote(c)} = v.{quote(c)}" for c in columns)
        sql = f"UPDATE {target} AS t JOIN ({derived}) AS v ON {join}{span.format(t='t')} SET {sets}"
    else:

        def typed(name: str) -> str:
            if dialect.name != "postgresql":
                return f"v.{quote(name)}"
            return f"CAST(v.{quote(name)} AS {table.c[name].type.compile(dialect=dialect)})"

        row_marks = "(" + ", ".join(mark for _ in names) + ")"
        cte = f"WITH v({', '.join(quote(n) for n in names)}) AS (VALUES {', '.join(row_marks for _ in rows)})"
        sets = ", ".join(f"{quote(c)} = {typed(c)}" for c in columns)
        join = " AND ".join(f"{target}.{quote(n)} = {typed(n)}" for n in pk)
        sql = f"{cte} UPDATE {target} SET {sets} FROM v WHERE {join}{span.format(t=target)}"
    result = conn.exec_driver_sql(sql, tuple(params))
    return int(result.rowcount)
