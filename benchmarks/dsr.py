"""Data-subject requests on a generated host database: access p50/p99 and erasure, against a naive script.

The host database (its own SQLite file or PostgreSQL database, apart from Gardien's) is a shop of
`--dsr-customers` customers over 10 tables: customers, addresses (2 each), orders (4), order_items
(2 per order, composite key), payments (1 per order), invoices (1 per order, 10-year hold),
tickets (1), ticket_messages (3 per ticket), logins (4), newsletter (keyed by e-mail). Foreign-key
columns and e-mails are indexed, as the host application would have them. A subject has 32 rows;
the default, the issue's size, is 1,000,000 customers and 32,000,000 rows, built by the database
itself (`generate`).

`dsr_access_p50` / `dsr_access_p99`: `DatamapService.access` for random subjects by e-mail, writing
the ZIP to memory and recording its audit event (the ledger writer not running: one commit each).
Baseline, same subjects, same database: the hand-written script a team writes today, one SELECT
per table per identity value (per customer, per order, per ticket), rows dumped to JSON.

`dsr_erasure_p50`: `DatamapService.erase` for other random subjects (walk, plan saved, one
transaction per store, audit events). Baseline: the same rows erased as Fides does it, one UPDATE
(or DELETE) per row, in one transaction.

`dsr_large_subject`: the access package of one subject with 20,000 rows (2,500 orders with their
items, payments and invoices, 7,495 logins), written encrypted to a file as the workflow writes it;
then the same call again under tracemalloc for the peak of Python allocations, against the peak for
a 32-row subject (flat memory: the two peaks differ by the walk's keys, not by the rows). Baseline:
the naive script for the same subject, with its own peak.

`dsr_workflow_per_s`: requests per second, one after the other, through the whole workflow: filed
(`RightsService.create`), identity verified by an operator, run over the map by the execution
engine (the access package built and encrypted, its row and events written), completed. Baseline:
the naive script's access for the same subjects, per second.
"""

from __future__ import annotations

import io
import json
import random
import resource
import tempfile
import time
import tracemalloc
from datetime import date
from typing import Any

from benchmarks.common import (
    Baseline,
    Config,
    EngineEnv,
    Reporter,
    Target,
    guarded,
    log,
    new_org,
    open_runtime,
    rounded,
)

LARGE_ROWS = 20_000
LARGE_ACCESS = Target("<=", 1000)
WORKFLOW_RATE = Target(">=", 20)
ACCESS_P50 = Target("<=", 50)
ACCESS_P99 = Target("<=", 200)
ERASURE_P50 = Target("<=", 200)
ACTOR = {"type": "service", "id": "bench"}
NAIVE_ACCESS = "naive script: one SELECT per table per identity value (customer, order, ticket), JSON dump"
NAIVE_ERASURE = "Fides-style masking: one UPDATE or DELETE per row, one transaction"

