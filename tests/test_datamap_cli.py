"""`gardien datamap …`: scaffold a map from a live database, validate it, register it, run it for one person."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from gardien.datamap.scaffold import category_from_name, category_from_values
from tests.datamap_samples import Host, host_fixture, sqlite_host_fixture  # noqa: F401
from tests.test_cli import cli, create_org, flat, run  # noqa: F401


def fields_of(draft: dict, table: str) -> dict[str, dict]:  # type: ignore[type-arg]
    [coll] = [c for c in draft["dataset"][0]["collections"] if c["name"] == table]
    return {f["name"]: f for f in coll["fields"]}


@pytest.mark.usefixtures("cli")
def test_scaffold_drafts_a_map_that_validates_against_the_same_database(host: Host, tmp_path: Path) -> None:
    runner = CliRunner()  # the `cli` fixture points the environment at the test database and keys
    schema = ["--schema", host.shop_schema] if host.shop_schema else []
    out = tmp_path / "draft.yml"
    result = run(runner, "datamap", "scaffold", host.shop_url, "--key", "shop", "--out", str(out), *schema)
    assert result.exit_code == 0, result.output
    draft = yaml.safe_load(out.read_text())
    customers = fields_of(draft, "customers")
    assert customers["email"]["fides_meta"] == {"identity": "email"}
    assert customers["id"]["fides_meta"] == {"primary_key": True}
    assert customers["phone"]["data_categories"] == ["user.contact.phone_number"]
    assert customers["birth_date"]["data_categories"] == ["user.demographic.date_of_birth"]
    assert fields_of(draft, "addresses")["postcode"]["data_categories"] == ["user.contact.address.postal_code"]
    assert fields_of(draft, "orders")["customer_id"]["fides_meta"]["references"] == [
        {"dataset": "shop", "field": "customers.id", "direction": "from"}
    ]
    items = fields_of(draft, "order_items")
    assert items["order_id"]["fides_meta"]["primary_key"] and items["line_no"]["fides_meta"] == {"primary_key": True}
    # The billing e-mail is not an identity: only the people table's e-mail is.
    assert "identity" not in fields_of(draft, "orders")["billing_email"].get("fides_meta", {})
    # NOT NULL personal text would refuse NULL: the draft hashes it instead.
    assert draft["gardien"]["collections"]["shop.customers"]["fields"]["email"] == {"erase": "keyed_hash"}

    result = run(runner, "datamap", "validate", str(out))
    assert result.exit_code == 0, result.output
    assert "valid (5 tables, identities: email)" in result.output

    draft["dataset"][0]["collections"][0]["fields"].append({"name": "nickname"})
    out.write_text(yaml.safe_dump(draft))
    result = run(runner, "datamap", "validate", str(out))
    assert result.exit_code == 1
    assert "unknown column 'nickname'" in result.output and "1 problem in" in flat(result.output)


@pytest.mark.usefixtures("cli")
def test_register_access_can_erase_and_erase_from_the_command_line(sqlite_host: Host, tmp_path: Path) -> None:
    runner, host = CliRunner(), sqlite_host
    _, slug = create_org(runner)
    map_file = tmp_path / "shop.yml"
    map_file.write_text(host.map_yaml())
    result = run(runner, "datamap", "register", str(map_file), "--key", "shop", "--org", slug)
    assert result.exit_code == 0 and "shop: version 1 (6 tables)" in result.output, result.output

    package = tmp_path / "ana.zip"
    ana = ["--identity", "email=ana@example.org", "--org", slug]
    result = run(runner, "datamap", "access", "shop", "--out", str(package), *ana)
    assert result.exit_code == 0 and "11 rows from 6 tables" in result.output, result.output
    with zipfile.ZipFile(package) as archive:
        assert "shop.order_items.csv" in archive.namelist()

    result = run(runner, "datamap", "can-erase", "shop", *ana)
    assert result.exit_code == 1 and json.loads(result.output)["holds"][0]["table"] == "shop.invoices"

    result = run(runner, "datamap", "erase", "shop", *ana)
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["counts"]["shop.customers"] == {"deleted": 1, "updated": 0, "held": 0}
    assert [c["id"] for c in host.rows("shop.customers")] == [2, 3]

    result = run(runner, "datamap", "access", "shop", "--out", str(package), "--identity", "ana", "--org", slug)
    assert result.exit_code == 2 and "TYPE=VALUE" in flat(result.output)


@pytest.mark.parametrize(
    ("name", "category"),
    [
        ("email", "user.contact.email"),
        ("contact_email", "user.contact.email"),
        ("mobile_phone", "user.contact.phone_number"),
        ("first_name", "user.name.first"),
        ("zip_code", "user.contact.address.postal_code"),
        ("iban", "user.financial.bank_account"),
        ("last_login_ip", "user.device.ip_address"),
        ("password_hash", "user.authorization.credentials"),
        ("created_at", None),
        ("quantity", None),
    ],
)
def test_categories_from_column_names(name: str, category: str | None) -> None:
    assert category_from_name(name) == category


@pytest.mark.parametrize(
    ("values", "category"),
    [
        (["a@example.org", "b@example.be", "c@example.nl"], "user.contact.email"),
        (["BE68 5390 0754 7034", "FR1420041010050500013M02606", "NL91ABNA0417164300"], "user.financial.bank_account"),
        (["203.0.113.7", "2001:db8::1", "198.51.100.20"], "user.device.ip_address"),
        (["+32 470 12 34 56", "0470123456", "+33 6 12 34 56 78"], "user.contact.phone_number"),
        (["book", "pen", "mug"], None),
        (["a@example.org"], None),  # too few to tell
    ],
)
def test_categories_from_sampled_values(values: list[str], category: str | None) -> None:
    assert category_from_values(values) == category
