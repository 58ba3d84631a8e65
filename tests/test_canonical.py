"""canonical_bytes against the reference RFC 8785 implementation.

canonical.py writes "plain" values with orjson and sends everything else to the ``rfc8785``
package; these tests check, on generated values, that the shortcut never changes a byte.
"""

from __future__ import annotations

import csv
import io
import math
from typing import Any

import orjson
import pytest
import rfc8785
from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import strategies as st

from gardien.audit.canonical import (
    MAX_SAFE_INTEGER,
    CanonicalError,
    _NoFastForm,
    _with_fragments,
    canonical_bytes,
    es_number,
    is_plain,
    recanonicalize,
)
from gardien.audit.export import _csv_cell, _csv_line, _member_bytes

# Characters where the shortcut could go wrong: ASCII controls and escapes, the last BMP
# characters before the surrogates, the private-use area and above (where UTF-16 order and
# code-point order part ways), non-BMP characters, and lone surrogates (no UTF-8 form).
_TRICKY = st.sampled_from(
    [
        "\x00",
        "\x08",
        "\t",
        "\n",
        "\x0b",
        "\x0c",
        "\r",
        "\x1f",
        " ",
        '"',
        "\\",
        "/",
        "\x7f",
        "\x80",
        "\u2028",
        "\u2029",
        "\ud7ff",
        "\ue000",
        "\uf8ff",
        "\ufb01",
        "\ufeff",
        "\uffff",
        "\U00010000",
        "\U0001f600",
        "\U0010ffff",
        "a",
        "b",
        "é",
    ]
)
_CHARS = st.one_of(
    _TRICKY,
    st.characters(codec="utf-8"),
    st.characters(min_codepoint=0xE000, max_codepoint=0xFFFF),
    st.characters(min_codepoint=0x10000, max_codepoint=0x10FFFF),
)
TEXT = st.text(_CHARS, max_size=8)
# Lone surrogates are rare on purpose: a value holding one has no canonical form at all.
TEXT_OR_SURROGATE = st.one_of(
    TEXT, st.text(st.characters(min_codepoint=0xD800, max_codepoint=0xDFFF), min_size=1, max_size=2)
)

_EDGE_INTS = [
    0,
    1,
    -1,
    MAX_SAFE_INTEGER,
    -MAX_SAFE_INTEGER,
    MAX_SAFE_INTEGER + 1,
    -MAX_SAFE_INTEGER - 1,
    2**53 + 1,
    2**63,
    -(2**63) - 1,
    2**64,
]
INTS = st.one_of(
    st.sampled_from(_EDGE_INTS),
    st.integers(min_value=-MAX_SAFE_INTEGER - 2, max_value=MAX_SAFE_INTEGER + 2),
    st.integers(),
)

_EDGE_FLOATS = [
    0.0,
    -0.0,
    1.0,
    -1.0,
    0.5,
    1e-4,
    -1e-4,
    9.999999999999999e-05,
    1.0000000000000001e-4,
    1e-6,
    1e-7,
    1.5e-7,
    999999999999999.9,
    1e15,
    1e15 + 0.5,
    1e16,
    1e21,
    1e22,
    2.0**53,
    2.0**53 + 2,
    -(2.0**53),
    123456789012345.67,
    0.1 + 0.2,
    5e-324,
    2.2250738585072014e-308,
    1.7976931348623157e308,
    -1.7976931348623157e308,
    math.inf,
    -math.inf,
    math.nan,
]
FLOATS = st.one_of(
    st.sampled_from(_EDGE_FLOATS),
    st.floats(allow_nan=True, allow_infinity=True),
    st.floats(min_value=1e-5, max_value=1e16),
    st.floats(min_value=-1e16, max_value=-1e-5),
    st.integers(min_value=-(2**60), max_value=2**60).map(float),
    st.floats(min_value=1e-330, max_value=1e-3),
)

SCALARS = st.one_of(st.none(), st.booleans(), INTS, FLOATS, TEXT_OR_SURROGATE)
KEYS = st.one_of(TEXT, st.sampled_from(["", "a", "A", "\ue000", "\U00010000", "\uffff", "\ud7ff"]))
JSON = st.recursive(
    SCALARS,
    lambda children: st.one_of(
        st.lists(children, max_size=5),
        st.dictionaries(KEYS, children, max_size=6),
    ),
    max_leaves=30,
)


