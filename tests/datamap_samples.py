"""Throwaway host databases for the data map's tests: a shop and a CRM, on SQLite, PostgreSQL or MariaDB.

Each host gets its own databases (SQLite files, PostgreSQL schemas, MariaDB databases) that the
fixture drops afterwards. The shop has a self-reference (a cycle), a nullable reference, a composite
key, a guest order found both through its customer and its billing e-mail (two paths), and invoices
under a 10-year accounting hold.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import pymysql
import pytest
from sqlalchemy import (
    Column,
    Date,
    ForeignKey,
    ForeignKeyConstraint,
    Integer,
    MetaData,
    Numeric,
    String,
    Table,
    create_engine,
    insert,
    text,
)
from sqlalchemy.engine import Engine, make_url

from gardien.datamap.hosts import host_url

POSTGRES_URL = os.environ.get("GARDIEN_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
MARIADB_URL = os.environ.get("GARDIEN_TEST_MARIADB_URL", "mysql+pymysql://root@127.0.0.1:3306/test")
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
TODAY = date(2026, 12, 4)


def shop_tables(metadata: MetaData, schema: str | None) -> None:
    Table(
        "customers",
        metadata,
        Column("id", Integer, primary_key=True, autoincrement=False),
        Column("email", String(200), nullable=False, unique=True),
        Column("name", String(200)),
        Column("phone", String(40)),
        Column("birth_date", Date),
        Column("last_order_id", Integer),
        schema=schema,
    )
    prefix = "" if schema is None else f"{schema}."
    Table(
        "addresses",
        metadata,
        Column("id", Integer, primary_key=True, autoincrement=False),
        Column("customer_id", Integer, ForeignKey(f"{prefix}customers.id")),
        Column("street", String(200)),
        Column("postcode", String(20)),
        schema=schema,
    )
    Table(
        "orders",
        metadata,
        Column("id", Integer, primary_key=True, autoincrement=False),
        Column("customer_id", Integer, ForeignKey(f"{prefix}customers.id")),
        Column("billing_email", String(200)),
        Column("total", Numeric(10, 2), nullable=False),
        schema=schema,
    )
    Table(
        "order_items",
        metadata,
        Column("order_id", Integer, ForeignKey(f"{prefix}orders.id"), primary_key=True, autoincrement=False),
        Column("line_no", Integer, primary_key=True, autoincrement=False),
        Column("product", String(100), nullable=False),
        Column("gift_message", String(200)),
        schema=schema,
    )
    Table(
        "invoices",
        metadata,
        Column("id", Integer, primary_key=True, autoincrement=False),
        Column("customer_id", Integer, ForeignKey(f"{prefix}customers.id")),
        Column("customer_name", String(200)),
        Column("amount", Numeric(10, 2), nullable=False),
        Column("issued_on", Date, nullable=False),
        schema=schema,
    )


def crm_tables(metadata: MetaData, schema: str | None) -> None:
    prefix = "" if schema is None else f"{schema}."
    Table(
        "tickets",
        metadata,
        Column("id", Integer, primary_key=True, autoincrement=False),
        Column("customer_ref", Integer, nullable=False),
        Column("body", String(500)),
        schema=schema,
    )
    # Not in the map: a row here blocks deleting its ticket, which makes the CRM's erasure fail.
    Table(
        "ticket_locks",
        metadata,
        Column("ticket_id", Integer, primary_key=True, autoincrement=False),
        ForeignKeyConstraint(["ticket_id"], [f"{prefix}tickets.id"]),
        schema=schema,
    )


SHOP_ROWS = {
    "customers": [
        {
            "id": 1,
            "email": "ana@example.org",
            "name": "Ana Peeters",
            "phone": "+32470000001",
            "birth_date": date(1990, 5, 17),
            "last_order_id": 100,
        },
        {
            "id": 2,
            "email": "bob@example.org",
            "name": "Bob Martin",
            "phone": None,
            "birth_date": None,
            "last_order_id": None,
        },
        {
            "id": 3,
            "email": "chloe@example.org",
            "name": "Chloé Dubois",
            "phone": None,
            "birth_date": date(1985, 1, 2),
            "last_order_id": 102,
        },
    ],
    "addresses": [
        {"id": 10, "customer_id": 1, "street": "Rue Haute 1", "postcode": "1000"},
        {"id": 11, "customer_id": 1, "street": "Kerkstraat 2", "postcode": "9000"},
        {"id": 12, "customer_id": 3, "street": "Rue de Rivoli 3", "postcode": "75001"},
    ],
    "orders": [
        {"id": 100, "customer_id": 1, "billing_email": "ana@example.org", "total": "20.00"},
        {"id": 101, "customer_id": None, "billing_email": "ana@example.org", "total": "5.50"},
        {"id": 102, "customer_id": 3, "billing_email": "chloe@example.org", "total": "12.00"},
    ],
    "order_items": [
        {"order_id": 100, "line_no": 1, "product": "book", "gift_message": "Pour Ana"},
        {"order_id": 100, "line_no": 2, "product": "pen", "gift_message": None},
        {"order_id": 101, "line_no": 1, "product": "mug", "gift_message": None},
        {"order_id": 102, "line_no": 1, "product": "lamp", "gift_message": "Bonne fête"},
    ],
    "invoices": [
        {
            "id": 1000,
            "customer_id": 1,
            "customer_name": "Ana Peeters",
            "amount": "20.00",
            "issued_on": date(2024, 3, 1),
        },
        {"id": 1001, "customer_id": 1, "customer_name": "Ana Peeters", "amount": "7.00", "issued_on": date(2014, 6, 1)},
        {
            "id": 1002,
            "customer_id": 3,
            "customer_name": "Chloé Dubois",
            "amount": "12.00",
            "issued_on": date(2025, 1, 1),
        },
    ],
}
CRM_ROWS = {
    "tickets": [
        {"id": 7, "customer_ref": 1, "body": "Where is my parcel?"},
        {"id": 8, "customer_ref": 3, "body": "Broken lamp"},
    ],
}

MAP_TEMPLATE = """
dataset:
  - fides_key: shop
    name: Shop
    collections:
      - name: customers
        fields:
          - {name: id, data_categories: [user.unique_id], fides_meta: {primary_key: true}}
          - {name: email, data_categories: [user.contact.email], fides_meta: {identity: email}}
          - {name: name, data_categories: [user.name]}
          - {name: phone, data_categories: [user.contact.phone_number]}
          - {name: birth_date, data_categories: [user.demographic.date_of_birth]}
          - name: last_order_id
            data_categories: [system.operations]
            fides_meta:
              references: [{dataset: shop, field: orders.id, direction: to}]
      - name: addresses
        fields:
          - {name: id, fides_meta: {primary_key: true}}
          - name: customer_id
            data_categories: [user.unique_id]
            fides_meta: {references: [{dataset: shop, field: customers.id, direction: from}]}
          - {name: street, data_categories: [user.contact.address.street]}
          - {name: postcode, data_categories: [user.contact.address.postal_code]}
      - name: orders
        fields:
          - {name: id, fides_meta: {primary_key: true}}
          - name: customer_id
            data_categories: [user.unique_id]
            fides_meta: {references: [{dataset: shop, field: customers.id}]}
          - {name: billing_email, data_categories: [user.contact.email], fides_meta: {identity: email}}
          - {name: total, data_categories: [user.financial]}
      - name: order_items
        fides_meta: {masking_strategy_override: {strategy: delete}}
        fields:
          - name: order_id
            fides_meta:
              primary_key: true
              references: [{dataset: shop, field: orders.id, direction: from}]
          - {name: line_no, fides_meta: {primary_key: true}}
          - {name: product, data_categories: [system.operations]}
          - {name: gift_message, data_categories: [user.content]}
      - name: invoices
        fields:
          - {name: id, fides_meta: {primary_key: true}}
          - name: customer_id
            data_categories: [user.unique_id]
            fides_meta: {references: [{dataset: shop, field: customers.id, direction: from}]}
          - {name: customer_name, data_categories: [user.name]}
          - {name: amount, data_categories: [user.financial]}
          - {name: issued_on, data_categories: [system.operations]}
  - fides_key: crm
    collections:
      - name: tickets
        fides_meta: {masking_strategy_override: {strategy: delete}}
        fields:
          - {name: id, fides_meta: {primary_key: true}}
          - name: customer_ref
            fides_meta: {references: [{dataset: shop, field: customers.id, direction: from}]}
          - {name: body, data_categories: [user.content]}
