"""The privacy operators as a library: pseudonyms, masking, generalisation, dates, rows, JSON paths, k-anonymity."""

from __future__ import annotations

import hashlib
import ipaddress
import json
import subprocess
import sys
from datetime import date, datetime
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gardien.core.keyring import Keyring
from gardien.privacy.anonymity import NotAnonymous, k_anonymity, l_diversity, measure, require_anonymous
from gardien.privacy.operators import (
    OPERATORS,
    KeyedPseudonym,
    OperatorContext,
    OperatorError,
    apply,
    compile_operator,
    reidentify,
)
from gardien.privacy.records import RecordPolicy


@pytest.fixture
def keyring(tmp_path: Path) -> Keyring:
    return Keyring.open(tmp_path / "keys", "privacy.test")


@pytest.fixture
def ctx(keyring: Keyring) -> OperatorContext:
    return OperatorContext(keys=keyring, scope="org-a")


def test_library_modules_import_no_database_code() -> None:
    code = (
        "import sys\n"
        "import gardien.privacy.operators, gardien.privacy.records, gardien.privacy.anonymity\n"
        "import gardien.privacy.detect, gardien.privacy.redact, gardien.privacy.logs, gardien.privacy.cli\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in {'sqlalchemy', 'psycopg', 'alembic', 'fastapi'}"
        " or m in {'gardien.core.db', 'gardien.audit.service'})\n"
        "print(bad)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"


def test_every_operator_is_registered_by_name() -> None:
    assert {
        "truncate_ip",
        "hmac",
        "encrypt",
        "mask",
        "null",
        "replace",
        "age_range",
        "birth_year",
        "fr_department",
        "be_province",
        "date_shift",
    } <= set(OPERATORS)


def test_keyed_pseudonym_is_stable_keyed_and_not_a_bare_hash(ctx: OperatorContext, keyring: Keyring) -> None:
    email = "jean.dupont@example.fr"
    first = apply("hmac", email, ctx, domain="users.email")
    assert first == apply("hmac", email, ctx, domain="users.email")
    kid, _, digest = first.partition(":")
    assert kid == keyring.active("hmac").kid
    assert len(digest) == 32
    assert digest not in hashlib.sha256(email.encode()).hexdigest()
    # Another domain, another organisation: unrelated pseudonyms.
    assert apply("hmac", email, ctx, domain="orders.email") != first
    assert apply("hmac", email, OperatorContext(keys=keyring, scope="org-b"), domain="users.email") != first


def test_keyed_pseudonym_normalisation_and_length(ctx: OperatorContext) -> None:
    a = apply("hmac", " Jean.Dupont@Example.FR ", ctx, normalize="casefold", with_key_id=False, length=16)
    b = apply("hmac", "jean.dupont@example.fr", ctx, normalize="casefold", with_key_id=False, length=16)
    assert a == b
    assert len(a) == 16
    assert apply("hmac", "Jean", ctx) != apply("hmac", "jean", ctx)


def test_keyed_pseudonym_rotation_keeps_old_forms_findable(ctx: OperatorContext, keyring: Keyring) -> None:
    before = apply("hmac", "user-42", ctx)
    keyring.rotate("hmac")
    after = apply("hmac", "user-42", ctx)
    assert before != after
    assert after.startswith(keyring.active("hmac").kid + ":")
    forms = KeyedPseudonym().every_form("user-42", KeyedPseudonym().validate({}), ctx)
    assert before in forms
    assert after in forms
    # A pinned key id keeps the old pseudonym.
    assert apply("hmac", "user-42", ctx, key_id=before.split(":")[0]) == before


def test_keyed_pseudonym_needs_keys() -> None:
    with pytest.raises(OperatorError, match="keys"):
        apply("hmac", "x")


def test_reversible_pseudonym_round_trip_bound_to_scope_and_domain(ctx: OperatorContext, keyring: Keyring) -> None:
    token = apply("encrypt", "jean.dupont@example.fr", ctx, domain="users.email")
    assert token == apply("encrypt", "jean.dupont@example.fr", ctx, domain="users.email")  # deterministic
    assert "jean" not in token
    assert reidentify(token, "users.email", ctx) == "jean.dupont@example.fr"
    with pytest.raises(OperatorError):
        reidentify(token, "orders.email", ctx)
    with pytest.raises(OperatorError):
        reidentify(token, "users.email", OperatorContext(keys=keyring, scope="org-b"))
    tampered = token[:-2] + ("A" if token[-2] != "A" else "B") + token[-1]
    with pytest.raises(OperatorError):
        reidentify(tampered, "users.email", ctx)
    with pytest.raises(OperatorError):
        reidentify("no-such-key:AAAA", "users.email", ctx)


def test_reversible_pseudonym_survives_rotation(ctx: OperatorContext, keyring: Keyring) -> None:
    token = apply("encrypt", "u-1", ctx)
    keyring.rotate("encryption")
    assert apply("encrypt", "u-1", ctx) != token
    assert reidentify(token, "default", ctx) == "u-1"


@pytest.mark.parametrize(
    ("value", "params", "expected"),
    [
        ("0612345678", {"keep_end": 2}, "********78"),
        ("4111111111111111", {"keep_start": 4, "keep_end": 4}, "4111********1111"),
        ("jean@example.fr", {"keep_start": 1, "keep_chars": "@."}, "j***@*******.**"),
        ("abc", {"keep_start": 5}, "abc"),
        ("secret", {"char": "#"}, "######"),
    ],
)
def test_mask(value: str, params: dict[str, object], expected: str) -> None:
    assert apply("mask", value, **params) == expected


def test_null_replace_and_none_passes_through() -> None:
    assert apply("null", "x") is None
    assert apply("replace", "x") == "[REDACTED]"
    assert apply("replace", "x", value=0) == 0
    assert apply("mask", None) is None


def test_generalisation_operators() -> None:
    assert apply("age_range", 37) == "30-39"
    assert apply("age_range", "93") == "90+"
    assert apply("birth_year", "1985-07-30") == 1985
    assert apply("birth_year", date(1985, 7, 30), as_date=True) == date(1985, 1, 1)
    assert apply("birth_year", "1985-07-30", as_date=True) == "1985-01-01"
    assert apply("fr_department", "20169") == "2A"
    assert apply("be_province", "9000") == "BE-VOV"
    assert apply("be_province", "9000", output="name") == "East Flanders"


def test_date_shift_fixed_and_keyed_per_subject(ctx: OperatorContext) -> None:
    assert apply("date_shift", "2024-03-01", days=-1) == "2024-02-29"
    assert apply("date_shift", date(2024, 3, 1), days=30) == date(2024, 3, 31)
    assert apply("date_shift", "2024-03-01T10:00:00+00:00", days=1) == "2024-03-02T10:00:00+00:00"
    shift = compile_operator({"operator": "date_shift", "params": {"max_days": 30}})
    alice = ctx.with_subject("alice")
    a1, a2 = shift(date(2024, 1, 1), alice), shift(date(2024, 6, 1), alice)
    assert (a2 - a1).days == (date(2024, 6, 1) - date(2024, 1, 1)).days  # intervals survive
    assert abs((a1 - date(2024, 1, 1)).days) <= 30
    offsets = {(shift(date(2024, 1, 1), ctx.with_subject(f"s{i}")) - date(2024, 1, 1)).days for i in range(40)}
    assert len(offsets) > 10  # subjects get different offsets
    with pytest.raises(OperatorError, match="subject"):
        shift(date(2024, 1, 1), ctx)


@pytest.mark.parametrize(
    ("spec", "field"),
    [
        ({"operator": "truncate_ip", "params": {"v4_prefix": 33}}, "params.v4_prefix"),
        ({"operator": "truncate_ip", "params": {"v5_prefix": 1}}, "params.v5_prefix"),
        ({"operator": "hmac", "params": {"length": 8}}, "params.length"),
        ({"operator": "mask", "params": {"char": "**"}}, "params.char"),
        ({"operator": "nope"}, "operator"),
        ({"operator": "hmac", "params": {"domain": "a b"}}, "params.domain"),
    ],
)
def test_invalid_parameters_are_refused_with_their_field(spec: dict[str, object], field: str) -> None:
    with pytest.raises(OperatorError) as caught:
        compile_operator(spec)
    assert caught.value.field == field


def test_on_invalid_null_writes_null_instead_of_failing() -> None:
    strict = compile_operator({"operator": "truncate_ip"})
    lenient = compile_operator({"operator": "truncate_ip", "on_invalid": "null"})
    with pytest.raises(OperatorError):
        strict("not an ip", OperatorContext())
    assert lenient("not an ip", OperatorContext()) is None


def test_record_policy_on_columns_and_nested_json(ctx: OperatorContext) -> None:
    policy = RecordPolicy(
        {
            "email": {"operator": "hmac", "params": {"domain": "users.email", "normalize": "casefold"}},
            "context.ip": {"operator": "truncate_ip"},
            "card.user_id": {"operator": "encrypt", "params": {"domain": "card.user_id"}},
            "payload": {"operator": "null"},
            "items.*.postcode": {"operator": "fr_department"},
            "absent.path": {"operator": "null"},
        }
    )
    row = {
        "id": 7,
        "email": "Jean@Example.fr",
        "context": {"ip": "192.0.2.77", "ua": "Firefox"},
        "card": json.dumps({"user_id": "u-42", "brand": "visa"}),  # a JSON column stored as text
        "payload": {"anything": 1},
        "items": [{"postcode": "75011"}, {"postcode": "20200"}],
    }
    out = policy.apply(row, ctx)
    assert out["id"] == 7
    assert out["email"] == apply("hmac", "jean@example.fr", ctx, domain="users.email")
    assert out["context"] == {"ip": "192.0.2.0", "ua": "Firefox"}
    card = json.loads(out["card"])
    assert card["brand"] == "visa"
    assert reidentify(card["user_id"], "card.user_id", ctx) == "u-42"
    assert out["payload"] is None
    assert out["items"] == [{"postcode": "75"}, {"postcode": "2B"}]
    assert "absent" not in out
    # The input row is untouched.
    assert row["context"] == {"ip": "192.0.2.77", "ua": "Firefox"}
    assert row["items"][0] == {"postcode": "75011"}


def test_record_policy_names_the_failing_path() -> None:
    with pytest.raises(OperatorError) as caught:
        RecordPolicy({"context.ip": {"operator": "truncate_ip", "params": {"v4_prefix": 40}}})
    assert caught.value.field == "context.ip.params.v4_prefix"
    with pytest.raises(OperatorError) as caught:
        RecordPolicy({"context..ip": {"operator": "null"}})
    policy = RecordPolicy({"context.ip": {"operator": "truncate_ip"}})
    with pytest.raises(OperatorError) as caught:
        policy.apply({"context": {"ip": "bogus"}})
    assert caught.value.field == "context.ip"


def test_date_shift_per_row_subject(ctx: OperatorContext) -> None:
    policy = RecordPolicy({"signup": {"operator": "date_shift", "params": {"max_days": 60}}}, subject_path="user.id")
    rows = [
        {"user": {"id": "alice"}, "signup": "2024-01-10"},
        {"user": {"id": "alice"}, "signup": "2024-01-20"},
        {"user": {"id": "bob"}, "signup": "2024-01-10"},
    ]
    a1, a2, _ = (datetime.fromisoformat(r["signup"]) for r in policy.apply_rows(rows, ctx))
    assert (a2 - a1).days == 10


# Sweeney's example shape: 3 quasi-identifiers, two classes of 2 and one of 1.
TABLE = [
    {"age": "30-39", "zip": "75", "sex": "F", "diagnosis": "flu"},
    {"age": "30-39", "zip": "75", "sex": "F", "diagnosis": "asthma"},
    {"age": "40-49", "zip": "2A", "sex": "M", "diagnosis": "flu"},
    {"age": "40-49", "zip": "2A", "sex": "M", "diagnosis": "flu"},
    {"age": "50-59", "zip": "971", "sex": "F", "diagnosis": "diabetes"},
]
QI = ["age", "zip", "sex"]


def test_k_anonymity_and_l_diversity() -> None:
    assert k_anonymity(TABLE, QI) == 1
    assert k_anonymity(TABLE[:4], QI) == 2
    assert k_anonymity(TABLE, ["sex"]) == 2
    assert l_diversity(TABLE[:4], QI, "diagnosis") == 1
    assert l_diversity(TABLE[:2], QI, "diagnosis") == 2
    report = measure(iter(TABLE), QI, "diagnosis")  # any iterable, read once
    assert (report.rows, report.classes, report.k, report.l) == (5, 3, 1, 1)


def test_require_anonymous_refuses_and_names_the_groups() -> None:
    with pytest.raises(NotAnonymous) as caught:
        require_anonymous(TABLE, QI, k=2)
    report = caught.value.report
    assert [g.values for g in report.offending] == [{"age": "50-59", "zip": "971", "sex": "F"}]
    assert report.offending[0].size == 1
    assert "971" in str(caught.value)
    assert require_anonymous(TABLE[:4], QI, k=2).k == 2
    with pytest.raises(NotAnonymous) as caught:
        require_anonymous(TABLE[:4], QI, k=2, sensitive="diagnosis", l=2)
    assert [g.values["zip"] for g in caught.value.report.offending] == ["2A"]
    assert require_anonymous([], QI, k=5).rows == 0


def test_generalising_then_checking_k(ctx: OperatorContext) -> None:
    raw = [{"age": a, "postcode": p} for a, p in [(31, "75011"), (38, "75019"), (42, "20000"), (47, "20137")]]
    assert k_anonymity(raw, ["age", "postcode"]) == 1
    policy = RecordPolicy({"age": {"operator": "age_range"}, "postcode": {"operator": "fr_department"}})
    assert k_anonymity(policy.apply_rows(raw, ctx), ["age", "postcode"]) == 2


def _by_ipaddress(text: str, prefix: int) -> str | None:
    try:
        address = ipaddress.IPv4Address(text)
    except ValueError:
        return None
    return str(ipaddress.ip_network((address, prefix), strict=False).network_address)


octets = st.one_of(
    st.integers(0, 300).map(str),
    st.sampled_from(["00", "01", "007", "255", "256", "1000", "", "+1", "-1", " 1", "١", "²", "0x1"]),
)


@given(st.lists(octets, min_size=3, max_size=5).map(".".join), st.integers(0, 32))
def test_dotted_quads_truncate_exactly_as_ipaddress_says(text: str, prefix: int) -> None:
    expected = _by_ipaddress(text, prefix)
    if expected is None:
        with pytest.raises(OperatorError):
            apply("truncate_ip", text, v4_prefix=prefix)
    else:
        assert apply("truncate_ip", text, v4_prefix=prefix) == expected
