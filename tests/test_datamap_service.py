"""The data map service: registered maps, and one person's access, erasure and rectification, with the ledger."""

from __future__ import annotations

import csv
import io
import zipfile
from datetime import UTC, date, datetime
from typing import Any

import orjson
import pytest

from gardien.audit.schemas import EventFilter
from gardien.audit.service import Ledger
from gardien.core.errors import InvalidInput, NotFound
from gardien.core.runtime import Runtime
from gardien.datamap.hosts import HostStoreError
from gardien.datamap.service import DatamapService
from tests.datamap_samples import TODAY, Host, host_fixture  # noqa: F401

ANA = {"email": "ana@example.org"}
DPO = {"type": "user", "id": "dpo-1", "display": "The DPO"}


@pytest.fixture
def maps(runtime: Runtime, ledger: Ledger) -> Any:
    service = DatamapService(
        runtime, ledger, clock=lambda: datetime(TODAY.year, TODAY.month, TODAY.day, 12, tzinfo=UTC)
    )
    yield service
    service.close()


def events(ledger: Ledger, org: str, action: str | None = None) -> list[dict[str, Any]]:
    page = ledger.list_events(org, EventFilter(module="datamap", action=action), cursor=None, limit=1000, actor=DPO)
    return page.events


def test_registering_versions_a_map_and_refuses_a_broken_one(
    maps: DatamapService, org: str, host: Host, ledger: Ledger
) -> None:
    first = maps.register(org, "shop", host.map_yaml(), DPO)
    assert (first.version, first.identities) == (1, ["email"])
    assert maps.register(org, "shop", host.map_yaml(), DPO).version == 1  # the same file: no new version
    assert maps.register(org, "shop", host.map_yaml() + "\n# reviewed\n", DPO).version == 2
    assert [m.version for m in maps.list_maps(org)] == [2]
    assert maps.get(org, "shop", 1).document == host.map_yaml()
    broken = host.map_yaml().replace("field: orders.id, direction: to", "field: ordrs.id, direction: to")
    with pytest.raises(InvalidInput) as caught:
        maps.register(org, "shop", broken, DPO)
    assert caught.value.extra["errors"] == [
        {
            "field": "document.dataset.0.collections.0.fields.5.fides_meta.references.0.field",
            "message": "reference to nowhere: no table 'shop.ordrs' in the datasets",
            "type": "datamap",
        }
    ]
    assert maps.get(org, "shop").version == 2
    assert [e["fields"]["version"] for e in events(ledger, org, "datamap.register")] == [1, 2]
    with pytest.raises(NotFound):
        maps.get("another-org", "shop")


def test_access_package_holds_everything_with_the_article_15_readme(
    maps: DatamapService, org: str, host: Host, ledger: Ledger
) -> None:
    maps.register(org, "shop", host.map_yaml(), DPO)
    out = io.BytesIO()
    summary = maps.access(org, "shop", ANA, out, actor=DPO, request_id="req-1")
    assert summary.counts == {
        "shop.customers": 1,
        "shop.orders": 2,
        "shop.addresses": 2,
        "shop.invoices": 2,
        "crm.tickets": 1,
        "shop.order_items": 3,
    }
    with zipfile.ZipFile(io.BytesIO(out.getvalue())) as archive:
        names = set(archive.namelist())
        data = orjson.loads(archive.read("data.json"))
        customers = list(csv.DictReader(io.StringIO(archive.read("shop.customers.csv").decode())))
        readme = archive.read("README.md").decode()
    assert names == {"data.json", "README.md", *(f"{t}.csv" for t in summary.counts)}
    assert data["subject"] == ANA
    assert data["tables"]["shop.customers"] == [
        {
            "id": 1,
            "email": "ana@example.org",
            "name": "Ana Peeters",
            "phone": "+32470000001",
            "birth_date": "1990-05-17",
            "last_order_id": 100,
        }
    ]
    assert sorted(i["line_no"] for i in data["tables"]["shop.order_items"]) == [1, 1, 2]
    assert customers[0]["name"] == "Ana Peeters" and customers[0]["phone"] == "'+32470000001"  # no formula
    for text in (
        "(a) Purposes of the processing",
        "(h) Prise de décision automatisée",
        "(c) Ontvangers of categorieën van ontvangers",
        "Exécution des commandes",
        "Uitvoering van bestellingen",
        "user.contact.email",
        "Parcel Co — dpo@parcel.example",
        "APD/GBA",
    ):
        assert text in readme
    [event] = events(ledger, org, "datamap.access")
    assert event["request_id"] == "req-1" and event["fields"]["rows"] == summary.counts
    assert "ana@example.org" not in orjson.dumps(event).decode()


def test_can_erase_lists_the_holds_with_their_end(maps: DatamapService, org: str, host: Host) -> None:
    maps.register(org, "shop", host.map_yaml(), DPO)
    check = maps.can_erase(org, "shop", ANA)
    assert not check.erasable
    [hold] = check.holds
    # The 2024-03-01 invoice is kept ten years; the 2014 one's period has ended, it does not block.
    assert (hold.table, hold.rows, hold.until, hold.basis) == ("shop.invoices", 1, date(2034, 3, 1), "legal_obligation")
    bob = maps.can_erase(org, "shop", {"email": "bob@example.org"})
    assert bob.erasable and bob.holds == [] and bob.rows == {"shop.customers": 1}