gardien:
  stores:
    shop: {url: "SHOP_URL"SHOP_SCHEMA}
    crm: {url: "CRM_URL"CRM_SCHEMA}
  collections:
    shop.customers:
      erase: delete
      fields:
        email: {rectify: {type: email}}
        name: {rectify: {type: string, max_length: 50}}
        birth_date: {rectify: {type: date, nullable: true}}
    shop.addresses:
      fields:
        street: {erase: random}
        postcode: {erase: generalise, keep: 2, rectify: {type: string, pattern: "[0-9]{4,5}"}}
    shop.orders:
      fields:
        billing_email: {erase: keyed_hash}
        total: {erase: keep}
    shop.invoices:
      erase: delete
      hold:
        reason: {en: "Accounting records, 10 years", fr: "Pièces comptables, 10 ans"}
        basis: legal_obligation
        years: 10
        since: issued_on
      fields:
        customer_name: {erase: keep_under_hold}
        amount: {erase: keep_under_hold}
        issued_on: {erase: keep_under_hold}
  notice:
    controller: "Shop SA, Rue Haute 1, 1000 Bruxelles"
    purposes:
      - {en: "Order fulfilment", fr: "Exécution des commandes", nl: "Uitvoering van bestellingen"}
    retention:
      en: "3 years after the last order; invoices 10 years"
      fr: "3 ans après la dernière commande ; factures 10 ans"
      nl: "3 jaar na de laatste bestelling; facturen 10 jaar"
    supervisory_authority: "APD/GBA, www.autoriteprotectiondonnees.be"
    source: {en: "Provided by you", fr: "Fournies par vous", nl: "Door u verstrekt"}
    automated_decisions: {en: "None", fr: "Aucune", nl: "Geen"}
  recipients:
    - {name: "Parcel Co", contact: "dpo@parcel.example", categories: [user.contact.address]}
    - {name: "Payments Ltd", country: "IE", categories: [user.financial]}
    - {name: "Helpdesk SaaS", tables: [crm.tickets]}