MAP = """
dataset:
  - fides_key: shop
    collections:
      - name: customers
        fides_meta: {masking_strategy_override: {strategy: delete}}
        fields:
          - {name: id, data_categories: [user.unique_id], fides_meta: {primary_key: true}}
          - {name: email, data_categories: [user.contact.email], fides_meta: {identity: email}}
          - {name: name, data_categories: [user.name]}
          - {name: phone, data_categories: [user.contact.phone_number]}
      - name: addresses
        fides_meta: {masking_strategy_override: {strategy: delete}}
        fields:
          - {name: id, fides_meta: {primary_key: true}}
          - {name: customer_id, fides_meta: {references: [{dataset: shop, field: customers.id, direction: from}]}}
          - {name: street, data_categories: [user.contact.address.street]}
          - {name: city, data_categories: [user.contact.address.city]}
      - name: orders
        fields:
          - {name: id, fides_meta: {primary_key: true}}
          - name: customer_id
            data_categories: [user.unique_id]
            fides_meta: {references: [{dataset: shop, field: customers.id, direction: from}]}
          - {name: placed_on, data_categories: [system.operations]}
          - {name: total, data_categories: [system.operations]}
      - name: order_items
        fides_meta: {masking_strategy_override: {strategy: delete}}
        fields:
          - name: order_id
            fides_meta: {primary_key: true, references: [{dataset: shop, field: orders.id, direction: from}]}
          - {name: line_no, fides_meta: {primary_key: true}}
          - {name: product, data_categories: [system.operations]}
      - name: payments
        fields:
          - {name: id, fides_meta: {primary_key: true}}
          - {name: order_id, fides_meta: {references: [{dataset: shop, field: orders.id, direction: from}]}}
          - {name: iban, data_categories: [user.financial.bank_account]}
      - name: invoices
        fields:
          - {name: id, fides_meta: {primary_key: true}}
          - {name: order_id, fides_meta: {references: [{dataset: shop, field: orders.id, direction: from}]}}
          - {name: billing_name, data_categories: [user.name]}
          - {name: amount, data_categories: [system.operations]}
          - {name: issued_on, data_categories: [system.operations]}
      - name: tickets
        fides_meta: {masking_strategy_override: {strategy: delete}}
        fields:
          - {name: id, fides_meta: {primary_key: true}}
          - {name: customer_id, fides_meta: {references: [{dataset: shop, field: customers.id, direction: from}]}}
          - {name: subject, data_categories: [user.content]}
      - name: ticket_messages
        fides_meta: {masking_strategy_override: {strategy: delete}}
        fields:
          - {name: id, fides_meta: {primary_key: true}}
          - {name: ticket_id, fides_meta: {references: [{dataset: shop, field: tickets.id, direction: from}]}}
          - {name: body, data_categories: [user.content]}
      - name: logins
        fides_meta: {masking_strategy_override: {strategy: delete}}
        fields:
          - {name: id, fides_meta: {primary_key: true}}
          - {name: customer_id, fides_meta: {references: [{dataset: shop, field: customers.id, direction: from}]}}
          - {name: ip, data_categories: [user.device.ip_address]}
      - name: newsletter
        fides_meta: {masking_strategy_override: {strategy: delete}}
        fields:
          - {name: email, data_categories: [user.contact.email], fides_meta: {identity: email, primary_key: true}}
          - {name: since, data_categories: [system.operations]}
gardien:
  stores:
    shop: {url: "HOST_URL"}
  collections:
    shop.invoices:
      hold: {reason: "Accounting records", years: 10, since: issued_on}
      fields:
        billing_name: {erase: keep_under_hold}
"""
# One row per (table, parent): what a naive script walks, and in which order.
CHILDREN = {
    "customers": [
        ("addresses", "customer_id"),
        ("orders", "customer_id"),
        ("tickets", "customer_id"),
        ("logins", "customer_id"),
    ],
    "orders": [("order_items", "order_id"), ("payments", "order_id"), ("invoices", "order_id")],
    "tickets": [("ticket_messages", "ticket_id")],
}


def _schema(metadata: Any, *, keys: bool = True) -> None:
    """The host's tables. `keys=False` leaves out the foreign keys and secondary indexes (primary keys
    stay): the tables are loaded that way and `_add_keys` adds the rest in one pass per index."""
    from sqlalchemy import Column, Date, ForeignKey, Integer, Numeric, String, Table

    def reference(column: str, parent: str, **options: Any) -> Column[Any]:
        if keys:  # a key's leading column is indexed already
            index = not options.get("primary_key")
            return Column(column, Integer, ForeignKey(f"{parent}.id"), index=index, **options)
        return Column(column, Integer, **options)

    def child(name: str, fk: str, parent: str, *columns: Any) -> None:
        Table(
            name,
            metadata,
            Column("id", Integer, primary_key=True, autoincrement=False),
            reference(fk, parent),
            *columns,
        )

    Table(
        "customers",
        metadata,
        Column("id", Integer, primary_key=True, autoincrement=False),
        Column("email", String(200), nullable=False, unique=keys, index=keys),
        Column("name", String(200)),
        Column("phone", String(40)),
    )
    child("addresses", "customer_id", "customers", Column("street", String(200)), Column("city", String(100)))
    child("orders", "customer_id", "customers", Column("placed_on", Date), Column("total", Numeric(10, 2)))
    Table(
        "order_items",
        metadata,
        reference("order_id", "orders", primary_key=True, autoincrement=False),
        Column("line_no", Integer, primary_key=True, autoincrement=False),
        Column("product", String(100)),
    )
    child("payments", "order_id", "orders", Column("iban", String(40)))
    child(
        "invoices",
        "order_id",
        "orders",
        Column("billing_name", String(200)),
        Column("amount", Numeric(10, 2)),
        Column("issued_on", Date),
    )
    child("tickets", "customer_id", "customers", Column("subject", String(200)))
    child("ticket_messages", "ticket_id", "tickets", Column("body", String(500)))
    child("logins", "customer_id", "customers", Column("ip", String(45)))
    Table("newsletter", metadata, Column("email", String(200), primary_key=True), Column("since", Date))


