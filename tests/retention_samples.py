"""A throwaway host application for retention tests: accounts and events with nested JSON.

One database per test (a SQLite file, a PostgreSQL schema or a MariaDB database), dropped
afterwards. Accounts last logged in `5 × i` days before NOW; events were created `3 × i` days before.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pymysql
import pytest
from sqlalchemy import JSON, Column, DateTime, Integer, MetaData, String, Table, create_engine, insert, text
from sqlalchemy.engine import Engine, make_url

from gardien.datamap.hosts import host_url
from tests.datamap_samples import MARIADB_URL, POSTGRES_URL, _unreachable

NOW = datetime.now(UTC).replace(microsecond=0)
ACCOUNTS = 300
EVENTS = 400

MAP = """
dataset:
  - fides_key: app
    collections:
      - name: accounts
        fields:
          - {name: id, data_categories: [user.unique_id], fides_meta: {primary_key: true}}
          - {name: email, data_categories: [user.contact.email], fides_meta: {identity: email}}
          - {name: last_login, data_categories: [system.operations]}
          - {name: profile, data_categories: [user.demographic]}
      - name: events
        fields:
          - {name: id, fides_meta: {primary_key: true}}
          - name: account_id
            data_categories: [user.unique_id]
            fides_meta: {references: [{dataset: app, field: accounts.id, direction: from}]}
          - {name: created, data_categories: [system.operations]}
          - {name: ip, data_categories: [user.device.ip_address]}
          - {name: context, data_categories: [user.device]}
gardien:
  stores:
    app: {url: "URL"SCHEMA}
  collections:
    app.events:
      dated_by: created
      fields:
        ip: {anonymize: {operator: truncate_ip}}
        context:
          anonymize_paths:
            ip: {operator: truncate_ip}
            card.user_id: {operator: hmac, params: {domain: card.user_id}}
"""


@dataclass
class App:
    kind: str
    url: str
    schema: str | None
    engine: Engine
    accounts: Table
    events: Table

    def map_yaml(self) -> str:
        return MAP.replace("URL", self.url).replace("SCHEMA", f", schema: {self.schema}" if self.schema else "")

    def count(self, table: Table, where: str = "1=1") -> int:
        with self.engine.connect() as conn:
            return int(conn.execute(text(f"SELECT count(*) FROM {_name(table)} WHERE {where}")).scalar_one())

    def rows(self, table: Table) -> list[dict[str, object]]:
        with self.engine.connect() as conn:
            return [dict(r._mapping) for r in conn.execute(table.select().order_by(table.c.id))]


def _name(table: Table) -> str:
    return f"{table.schema}.{table.name}" if table.schema else table.name


def tables(meta: MetaData, schema: str | None) -> tuple[Table, Table]:
    accounts = Table(
        "accounts",
        meta,
        Column("id", Integer, primary_key=True, autoincrement=False),
        Column("email", String(200), nullable=False),
        Column("last_login", DateTime, nullable=True),
        Column("profile", String(200), nullable=True),
        schema=schema,
    )
    events = Table(
        "events",
        meta,
        Column("id", Integer, primary_key=True, autoincrement=False),
        Column("account_id", Integer, nullable=False),
        Column("created", DateTime, nullable=False),
        Column("ip", String(45), nullable=True),
        Column("context", JSON, nullable=True),
        schema=schema,
    )
    return accounts, events


def fill(engine: Engine, accounts: Table, events: Table, n_accounts: int = ACCOUNTS, n_events: int = EVENTS) -> None:
    naive = NOW.replace(tzinfo=None)
    with engine.begin() as conn:
        conn.execute(
            insert(accounts),
            [
                {
                    "id": i,
                    "email": f"user{i}@example.org",
                    "last_login": naive - timedelta(days=5 * i, hours=1),
                    "profile": f"profile {i}",
                }
                for i in range(n_accounts)
            ],
        )
        conn.execute(
            insert(events),
            [
                {
                    "id": i,
                    "account_id": i % n_accounts,
                    "created": naive - timedelta(days=3 * i, hours=1),
                    "ip": f"192.0.2.{i % 250}",
                    "context": {"ip": f"2001:db8:{i % 9999:x}::{i % 97 + 1:x}", "card": {"user_id": f"u-{i}"}},
                }
                for i in range(n_events)
            ],
        )


@contextmanager
def make_app(kind: str, tmp_path: Path, fill_rows: bool = True) -> Iterator[App]:
    suffix = uuid.uuid4().hex[:10]
    meta = MetaData()
    schema: str | None = None
    if kind == "sqlite":
        url = f"sqlite:///{tmp_path / 'app.db'}"
        engine = create_engine(url)
    elif kind == "postgresql":
        url = POSTGRES_URL
        schema = f"gdn_app_{suffix}"
        engine = create_engine(host_url(url))
        try:
            with engine.begin() as conn:
                conn.execute(text(f'CREATE SCHEMA "{schema}"'))
        except Exception as exc:
            _unreachable(f"PostgreSQL at {POSTGRES_URL}", exc)
    else:
        base = make_url(MARIADB_URL)
        name = f"gdn_app_{suffix}"
        try:
            connection = pymysql.connect(
                host=base.host, port=base.port or 3306, user=base.username, password=base.password or ""
            )
        except pymysql.err.OperationalError as exc:
            _unreachable(f"MariaDB at {MARIADB_URL}", exc)
        with connection.cursor() as cursor:
            cursor.execute(f"CREATE DATABASE `{name}`")
        connection.close()
        url = base.set(database=name).render_as_string(False)
        engine = create_engine(host_url(url))
    accounts, events = tables(meta, schema)
    meta.create_all(engine)
    if fill_rows:
        fill(engine, accounts, events)
    try:
        yield App(kind, url, schema, engine, accounts, events)
    finally:
        if kind == "postgresql":
            with engine.begin() as conn:
                conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        elif kind == "mariadb":
            with engine.begin() as conn:
                conn.execute(text(f"DROP DATABASE `{name}`"))
        engine.dispose()


@pytest.fixture(name="app_db", params=["sqlite", "postgresql", "mariadb"])
def app_fixture(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[App]:
    with make_app(request.param, tmp_path) as made:
        yield made


def context_of(row: dict[str, object]) -> dict[str, object]:
    value = row["context"]
    return json.loads(value) if isinstance(value, str) else value  # type: ignore[return-value]