"""


@dataclass
class Host:
    kind: str
    shop_url: str
    crm_url: str
    shop_schema: str | None
    crm_schema: str | None
    shop: Engine
    crm: Engine
    shop_meta: MetaData
    crm_meta: MetaData

    def map_yaml(self) -> str:
        def schema(name: str | None) -> str:
            return f", schema: {name}" if name else ""

        return (
            MAP_TEMPLATE.replace("SHOP_URL", self.shop_url)
            .replace("CRM_URL", self.crm_url)
            .replace("SHOP_SCHEMA", schema(self.shop_schema))
            .replace("CRM_SCHEMA", schema(self.crm_schema))
        )

    def table(self, name: str) -> Table:
        store, _, table = name.partition(".")
        meta = self.shop_meta if store == "shop" else self.crm_meta
        schema = self.shop_schema if store == "shop" else self.crm_schema
        return meta.tables[f"{schema}.{table}" if schema else table]

    def rows(self, name: str) -> list[dict[str, object]]:
        table = self.table(name)
        engine = self.shop if name.startswith("shop.") else self.crm
        with engine.connect() as conn:
            return [dict(r._mapping) for r in conn.execute(table.select().order_by(*table.primary_key.columns))]


def _fill(engine: Engine, meta: MetaData, schema: str | None, rows: dict[str, list[dict[str, object]]]) -> None:
    meta.create_all(engine)
    with engine.begin() as conn:
        for name, values in rows.items():
            conn.execute(insert(meta.tables[f"{schema}.{name}" if schema else name]), values)


def _unreachable(what: str, exc: Exception) -> None:
    message = f"{what} is unreachable: {exc}"
    if IN_CI:
        pytest.fail(f"{message} (CI=true: every host database is mandatory)", pytrace=False)
    pytest.skip(message)


@pytest.fixture(name="host", params=["sqlite", "postgresql", "mariadb"])
def host_fixture(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Host]:
    with make_host(request.param, tmp_path) as made:
        yield made


@pytest.fixture(name="sqlite_host")
def sqlite_host_fixture(tmp_path: Path) -> Iterator[Host]:
    with make_host("sqlite", tmp_path) as made:
        yield made


@contextmanager
def make_host(kind: str, tmp_path: Path) -> Iterator[Host]:
    suffix = uuid.uuid4().hex[:10]
    shop_meta, crm_meta = MetaData(), MetaData()
    if kind == "sqlite":
        shop_url, crm_url = f"sqlite:///{tmp_path / 'shop.db'}", f"sqlite:///{tmp_path / 'crm.db'}"
        shop_schema = crm_schema = None
        shop, crm = create_engine(shop_url), create_engine(crm_url)
        for engine in (shop, crm):
            with engine.connect() as conn:
                conn.exec_driver_sql("PRAGMA foreign_keys=ON")
    elif kind == "postgresql":
        shop_url = crm_url = POSTGRES_URL
        shop_schema, crm_schema = f"gdn_shop_{suffix}", f"gdn_crm_{suffix}"
        shop = crm = create_engine(host_url(POSTGRES_URL))
        try:
            with shop.begin() as conn:
                conn.execute(text(f'CREATE SCHEMA "{shop_schema}"'))
                conn.execute(text(f'CREATE SCHEMA "{crm_schema}"'))
        except Exception as exc:
            _unreachable(f"PostgreSQL at {POSTGRES_URL}", exc)
    else:
        base = make_url(MARIADB_URL)
        shop_schema = crm_schema = None
        names = (f"gdn_shop_{suffix}", f"gdn_crm_{suffix}")
        try:
            conn = pymysql.connect(
                host=base.host, port=base.port or 3306, user=base.username, password=base.password or ""
            )
        except pymysql.err.OperationalError as exc:
            _unreachable(f"MariaDB at {MARIADB_URL}", exc)
        with conn.cursor() as cursor:
            for name in names:
                cursor.execute(f"CREATE DATABASE `{name}`")
        conn.close()
        shop_url = base.set(database=names[0]).render_as_string(False)
        crm_url = base.set(database=names[1]).render_as_string(False)
        shop, crm = create_engine(host_url(shop_url)), create_engine(host_url(crm_url))
    shop_tables(shop_meta, shop_schema)
    crm_tables(crm_meta, crm_schema)
    _fill(shop, shop_meta, shop_schema, SHOP_ROWS)
    _fill(crm, crm_meta, crm_schema, CRM_ROWS)
    try:
        yield Host(kind, shop_url, crm_url, shop_schema, crm_schema, shop, crm, shop_meta, crm_meta)
    finally:
        if kind == "postgresql":
            with shop.begin() as conn:
                conn.execute(text(f'DROP SCHEMA "{shop_schema}" CASCADE'))
                conn.execute(text(f'DROP SCHEMA "{crm_schema}" CASCADE'))
        elif kind == "mariadb":
            with shop.begin() as conn:
                conn.execute(text(f"DROP DATABASE `{names[0]}`"))
                conn.execute(text(f"DROP DATABASE `{names[1]}`"))
        shop.dispose()
        crm.dispose()