# Per table: the columns and the SELECT that makes its rows from `bench_seq` (n = 1..customers, the
# customer's id) crossed with `bench_fan` (k = 0..3). Ids are those of the layout in the module's
# docstring; an order's date is spread over 10 years by a fixed formula (DAYS), so the run is the
# same on every engine and every run. `{day}` is the engine's "2016-01-01 plus so many days".
DAYS = "((s.n * 7 + f.k * 1013) % 3650)"
FILL = {
    "customers": (
        "id, email, name, phone",
        "s.n, 'c' || s.n || '@example.org', 'Name ' || s.n, '+3247' || (1000000 + s.n) FROM bench_seq s",
    ),
    "newsletter": ("email, since", "'c' || s.n || '@example.org', {day0} FROM bench_seq s"),
    "addresses": (
        "id, customer_id, street, city",
        "s.n * 2 + f.k, s.n, 'Rue ' || f.k || ' ' || s.n, 'Bruxelles' FROM bench_seq s JOIN bench_fan f ON f.k < 2",
    ),
    "orders": (
        "id, customer_id, placed_on, total",
        "s.n * 4 + f.k, s.n, {day}, 10.00 FROM bench_seq s CROSS JOIN bench_fan f",
    ),
    "order_items": (
        "order_id, line_no, product",
        "s.n * 4 + f.k, l.k, 'book' FROM bench_seq s CROSS JOIN bench_fan f JOIN bench_fan l ON l.k IN (1, 2)",
    ),
    "payments": (
        "id, order_id, iban",
        "s.n * 4 + f.k, s.n * 4 + f.k, 'BE68539007547034' FROM bench_seq s CROSS JOIN bench_fan f",
    ),
    "invoices": (
        "id, order_id, billing_name, amount, issued_on",
        "s.n * 4 + f.k, s.n * 4 + f.k, 'Name ' || s.n, 10.00, {day} FROM bench_seq s CROSS JOIN bench_fan f",
    ),
    "tickets": ("id, customer_id, subject", "s.n, s.n, 'Where is my parcel?' FROM bench_seq s"),
    "ticket_messages": (
        "id, ticket_id, body",
        "s.n * 3 + f.k, s.n, 'Hello' FROM bench_seq s JOIN bench_fan f ON f.k < 3",
    ),
    "logins": ("id, customer_id, ip", "s.n * 4 + f.k, s.n, '203.0.113.7' FROM bench_seq s CROSS JOIN bench_fan f"),
}
ROWS_PER_CUSTOMER = 32


def generate(engine: Any, customers: int, seed: int) -> int:
    """Fill the host database in the database itself (`INSERT … SELECT` over a sequence table, keys
    and indexes added after the load, as a bulk load is done); returns the number of rows.

    Generating the issue's 1M customers (32M rows) row by row from Python took longer than the
    benchmarks themselves; in SQL it is a few minutes on either engine. `seed` is unused: the layout
    and the dates are fixed formulas."""
    from sqlalchemy import MetaData, text

    del seed
    postgres = engine.dialect.name == "postgresql"
    if postgres:
        day0, day = "DATE '2016-01-01'", f"DATE '2016-01-01' + {DAYS}"
        numbers = "INSERT INTO bench_seq SELECT g FROM generate_series(1, :n) AS g"
    else:
        day0, day = "'2016-01-01'", f"date('2016-01-01', '+' || {DAYS} || ' days')"
        numbers = (
            "INSERT INTO bench_seq WITH RECURSIVE g(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM g WHERE n < :n) "
            "SELECT n FROM g"
        )
    bare = MetaData()
    _schema(bare, keys=False)
    bare.create_all(engine)
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE bench_seq (n INTEGER PRIMARY KEY)"))
        conn.execute(text("CREATE TABLE bench_fan (k INTEGER PRIMARY KEY)"))
        conn.execute(text(numbers), {"n": customers})
        conn.execute(text("INSERT INTO bench_fan VALUES (0), (1), (2), (3)"))
    total = 0
    for name, (columns, select) in FILL.items():
        started = time.perf_counter()
        with engine.begin() as conn:
            done = conn.execute(text(f"INSERT INTO {name} ({columns}) SELECT {select.format(day0=day0, day=day)}"))
            total += done.rowcount
        log(f"dsr: {name}: {done.rowcount:,} rows in {time.perf_counter() - started:.1f} s")
    with engine.begin() as conn:
        conn.execute(text("DROP TABLE bench_seq"))
        conn.execute(text("DROP TABLE bench_fan"))
    _add_keys(engine)
    assert total == ROWS_PER_CUSTOMER * customers, total
    return total