def test_erasure_resumes_after_a_failing_store_and_the_ledger_holds_counts_only(
    maps: DatamapService, org: str, host: Host, ledger: Ledger
) -> None:
    maps.register(org, "shop", host.map_yaml(), DPO)
    with host.crm.begin() as conn:
        conn.execute(host.table("crm.ticket_locks").insert().values(ticket_id=7))
    with pytest.raises(HostStoreError) as caught:
        maps.erase(org, "shop", ANA, actor=DPO, request_id="req-2")
    run_id = caught.value.extra["run_id"]
    # The shop's store committed; the CRM's rolled back whole.
    assert [c["id"] for c in host.rows("shop.customers")] == [2, 3]
    assert [t["id"] for t in host.rows("crm.tickets")] == [7, 8]
    [failure] = events(ledger, org, "datamap.erasure.store")[1:]
    assert failure["outcome"] == "failure" and failure["fields"]["store"] == "crm"

    with host.crm.begin() as conn:
        conn.execute(host.table("crm.ticket_locks").delete())
    # Ana's e-mail is gone from the shop: only the saved plan can still reach her ticket.
    result = maps.erase(org, "shop", {}, actor=DPO, request_id="req-2", run_id=run_id)
    assert (result.status, result.stores_done) == ("completed", ["shop", "crm"])
    assert result.counts["crm.tickets"] == {"deleted": 1, "updated": 0, "held": 0}
    assert result.counts["shop.invoices"] == {"deleted": 1, "updated": 1, "held": 1}
    assert [t["id"] for t in host.rows("crm.tickets")] == [8]
    again = maps.erase(org, "shop", {}, actor=DPO, run_id=run_id)
    assert again.status == "completed" and again.counts == result.counts

    recorded = events(ledger, org)
    assert [e["action"] for e in recorded] == [
        "datamap.register",
        "datamap.erasure.plan",
        "datamap.erasure.store",
        "datamap.erasure.store",
        "datamap.erasure.store",
        "datamap.erasure",
    ]
    text = orjson.dumps(recorded).decode()
    for value in ("ana@example.org", "Ana Peeters", "Rue Haute", "Where is my parcel"):
        assert value not in text
    assert recorded[-1]["fields"]["tables"]["shop.customers"] == {"deleted": 1, "updated": 0, "held": 0}
    # Nothing left to find: a new erasure of the same person does nothing.
    fresh = maps.erase(org, "shop", ANA, actor=DPO)
    assert (fresh.status, fresh.counts) == ("completed", {})


def test_rectification_refuses_bad_values_whole_then_applies_good_ones(
    maps: DatamapService, org: str, host: Host, ledger: Ledger
) -> None:
    maps.register(org, "shop", host.map_yaml(), DPO)
    before = host.rows("shop.customers")
    with pytest.raises(InvalidInput) as caught:
        maps.rectify(
            org,
            "shop",
            ANA,
            {
                "shop.customers.name": "Ana Janssens",
                "shop.customers.email": "not-an-address",
                "shop.customers.phone": "+32470999999",
                "shop.addresses.postcode": "ABC",
                "shop.customers.birth_date": "1990-02-30",
            },
            actor=DPO,
        )
    assert {e["field"] for e in caught.value.extra["errors"]} == {
        "changes.shop.customers.email",
        "changes.shop.customers.phone",
        "changes.shop.addresses.postcode",
        "changes.shop.customers.birth_date",
    }
    assert host.rows("shop.customers") == before
    out = maps.rectify(
        org,
        "shop",
        ANA,
        {"shop.customers.name": "Ana Janssens", "shop.addresses.postcode": "1050", "shop.customers.birth_date": None},
        actor=DPO,
        request_id="req-3",
    )
    assert out.tables["shop.addresses"] == {"rows": 2, "after": {"postcode": "1050"}}
    rows = {c["id"]: c for c in host.rows("shop.customers")}
    assert (rows[1]["name"], rows[1]["birth_date"], rows[2]["name"]) == ("Ana Janssens", None, "Bob Martin")
    recorded = {e["target"]["id"]: e for e in events(ledger, org, "datamap.rectification")}
    assert recorded["shop.customers"]["changes"] == {
        "before": {"name": ["Ana Peeters"], "birth_date": ["1990-05-17"]},
        "after": {"name": "Ana Janssens", "birth_date": None},
    }
    assert recorded["shop.addresses"]["changes"]["before"] == {"postcode": ["1000", "9000"]}


def test_recipients_to_notify_follow_tables_and_categories(maps: DatamapService, org: str, host: Host) -> None:
    maps.register(org, "shop", host.map_yaml(), DPO)
    names = lambda tables: [r.name for r in maps.recipients(org, "shop", tables=tables)]  # noqa: E731
    assert names(["shop.addresses"]) == ["Parcel Co"]
    assert names(["shop.orders", "crm.tickets"]) == ["Payments Ltd", "Helpdesk SaaS"]
    assert names(["shop.order_items"]) == []
    with pytest.raises(InvalidInput):
        maps.recipients(org, "shop", tables=["shop.nope"])
