"""The engine against real host databases: SQLite, PostgreSQL and MariaDB.

Expected rows and counts come from the sample data (tests/datamap_samples.py), worked out by hand.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import event

from gardien.core.keyring import HmacKey
from gardien.datamap.engine import HASH_MARK, RANDOM_MARK, Engine
from gardien.datamap.hosts import HostStores, validate_live
from gardien.datamap.mapfile import load_map
from tests.datamap_samples import TODAY, Host, host_fixture  # noqa: F401

KEY = HmacKey("k1", b"\x01" * 32)
ANA = {"email": "ana@example.org"}


def engine_for(host: Host) -> Engine:
    return Engine(HostStores(load_map(host.map_yaml())))


def found_keys(engine: Engine, identities: dict[str, Any]) -> dict[str, set[tuple[Any, ...]]]:
    found = engine.walk(identities)
    return {table: set(keys) for table, keys in found.keys.items() if keys}


def test_the_map_matches_the_live_databases(host: Host) -> None:
    assert validate_live(HostStores(load_map(host.map_yaml()))) == []


def test_walk_finds_each_row_once_through_cycles_and_two_paths(host: Host) -> None:
    engine = engine_for(host)
    assert found_keys(engine, ANA) == {
        "shop.customers": {(1,)},
        "shop.addresses": {(10,), (11,)},
        # 100 is found through Ana's id, her e-mail and her last_order_id; 101 (a guest order,
        # customer_id NULL) only through the billing e-mail.
        "shop.orders": {(100,), (101,)},
        "shop.order_items": {(100, 1), (100, 2), (101, 1)},
        "shop.invoices": {(1000,), (1001,)},
        "crm.tickets": {(7,)},
    }


def test_walk_batches_its_statements(host: Host) -> None:
    engine = engine_for(host)
    statements: list[str] = []
    found_keys(engine, ANA)  # reflect and connect first
    listeners = [(e, e.pool) for e in engine.stores.engines.values()]
    for store_engine, _ in listeners:
        event.listen(store_engine, "before_cursor_execute", lambda *a: statements.append(a[2]))
    found = engine.walk(ANA)
    # Round 1: customers and orders (e-mail); round 2: addresses, orders, order_items, invoices,
    # tickets and customers again (ids); round 3: order_items for order 101 — one SELECT per
    # table and round, whatever the number of rows.
    assert found.statements == len(statements) <= 12
    assert all(s.lstrip().upper().startswith("SELECT") for s in statements)


def test_unknown_identity_type_is_refused(host: Host) -> None:
    with pytest.raises(ValueError, match="it knows: email"):
        engine_for(host).walk({"phone_number": "+32470000001"})


def test_nobody_found_is_an_empty_answer(host: Host) -> None:
    assert found_keys(engine_for(host), {"email": "nobody@example.org"}) == {}


def test_erasure_applies_each_strategy_and_respects_the_hold(host: Host) -> None:
    engine = engine_for(host)
    plan = engine.walk(ANA).by_store(engine.map)
    counts = engine.erase_store("shop", plan["shop"], KEY, TODAY)
    assert counts == {
        "shop.addresses": {"deleted": 0, "updated": 2, "held": 0},
        "shop.invoices": {"deleted": 1, "updated": 1, "held": 1},
        "shop.order_items": {"deleted": 3, "updated": 0, "held": 0},
        "shop.orders": {"deleted": 0, "updated": 2, "held": 0},
        "shop.customers": {"deleted": 1, "updated": 0, "held": 0},
    }
    assert engine.erase_store("crm", plan["crm"], KEY, TODAY) == {
        "crm.tickets": {"deleted": 1, "updated": 0, "held": 0}
    }

    assert [c["id"] for c in host.rows("shop.customers")] == [2, 3]
    addresses = {a["id"]: a for a in host.rows("shop.addresses")}
    assert addresses[10]["customer_id"] is None and addresses[10]["postcode"] == "10"
    assert addresses[11]["postcode"] == "90"
    assert addresses[10]["street"].startswith(RANDOM_MARK) and addresses[10]["street"] != addresses[11]["street"]
    assert addresses[12] == {"id": 12, "customer_id": 3, "street": "Rue de Rivoli 3", "postcode": "75001"}
    orders = {o["id"]: o for o in host.rows("shop.orders")}
    assert orders[100]["customer_id"] is None and orders[100]["total"] == Decimal("20.00")
    assert orders[100]["billing_email"].startswith(HASH_MARK)
    # The same e-mail hashes the same way: the two orders stay linkable to each other, not to Ana.
    assert orders[100]["billing_email"] == orders[101]["billing_email"]
    assert orders[102]["billing_email"] == "chloe@example.org"
    assert [(i["order_id"], i["line_no"]) for i in host.rows("shop.order_items")] == [(102, 1)]
    invoices = {i["id"]: i for i in host.rows("shop.invoices")}
    # 2024 invoice: held until 2034, kept with its name and amount but cut from the customer.
    assert invoices[1000]["customer_id"] is None
    assert (invoices[1000]["customer_name"], invoices[1000]["amount"]) == ("Ana Peeters", Decimal("20.00"))
    # 2014 invoice: its ten years ended in 2024, it is gone.
    assert 1001 not in invoices and invoices[1002]["customer_id"] == 3
    assert [t["id"] for t in host.rows("crm.tickets")] == [8]


def test_erasure_twice_changes_nothing_more(host: Host) -> None:
    engine = engine_for(host)
    plan = engine.walk(ANA).by_store(engine.map)
    engine.erase_store("shop", plan["shop"], KEY, TODAY)
    after_once = {t: host.rows(t) for t in ("shop.addresses", "shop.orders", "shop.invoices")}
    counts = engine.erase_store("shop", plan["shop"], KEY, TODAY)
    assert {t: host.rows(t) for t in after_once} == after_once
    assert counts["shop.customers"]["deleted"] == 0
    assert counts["shop.orders"]["updated"] == counts["shop.addresses"]["updated"] == 0
    assert engine.walk(ANA).counts() == {}


def test_a_failing_store_changes_nothing_in_it(host: Host) -> None:
    engine = engine_for(host)
    plan = engine.walk(ANA).by_store(engine.map)
    with host.crm.begin() as conn:
        conn.execute(host.table("crm.ticket_locks").insert().values(ticket_id=7))
    before = host.rows("crm.tickets")
    with pytest.raises(Exception, match="crm"):
        engine.erase_store("crm", plan["crm"], KEY, TODAY)
    assert host.rows("crm.tickets") == before


def test_rectification_sets_the_new_value_on_the_subjects_rows_only(host: Host) -> None:
    engine = engine_for(host)
    plan = engine.walk(ANA).by_store(engine.map)
    before = engine.rectify_store("shop", plan["shop"], {"shop.customers": {"name": "Ana Janssens"}})
    assert before == {"shop.customers": {"rows": 1, "before": {"name": ["Ana Peeters"]}}}
    assert [c["name"] for c in host.rows("shop.customers")] == ["Ana Janssens", "Bob Martin", "Chloé Dubois"]


def test_access_columns_are_the_declared_ones(host: Host) -> None:
    engine = engine_for(host)
    seen: dict[str, list[dict[str, Any]]] = {}
    engine.walk(ANA, lambda table, rows: seen.setdefault(table, []).extend(rows))
    assert sorted(seen["shop.customers"][0]) == ["birth_date", "email", "id", "last_order_id", "name", "phone"]
    assert sum(len(rows) for rows in seen.values()) == 11  # 1 + 2 + 2 + 3 + 2 + 1


def test_a_composite_key_filter_reads_the_index_on_sqlite(tmp_path: Any) -> None:
    # SQLite plans `(a, b) IN (VALUES …)` alone as a scan of the whole table: erasing one subject's
    # order lines read all the shop's (0.9 s a subject with 8M lines). The filter must seek instead.
    from sqlalchemy import Column, Integer, MetaData, String, Table, create_engine, delete

    from gardien.datamap.engine import key_filter

    engine = create_engine(f"sqlite:///{tmp_path / 'host.db'}")
    lines = Table(
        "order_items",
        MetaData(),
        Column("order_id", Integer, primary_key=True),
        Column("line_no", Integer, primary_key=True),
        Column("product", String(20)),
    )
    lines.create(engine)
    with engine.begin() as conn:
        rows = [{"order_id": o, "line_no": n, "product": "book"} for o in range(50) for n in (1, 2)]
        conn.execute(lines.insert(), rows)
        statement = delete(lines).where(key_filter(lines, ["order_id", "line_no"], [(28, 1), (28, 2), (29, 1)]))
        compiled = statement.compile(engine, compile_kwargs={"render_postcompile": True})
        values = tuple(compiled.params[name] for name in compiled.positiontup or ())
        plan = conn.exec_driver_sql("EXPLAIN QUERY PLAN " + str(compiled), values).all()
        details = " / ".join(row[-1] for row in plan)
        assert "SEARCH order_items USING INDEX" in details, details
        assert "SCAN order_items" not in details, details
        assert conn.execute(statement).rowcount == 3
        assert len(conn.execute(lines.select()).all()) == 97