def _add_keys(engine: Any) -> None:
    """The indexes and (PostgreSQL) foreign keys of the full schema, each built in one pass over a
    loaded table. SQLite cannot add a foreign key to a table; its tables were made without them and
    SQLite does not enforce them unless asked anyway."""
    from sqlalchemy import MetaData
    from sqlalchemy.schema import AddConstraint

    full = MetaData()
    _schema(full)
    started = time.perf_counter()
    with engine.begin() as conn:
        for table in full.sorted_tables:
            for index in table.indexes:
                index.create(conn)
            if engine.dialect.name == "postgresql":
                for constraint in table.foreign_key_constraints:
                    conn.execute(AddConstraint(constraint))
    with engine.begin() as conn:  # fresh statistics, as after a real bulk load
        conn.exec_driver_sql("ANALYZE")
    log(f"dsr: indexes and keys in {time.perf_counter() - started:.1f} s")


def add_large_subject(engine: Any, customer: int) -> str:
    """One more customer with LARGE_ROWS rows across the tables; returns the e-mail."""
    from sqlalchemy import MetaData, insert

    metadata = MetaData()
    _schema(metadata)
    email = "large@example.org"
    base = 4 * customer + 4  # above every generated id (they stay below 4 * customers + 4)
    day = date(2020, 1, 1)
    orders = [{"id": base + o, "customer_id": customer, "placed_on": day, "total": "10.00"} for o in range(2_500)]
    rows: dict[str, list[dict[str, Any]]] = {
        "customers": [{"id": customer, "email": email, "name": "Large Subject", "phone": "+32470000000"}],
        "newsletter": [{"email": email, "since": day}],
        "addresses": [
            {"id": base + a, "customer_id": customer, "street": "Rue Longue", "city": "Liège"} for a in (0, 1)
        ],
        "orders": orders,
        "order_items": [{"order_id": o["id"], "line_no": n, "product": "book"} for o in orders for n in (1, 2)],
        "payments": [{"id": o["id"], "order_id": o["id"], "iban": "BE68539007547034"} for o in orders],
        "invoices": [
            {"id": o["id"], "order_id": o["id"], "billing_name": "Large Subject", "amount": "10.00", "issued_on": day}
            for o in orders
        ],
        "tickets": [{"id": base, "customer_id": customer, "subject": "Many orders"}],
        "ticket_messages": [],
        "logins": [{"id": base + n, "customer_id": customer, "ip": "198.51.100.4"} for n in range(7_495)],
    }
    assert sum(len(r) for r in rows.values()) == LARGE_ROWS
    with engine.begin() as conn:
        for table in metadata.sorted_tables:
            if rows[table.name]:
                conn.execute(insert(table), rows[table.name])
    return email


def _peak_kib(call: Any) -> float:
    tracemalloc.start()
    try:
        call()
        return tracemalloc.get_traced_memory()[1] / 1024
    finally:
        tracemalloc.stop()


def naive_access(engine: Any, email: str) -> bytes:
    """One SELECT per table per identity value, as a hand-written script does."""
    from sqlalchemy import text

    found: dict[str, list[dict[str, Any]]] = {}
    with engine.connect() as conn:

        def take(table: str, column: str, value: Any) -> list[dict[str, Any]]:
            rows = [
                dict(r._mapping) for r in conn.execute(text(f"SELECT * FROM {table} WHERE {column} = :v"), {"v": value})
            ]
            found.setdefault(table, []).extend(rows)
            return rows

        take("newsletter", "email", email)
        for customer in take("customers", "email", email):
            for child, column in CHILDREN["customers"]:
                for row in take(child, column, customer["id"]):
                    for grandchild, fk in CHILDREN.get(child, []):
                        take(grandchild, fk, row["id"])
    return json.dumps(found, default=str).encode()