def _reference(value: Any) -> bytes | None:
    """The RFC 8785 reference bytes, or None when the reference refuses the value."""
    try:
        return rfc8785.dumps(value)  # type: ignore[no-any-return]
    except (rfc8785.CanonicalizationError, ValueError):
        return None


@settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(JSON)
@example({"\ue000": 1, "\U00010000": 2})
@example({"a": {"\uffff": [1.5, -0.0], "\U0001f600": "x"}})
@example([0.0001, 1e-7, 1e21, 2.0**53, -0.0])
@example({"s": "\x00\x1f\x7f\u2028\ud7ff"})
def test_canonical_bytes_match_the_reference(value: Any) -> None:
    expected = _reference(value)
    if expected is None:
        with pytest.raises(CanonicalError):
            canonical_bytes(value)
    else:
        assert canonical_bytes(value) == expected


@settings(max_examples=500, deadline=None)
@given(JSON)
def test_plain_values_take_the_fast_path_without_changing_bytes(value: Any) -> None:
    """Pin the fast path itself: forced plain=True must still give the reference bytes."""
    if not is_plain(value):
        return
    expected = _reference(value)
    if expected is None:
        with pytest.raises(CanonicalError):
            canonical_bytes(value, plain=True)
    else:
        assert canonical_bytes(value, plain=True) == expected


@pytest.mark.parametrize(
    "value",
    [
        math.nan,
        math.inf,
        -math.inf,
        {"fee": math.nan},
        [1, [math.inf]],
        2**53,
        -(2**53),
        2**53 + 1,
        2**64,
        {"n": -(2**60)},
        "\ud800",
        {"\udfff": 1},
    ],
    ids=repr,
)
def test_values_without_a_canonical_form_are_refused(value: Any) -> None:
    with pytest.raises(CanonicalError):
        canonical_bytes(value)


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf, 2**53, -(2**53), 1e15, 1.0, -0.0], ids=repr)
def test_values_the_fast_path_cannot_write_are_not_plain(value: Any) -> None:
    assert not is_plain(value)
    assert not is_plain({"fields": [value]})


def test_lone_surrogate_is_refused_on_the_fast_path() -> None:
    value = {"reason": "\ud800"}
    assert is_plain(value)
    with pytest.raises(CanonicalError):
        canonical_bytes(value)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (MAX_SAFE_INTEGER, b"9007199254740991"),
        (-MAX_SAFE_INTEGER, b"-9007199254740991"),
        (1.0, b"1"),
        (-0.0, b"0"),
        (2.0**53, b"9007199254740992"),
        (1e21, b"1e+21"),
        (1e-7, b"1e-7"),
        (0.000001, b"0.000001"),
        (123.456, b"123.456"),
        ({"b": 1, "a": [True, None]}, b'{"a":[true,null],"b":1}'),
        # Sorted by UTF-16 code units: U+10000 (D800 DC00) comes before U+E000.
        ({"\ue000": 1, "\U00010000": 2}, '{"\U00010000":2,"\ue000":1}'.encode()),
        ('\x00\x08\t\n\x0c\r\x1f"\\\x7f', b'"\\u0000\\b\\t\\n\\f\\r\\u001f\\"\\\\\x7f"'),
    ],
    ids=repr,
)
def test_known_canonical_forms(value: Any, expected: bytes) -> None:
    assert canonical_bytes(value) == expected


@settings(max_examples=500, deadline=None)
@given(JSON, JSON)
@example({"before": 1e20}, {"n": 1.0, "m": [1e16, 0.5]})
def test_an_exported_member_is_cut_from_the_event_bytes_exactly_as_the_reference_writes_it(
    changes: Any, fields: Any
) -> None:
    # CSV exports take a member's canonical bytes from the event's own bytes when orjson's guess
    # is found there; the result must be the reference's, whatever the values hold.
    event = {"action": "a", "changes": changes, "crud": "read", "fields": fields, "fields2": [fields]}
    reference = _reference(event)
    assume(reference is not None)
    assert reference is not None
    parsed = orjson.loads(reference)
    for name in ("changes", "fields"):
        assert _member_bytes(reference, name.encode(), parsed[name]) == recanonicalize(parsed[name])


@given(st.text(st.sampled_from(['"', ",", "\r", "\n", " ", "a", "é", ";", "'"]), max_size=12))
def test_csv_cells_are_written_as_the_csv_module_writes_them(text: str) -> None:
    expected = io.StringIO()
    csv.writer(expected, lineterminator="\r\n").writerow([text, "x"])
    assert f"{_csv_cell(text)},x\r\n" == expected.getvalue()


