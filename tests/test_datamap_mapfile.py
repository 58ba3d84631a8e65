"""The map file: fideslang datasets read unchanged, Gardien's additions, and every problem with its path."""

from __future__ import annotations

import pytest

from gardien.datamap.mapfile import Edge, MapInvalid, Strategy, load_map

# Verbatim from Fides' sample project (shared/reference/fides.md §2), data_type members included.
FIDES_DATASET = """\
dataset:
  - fides_key: postgres_example_test_dataset
    collections:
      - name: customer
        fields:
          - name: address_id
            data_categories: [system.operations]
            fides_meta:
              references:
                - {dataset: postgres_example_test_dataset, field: address.id, direction: to}
          - name: email
            data_categories: [user.contact.email]
            fides_meta: {identity: email, data_type: string}
          - name: id
            data_categories: [user.unique_id]
            fides_meta: {primary_key: True}
      - name: orders
        fields:
          - name: customer_id
            data_categories: [user.unique_id]
            fides_meta:
              references:
                - {dataset: postgres_example_test_dataset, field: customer.id, direction: from}
      - name: address
        fidesops_meta: {masking_strategy_override: {strategy: delete}}
        fields:
          - name: id
            fidesops_meta: {primary_key: true}
          - name: street
            data_categories: [user.contact.address.street]
            fides_meta: {masking_strategy_override: {strategy: hmac, configuration: {algorithm: SHA-256}}}
"""
STORES = """
gardien:
  stores:
    postgres_example_test_dataset: {url_env: SHOP_DATABASE_URL}
"""


def problems(text: str) -> list[tuple[str, str]]:
    with pytest.raises(MapInvalid) as caught:
        load_map(text)
    return [(i.path, i.message) for i in caught.value.issues]


def test_a_fides_dataset_is_read_unchanged() -> None:
    datamap = load_map(FIDES_DATASET + STORES)
    ds = "postgres_example_test_dataset"
    assert sorted(datamap.tables) == [f"{ds}.address", f"{ds}.customer", f"{ds}.orders"]
    assert datamap.identities == {"email": [(f"{ds}.customer", "email")]}
    assert set(datamap.edges) == {
        Edge((f"{ds}.customer", "address_id"), (f"{ds}.address", "id")),
        Edge((f"{ds}.customer", "id"), (f"{ds}.orders", "customer_id")),
    }
    address = datamap.tables[f"{ds}.address"]
    assert address.delete_rows and address.primary_key == ("id",)
    assert address.fields["street"].erase is Strategy.KEYED_HASH
    customer = datamap.tables[f"{ds}.customer"].fields
    # No strategy named: personal fields are nulled, others kept, keys kept.
    assert customer["email"].strategy(held=False, delete_rows=False) is Strategy.NULL
    assert customer["address_id"].strategy(held=False, delete_rows=False) is Strategy.KEEP
    assert customer["id"].strategy(held=False, delete_rows=False) is Strategy.KEEP


def test_without_a_store_the_dataset_is_refused_clearly() -> None:
    assert problems(FIDES_DATASET) == [
        (
            "dataset.0",
            "no store for dataset 'postgres_example_test_dataset': add gardien.stores.postgres_example_test_dataset",
        )
    ]


def test_references_to_nowhere_name_their_place() -> None:
    text = FIDES_DATASET.replace("field: address.id", "field: adress.id").replace(
        "field: customer.id", "field: customer.uid"
    )
    assert problems(text + STORES) == [
        (
            "dataset.0.collections.0.fields.0.fides_meta.references.0.field",
            "reference to nowhere: no table 'postgres_example_test_dataset.adress' in the datasets",
        ),
        (
            "dataset.0.collections.1.fields.0.fides_meta.references.0.field",
            "reference to nowhere: postgres_example_test_dataset.customer declares no field 'uid'",
        ),
        (
            "dataset.0.collections.1",
            "table postgres_example_test_dataset.orders is reached by no identity: "
            "add an identity or a reference that leads to it",
        ),
        (
            "dataset.0.collections.2",
            "table postgres_example_test_dataset.address is reached by no identity: "
            "add an identity or a reference that leads to it",
        ),
    ]


def test_a_map_without_identity_finds_nobody() -> None:
    text = FIDES_DATASET.replace("{identity: email, data_type: string}", "{data_type: string}")
    assert problems(text + STORES)[0] == (
        "dataset",
        "no field is an identity (fides_meta.identity): the map finds nobody",
    )


def test_gardien_options_are_checked_strictly() -> None:
    extra = """
  collections:
    postgres_example_test_dataset.customer:
      fields:
        email: {erase: scramble}
        id: {erase: "null"}
    postgres_example_test_dataset.orders:
      fields:
        customer_id: {erase: keep_under_hold}
    postgres_example_test_dataset.nowhere: {}
  recipients:
    - {name: X, tables: [postgres_example_test_dataset.nope]}
"""
    found = problems(FIDES_DATASET + STORES + extra)
    assert found[0][0] == "gardien.collections.postgres_example_test_dataset.customer.fields.email.erase"
    assert "delete" in found[0][1] and "keep_under_hold" in found[0][1]
    fixed = extra.replace("{erase: scramble}", "{erase: random}")
    assert problems(FIDES_DATASET + STORES + fixed) == [
        (
            "gardien.collections.postgres_example_test_dataset.customer.fields.id.erase",
            "a primary key holds the rows together: keep it, or delete the rows",
        ),
        (
            "gardien.collections.postgres_example_test_dataset.orders.fields.customer_id.erase",
            "keep_under_hold needs a hold on the table (gardien.collections.<table>.hold)",
        ),
        (
            "gardien.collections.postgres_example_test_dataset.nowhere",
            "no table 'postgres_example_test_dataset.nowhere' in the datasets",
        ),
        ("gardien.recipients.0.tables.0", "no table 'postgres_example_test_dataset.nope' in the datasets"),
    ]


def test_unsupported_fides_strategies_are_named() -> None:
    text = FIDES_DATASET.replace("strategy: hmac, configuration: {algorithm: SHA-256}", "strategy: aes_encrypt")
    [(path, message)] = problems(text + STORES)
    assert path == "dataset.0.collections.2.fields.1.fides_meta.masking_strategy_override.strategy"
    assert message.startswith("strategy 'aes_encrypt' is not supported here")


@pytest.mark.parametrize(
    ("text", "path", "message"),
    [
        ("dataset: []\nname: a: b\n", "line 2, column 8", "not YAML: mapping values are not allowed here"),
        ("- 1\n- 2\n", "dataset", "a data map is a mapping"),
        ("a: &x [1]\nb: *x\n", "line 2, column 4", "aliases (*name) are not accepted"),
        ("dataset: " + "[" * 5000 + "]" * 5000, "document", "nested too deeply"),
        (
            FIDES_DATASET + "\ngardien:\n  stores:\n    postgres_example_test_dataset: {}\n",
            "gardien.stores",
            "exactly one",
        ),
        (FIDES_DATASET + "\ngardien:\n  store: {}\n", "gardien.store", "Extra inputs are not permitted"),
        (
            FIDES_DATASET + "\ngardien:\n  stores:\n    postgres_example_test_dataset: {url: 'no url'}\n",
            "gardien.stores",
            "not a database URL",
        ),
    ],
)
def test_shape_errors(text: str, path: str, message: str) -> None:
    [(found_path, found_message), *_] = problems(text)
    assert found_path.startswith(path) and message in found_message