def naive_erase(engine: Any, plan: dict[str, list[tuple[Any, ...]]]) -> None:
    """One statement per row, children first: what Fides' SQL masking does."""
    from sqlalchemy import text

    order = [
        "order_items",
        "payments",
        "invoices",
        "ticket_messages",
        "tickets",
        "logins",
        "addresses",
        "orders",
        "newsletter",
        "customers",
    ]
    with engine.begin() as conn:
        for table in order:
            for key in plan.get(f"shop.{table}", []):
                if table == "order_items":
                    conn.execute(
                        text("DELETE FROM order_items WHERE order_id = :a AND line_no = :b"), {"a": key[0], "b": key[1]}
                    )
                elif table == "newsletter":
                    conn.execute(text("DELETE FROM newsletter WHERE email = :a"), {"a": key[0]})
                elif table == "orders":
                    conn.execute(text("UPDATE orders SET customer_id = NULL WHERE id = :a"), {"a": key[0]})
                elif table in ("payments", "invoices"):
                    column = "iban" if table == "payments" else "billing_name"
                    conn.execute(text(f"UPDATE {table} SET {column} = NULL WHERE id = :a"), {"a": key[0]})
                else:
                    conn.execute(text(f"DELETE FROM {table} WHERE id = :a"), {"a": key[0]})