_CSV_TEXT = st.text(st.sampled_from(['"', ",", "\r", "\n", " ", "a", "é", ";"]), max_size=6)


@settings(max_examples=300, deadline=None)
@given(
    reason=st.none() | _CSV_TEXT,
    display=st.none() | _CSV_TEXT,
    agent=st.none() | _CSV_TEXT,
    target=st.booleans(),
    categories=st.lists(st.sampled_from(["user.contact", "user.financial"]), max_size=2),
    changes=st.none() | st.dictionaries(_CSV_TEXT, st.integers(-5, 5) | _CSV_TEXT, max_size=3),
    fields=st.none() | st.dictionaries(_CSV_TEXT, _CSV_TEXT, max_size=2),
)
def test_a_csv_row_is_what_the_csv_module_writes(
    reason: str | None,
    display: str | None,
    agent: str | None,
    target: bool,
    categories: list[str],
    changes: dict[str, Any] | None,
    fields: dict[str, Any] | None,
) -> None:
    # The export writes rows without the csv module (one quoting test for the plain cells);
    # the bytes must be the module's all the same, quotes, commas and line breaks included.
    doc: dict[str, Any] = {
        "schema": "gardien.audit/v1",
        "id": "0193-id",
        "org": "org-1",
        "seq": 7,
        "occurred_at": "2026-12-05T10:00:00.000001Z",
        "recorded_at": "2026-12-05T10:00:01.000002Z",
        "module": "crm",
        "action": "contact.update",
        "crud": "update",
        "outcome": "failure",
        "actor": {"type": "user", "id": "u-1"},
    }
    optional = {
        "reason": reason,
        "changes": changes,
        "fields": fields,
        "data_categories": categories or None,
        "source": None if agent is None else {"ip": "203.0.113.9", "user_agent": agent},
        "target": {"type": "contact", "id": "c-1", "display": display} if target and display is not None else None,
    }
    doc.update({name: value for name, value in optional.items() if value is not None})
    if display is not None:
        doc["actor"]["display"] = display
    data = canonical_bytes(doc)
    leaf = bytes(range(32))
    target_doc = doc.get("target", {})
    source_doc = doc.get("source", {})
    row = [
        7,
        doc["id"],
        doc["occurred_at"],
        doc["recorded_at"],
        "crm",
        "contact.update",
        "update",
        "failure",
        doc.get("reason", ""),
        "user",
        "u-1",
        doc["actor"].get("display", ""),
        target_doc.get("type", ""),
        target_doc.get("id", ""),
        target_doc.get("display", ""),
        source_doc.get("ip", ""),
        source_doc.get("user_agent", ""),
        "",
        "",
        ";".join(categories),
        "" if changes is None else canonical_bytes(changes).decode(),
        "" if fields is None else canonical_bytes(fields).decode(),
        leaf.hex(),
    ]
    expected = io.StringIO()
    csv.writer(expected, lineterminator="\r\n").writerow(row)
    assert _csv_line(data, leaf) == expected.getvalue()


@settings(max_examples=3000, deadline=None)
@given(st.floats(allow_nan=False, allow_infinity=False))
@example(1e21)
@example(1e-7)
@example(9.999999999999999e20)
@example(1.0000000000000001e-6)
@example(5e-324)
def test_es_number_writes_every_finite_double_as_the_reference(value: float) -> None:
    assert es_number(value) == rfc8785.dumps(value)


@pytest.mark.parametrize(
    "value",
    [
        {"deposit": 1500.0, "rate": 2.5e-05, "n": [1e21, -0.0, 1e-7, 0.5], "s": "x"},
        [{"a": 1e16}, 2.0**53, -(2.0**60)],
    ],
    ids=repr,
)
def test_awkward_floats_are_written_without_the_reference(value: Any) -> None:
    # Not plain, yet every float has a fragment: no detour through the slow reference.
    assert not is_plain(value)
    assert orjson.dumps(_with_fragments(value), option=orjson.OPT_SORT_KEYS) == rfc8785.dumps(value)
    assert canonical_bytes(value) == rfc8785.dumps(value)


@pytest.mark.parametrize("value", [{"\ue000": 1.0}, [2**53, 1.0], {"t": (1.0,)}], ids=repr)
def test_what_only_the_reference_orders_or_refuses_is_left_to_it(value: Any) -> None:
    with pytest.raises(_NoFastForm):
        _with_fragments(value)
