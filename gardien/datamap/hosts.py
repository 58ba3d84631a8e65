"""Connections to the host application's databases, and the map checked against them."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Engine, MetaData, String, Table, Text, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import NoSuchTableError, SQLAlchemyError

from gardien.core.errors import Problem
from gardien.datamap.mapfile import DataMap, MapIssue, Strategy


class HostStoreError(Problem):
    """A host database could not be reached or refused a statement."""

    def __init__(self, store: str, detail: str) -> None:
        super().__init__(502, "host-store", "Host database error", f"store {store!r}: {detail}", store=store)


def host_url(url: str) -> str:
    """Plain `postgresql://` and `mysql://` URLs go to the drivers Gardien ships (psycopg 3, PyMySQL)."""
    parsed = make_url(url)
    driver = {"postgresql": "postgresql+psycopg", "postgres": "postgresql+psycopg", "mysql": "mysql+pymysql"}
    driver |= {"mariadb": "mariadb+pymysql"}
    if parsed.drivername in driver:
        parsed = parsed.set(drivername=driver[parsed.drivername])
    return parsed.render_as_string(hide_password=False)


def open_engine(url: str) -> Engine:
    url = host_url(url)
    if make_url(url).get_backend_name() == "sqlite":
        engine = create_engine(url, connect_args={"timeout": 30})

        # The host's own foreign keys are enforced, as the host application would want: an erasure
        # must not leave rows pointing at rows it deleted.
        @event.listens_for(engine, "connect")
        def _foreign_keys(dbapi_connection: Any, _record: Any) -> None:
            dbapi_connection.execute("PRAGMA foreign_keys=ON")

        return engine
    return create_engine(url, pool_size=4, max_overflow=4, pool_recycle=1800)


@dataclass
class HostStores:
    """One engine per store and the reflected tables of the map, kept for the map's lifetime."""

    datamap: DataMap
    engines: dict[str, Engine] = field(default_factory=dict)
    tables: dict[str, Table] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def engine(self, store: str) -> Engine:
        with self._lock:
            engine = self.engines.get(store)
            if engine is None:
                url = self.datamap.stores[store].resolve_url()
                if url is None:
                    raise HostStoreError(store, f"environment variable {self.datamap.stores[store].url_env} is not set")
                try:
                    engine = self.engines[store] = open_engine(url)
                except (SQLAlchemyError, TypeError, ValueError) as exc:
                    raise HostStoreError(store, _short(exc)) from exc
            return engine

    def table(self, qualified: str) -> Table:
        found = self.tables.get(qualified)
        if found is not None:
            return found
        spec = self.datamap.tables[qualified]
        store = self.datamap.stores[spec.dataset]
        try:
            table = Table(spec.name, MetaData(), schema=store.schema, autoload_with=self.engine(store.name))
        except NoSuchTableError as exc:
            raise HostStoreError(store.name, f"no table {spec.name!r}") from exc
        except (SQLAlchemyError, TypeError, ValueError) as exc:
            raise HostStoreError(store.name, _short(exc)) from exc
        self.tables[qualified] = table
        return table

    def primary_key(self, qualified: str) -> tuple[str, ...]:
        """The map's primary key, else the database's."""
        declared = self.datamap.tables[qualified].primary_key
        return declared or tuple(c.name for c in self.table(qualified).primary_key.columns)

    def close(self) -> None:
        for engine in self.engines.values():
            engine.dispose()
        self.engines.clear()


def _short(exc: BaseException) -> str:
    return str(exc).splitlines()[0][:300]


def is_text(table: Table, column: str) -> bool:
    return isinstance(table.c[column].type, String | Text)


def validate_live(stores: HostStores) -> list[MapIssue]:
    """Every table and column of the map exists, keys are known, strategies fit the columns."""
    issues: list[MapIssue] = []
    datamap = stores.datamap
    for qualified, spec in datamap.tables.items():
        try:
            table = stores.table(qualified)
        except HostStoreError as exc:
            issues.append(MapIssue(spec.path, f"{qualified}: {exc.detail}"))
            continue
        for f, (name, fspec) in enumerate(spec.fields.items()):
            path = f"{spec.path}.fields.{f}"
            if name not in table.c:
                issues.append(MapIssue(path, f"unknown column {name!r}: {qualified} has no such column"))
                continue
            column = table.c[name]
            for held in (False, True) if spec.hold is not None else (False,):
                strategy = fspec.strategy(held=held, delete_rows=spec.delete_rows)
                if name in stores.primary_key(qualified):
                    strategy = Strategy.KEEP
                if strategy in (Strategy.KEYED_HASH, Strategy.RANDOM) and not is_text(table, name):
                    issues.append(MapIssue(path, f"{strategy.value} writes text; column {name!r} is {column.type}"))
                    break
                if strategy is Strategy.NULL and not column.nullable:
                    issues.append(
                        MapIssue(
                            path,
                            f"column {name!r} is NOT NULL: erase it with keyed_hash, random, generalise or keep, "
                            "or delete the rows",
                        )
                    )
                    break
        if spec.hold is not None and spec.hold.since is not None and spec.hold.since not in table.c:
            issues.append(MapIssue(spec.path, f"hold.since: unknown column {spec.hold.since!r}"))
        if not stores.primary_key(qualified):
            issues.append(
                MapIssue(
                    spec.path, f"{qualified} has no primary key, declared or in the database: rows cannot be told apart"
                )
            )
    return issues