def _quantiles(samples: list[float]) -> tuple[float, float]:
    ordered = sorted(samples)
    return ordered[len(ordered) // 2], ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]


def run(env: EngineEnv, cfg: Config, reporter: Reporter, customers: int) -> None:
    with guarded(reporter, "dsr_access_p50", env.engine):
        _run(env, cfg, reporter, customers)


def _run(env: EngineEnv, cfg: Config, reporter: Reporter, customers: int) -> None:
    from gardien.audit.service import Ledger
    from gardien.datamap.engine import Engine
    from gardien.datamap.hosts import open_engine
    from gardien.datamap.service import DatamapService
    from gardien.rights.execution import DatamapExecutor
    from gardien.rights.packages import EncryptingWriter, PackageStore
    from gardien.rights.schemas import RequestIn
    from gardien.rights.service import RightsService

    requests = 200 if cfg.quick else 500
    erasures = 50 if cfg.quick else 100
    with env.database("dsr-host") as host, env.database("dsr") as scratch:
        host_engine = open_engine(host.url)
        started = time.perf_counter()
        rows = generate(host_engine, customers, cfg.seed)
        log(f"dsr: host database of {customers:,} customers, {rows:,} rows in {time.perf_counter() - started:.0f} s")
        runtime = open_runtime(scratch, rights_packages_dir=scratch.directory / "packages")
        ledger = Ledger(runtime)
        service = DatamapService(runtime, ledger)
        try:
            org = new_org(runtime, "dsr")
            service.register(org, "shop", MAP.replace("HOST_URL", host.url), ACTOR)
            rng = random.Random(cfg.seed)
            subjects = [f"c{rng.randrange(1, customers + 1)}@example.org" for _ in range(requests)]
            for email in subjects[:10]:  # warm both: connections, reflection, caches
                service.access(org, "shop", {"email": email}, io.BytesIO(), actor=ACTOR)
                naive_access(host_engine, email)
            ours, theirs = [], []
            subject_rows = 0
            for email in subjects:
                t0 = time.perf_counter()
                summary = service.access(org, "shop", {"email": email}, io.BytesIO(), actor=ACTOR)
                t1 = time.perf_counter()
                naive_access(host_engine, email)
                t2 = time.perf_counter()
                ours.append((t1 - t0) * 1000)
                theirs.append((t2 - t1) * 1000)
                subject_rows = sum(summary.counts.values())
            (p50, p99), (b50, b99) = _quantiles(ours), _quantiles(theirs)
            context = {"customers": customers, "host_rows": rows, "subject_rows": subject_rows, "tables": 10}
            mean = sum(ours) / len(ours)
            reporter.emit(
                bench="dsr_access_p50",
                engine=env.engine,
                value=p50,
                unit="ms",
                target=ACCESS_P50,
                baseline=Baseline(NAIVE_ACCESS, b50, "ms"),
                n=requests,
                sequential_per_s=rounded(1000 / mean, 1),
                **context,
            )
            reporter.emit(
                bench="dsr_access_p99",
                engine=env.engine,
                value=p99,
                unit="ms",
                target=ACCESS_P99,
                baseline=Baseline(NAIVE_ACCESS, b99, "ms"),
                n=requests,
                **context,
            )
            victims = rng.sample(range(1, customers + 1), 2 * erasures)
            walker = Engine(service.hosts(org, "shop")[1])
            ours, theirs = [], []
            for n in range(erasures):
                email = f"c{victims[2 * n]}@example.org"
                t0 = time.perf_counter()
                service.erase(org, "shop", {"email": email}, actor=ACTOR)
                ours.append((time.perf_counter() - t0) * 1000)
                plan = walker.walk({"email": f"c{victims[2 * n + 1]}@example.org"}).keys
                t1 = time.perf_counter()
                naive_erase(host_engine, {t: list(k) for t, k in plan.items()})
                theirs.append((time.perf_counter() - t1) * 1000)
            (p50, p99), (b50, _) = _quantiles(ours), _quantiles(theirs)
            reporter.emit(
                bench="dsr_erasure_p50",
                engine=env.engine,
                value=p50,
                unit="ms",
                target=ERASURE_P50,
                baseline=Baseline(NAIVE_ERASURE + " (statements only, the walk untimed)", b50, "ms"),
                n=erasures,
                p99_ms=rounded(p99, 2),
                **context,
            )
            large = add_large_subject(host_engine, customers + 1)

            def encrypted_access(email: str) -> int:
                with tempfile.TemporaryFile() as sink:
                    writer = EncryptingWriter(sink, runtime.keyring, "bench")  # type: ignore[arg-type]
                    summary = service.access(org, "shop", {"email": email}, writer, actor=ACTOR)
                    writer.close()
                    return sum(summary.counts.values())

            encrypted_access(large)  # warm: the host's pages for this subject in cache, as for the others
            timings, naive = [], []
            for _ in range(3):
                t0 = time.perf_counter()
                found = encrypted_access(large)
                t1 = time.perf_counter()
                naive_access(host_engine, large)
                naive.append((time.perf_counter() - t1) * 1000)
                timings.append((t1 - t0) * 1000)
            assert found == LARGE_ROWS, found
            small = subjects[0]
            peak_large = _peak_kib(lambda: encrypted_access(large))
            peak_small = _peak_kib(lambda: encrypted_access(small))
            naive_peak = _peak_kib(lambda: naive_access(host_engine, large))
            reporter.emit(
                bench="dsr_large_subject",
                engine=env.engine,
                value=sorted(timings)[1],
                unit="ms",
                target=LARGE_ACCESS,
                baseline=Baseline(NAIVE_ACCESS, sorted(naive)[1], "ms"),
                n=len(timings),
                subject_rows=found,
                peak_kib=rounded(peak_large, 0),
                peak_kib_32_rows=rounded(peak_small, 0),
                naive_peak_kib=rounded(naive_peak, 0),
                max_rss_kib=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
                customers=customers,
                host_rows=rows + LARGE_ROWS,
            )

            rights = RightsService(runtime, ledger)
            executor = DatamapExecutor(rights, service, PackageStore(runtime, ledger), background=False)
            rights.executor = executor
            workflow = [f"c{rng.randrange(1, customers + 1)}@example.org" for _ in range(100 if cfg.quick else 300)]

            def one_request(email: str) -> None:
                filed = rights.create(org, RequestIn(type="access", email=email), ACTOR, "service")
                done = rights.verify_by_operator(org, filed.id, "benchmark", ACTOR)
                assert done.status.value == "in_progress"

            for email in workflow[:5]:
                one_request(email)
            t0 = time.perf_counter()
            for email in workflow:
                one_request(email)
            elapsed = time.perf_counter() - t0
            t1 = time.perf_counter()
            for email in workflow:
                naive_access(host_engine, email)
            naive_elapsed = time.perf_counter() - t1
            completed = sum(1 for r in rights.list_requests(org, limit=200).requests if r.status.value == "completed")
            reporter.emit(
                bench="dsr_workflow_per_s",
                engine=env.engine,
                value=len(workflow) / elapsed,
                unit="requests/s",
                target=WORKFLOW_RATE,
                baseline=Baseline(NAIVE_ACCESS, len(workflow) / naive_elapsed, "requests/s"),
                n=len(workflow),
                completed_in_last_200=completed,
                **context,
            )
        finally:
            service.close()
            host_engine.dispose()
            runtime.close()
