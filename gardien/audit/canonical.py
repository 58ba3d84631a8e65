r"""RFC 8785 canonical bytes, fast.

The ``rfc8785`` package is the reference, but costs ~65 µs for a typical event, more than the
whole append budget. For "plain" values, orjson with sorted keys writes the same bytes in ~1.5 µs:
- strings: RFC 8785 escapes exactly as orjson does (short escapes, ``\u00xx`` for other controls,
  everything else as UTF-8);
- keys: sorting by UTF-16 code units differs from orjson's code-point order only when keys hold
  characters at or above U+E000, so such keys are not plain;
- integers within ±(2^53 − 1), booleans, null;
- floats that are finite, not integral and within [1e-4, 1e15) in magnitude: there both write the
  shortest round-trip digits in plain decimal notation. Integral floats (ECMAScript writes ``1``,
  orjson ``1.0``) and exponent forms are written by ``es_number`` below and handed to orjson as
  ready-made fragments, so a money amount of ``1500.0`` costs a few microseconds, not the
  reference's ~65 µs for the whole event.
Keys at or above U+E000, integers beyond ±(2^53 − 1) and anything else go to the reference.
``tests/test_canonical.py`` checks the result against the reference on generated values.
"""

from __future__ import annotations

import math
import re
from typing import Any

import orjson
import rfc8785

MAX_SAFE_INTEGER = 2**53 - 1


class CanonicalError(ValueError):
    """The value has no RFC 8785 form (a NaN, an integer beyond 2^53, a non-string key…)."""


def is_plain(value: Any) -> bool:
    """True when orjson's sorted output is the RFC 8785 form of `value`."""
    kind = type(value)
    if kind is str or value is None or kind is bool:
        return True
    if kind is int:
        return bool(-MAX_SAFE_INTEGER <= value <= MAX_SAFE_INTEGER)
    if kind is float:
        magnitude = abs(value)
        return bool(1e-4 <= magnitude < 1e15 and not value.is_integer())
    if kind is dict:
        for key, item in value.items():
            if type(key) is not str or (key and max(key) >= "\ue000") or not is_plain(item):
                return False
        return True
    if kind is list:
        return all(is_plain(item) for item in value)
    return False


_SURROGATE = re.compile("[\ud800-\udfff]")


def _escape_surrogate(match: re.Match[str]) -> str:
    # A lone surrogate cannot be encoded in the problem answer either: show it as an escape.
    return "\\u" + format(ord(match.group()), "04x")


def first_without_form(value: Any, path: str) -> tuple[str, str] | None:
    """The first member of a free-form value without an RFC 8785 form, as (path, why)."""
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, int):
        return None if -MAX_SAFE_INTEGER <= value <= MAX_SAFE_INTEGER else (path, "integer beyond ±(2^53 − 1)")
    if isinstance(value, float):
        return None if math.isfinite(value) else (path, f"{value} is not a finite number")
    if isinstance(value, str):
        return (path, "string holds a lone surrogate") if _SURROGATE.search(value) else None
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                return f"{path}.{key!r}", "member name is not a string"
            name = _SURROGATE.sub(_escape_surrogate, key)
            where = f"{path}.{name}"
            if name != key:
                # Pydantic would quietly write it as U+FFFD: the ledger would seal another name.
                return where, "member name holds a lone surrogate"
            found = first_without_form(item, where)
            if found:
                return found
        return None
    if isinstance(value, list):
        for index, item in enumerate(value):
            found = first_without_form(item, f"{path}.{index}")
            if found:
                return found
        return None
    return path, f"not a JSON value ({type(value).__name__})"


def es_number(value: float) -> bytes:
    """ECMAScript's Number::toString of a finite double, as RFC 8785 writes numbers (section 3.2.2.3).

    Python's repr gives the same shortest round-trip digits; only their layout differs.
    """
    if value == 0:
        return b"0"  # -0 included
    text = repr(abs(value))
    mantissa, _, exponent = text.partition("e")
    whole, _, fraction = mantissa.partition(".")
    digits = (whole + fraction).lstrip("0")
    # value = 0.digits × 10^n, counting the zeros stripped from the front.
    n = len(whole) - (len(whole + fraction) - len(digits)) + (int(exponent) if exponent else 0)
    digits = digits.rstrip("0")
    k = len(digits)
    if k <= n <= 21:
        out = digits + "0" * (n - k)
    elif 0 < n <= 21:
        out = f"{digits[:n]}.{digits[n:]}"
    elif -6 < n <= 0:
        out = "0." + "0" * -n + digits
    else:
        e = n - 1
        head = digits if k == 1 else f"{digits[0]}.{digits[1:]}"
        out = f"{head}e{'+' if e >= 0 else '-'}{abs(e)}"
    return ("-" + out if value < 0 else out).encode()


class _NoFastForm(Exception):
    pass


def _with_fragments(value: Any) -> Any:
    """`value` with every float orjson would write differently replaced by its RFC 8785 fragment.

    Raises _NoFastForm for what only the reference handles (keys it would order otherwise,
    integers beyond 2^53, other types) and CanonicalError for floats without any JSON form.
    """
    kind = type(value)
    if kind is str or value is None or kind is bool:
        return value
    if kind is int:
        if -MAX_SAFE_INTEGER <= value <= MAX_SAFE_INTEGER:
            return value
        raise _NoFastForm
    if kind is float:
        magnitude = abs(value)
        if 1e-4 <= magnitude < 1e15 and not value.is_integer():
            return value
        if not math.isfinite(value):
            raise CanonicalError(f"{value} is not a finite number")
        return orjson.Fragment(es_number(value))
    if kind is dict:
        out = {}
        for key, item in value.items():
            if type(key) is not str or (key and max(key) >= "\ue000"):
                raise _NoFastForm
            out[key] = _with_fragments(item)
        return out
    if kind is list:
        return [_with_fragments(item) for item in value]
    raise _NoFastForm


def fast_form(value: Any, *, plain: bool) -> Any:
    """`value` as orjson writes it in RFC 8785 form with sorted keys (awkward floats as fragments);
    None when only the reference can write it. `plain` is the answer of is_plain()."""
    if plain:
        return value
    try:
        return _with_fragments(value)
    except _NoFastForm:
        return None


def sorted_orjson(value: Any) -> bytes:
    """orjson with sorted keys: RFC 8785 bytes of a value from fast_form()."""
    try:
        return orjson.dumps(value, option=orjson.OPT_SORT_KEYS)
    except orjson.JSONEncodeError as exc:  # lone surrogates
        raise CanonicalError(str(exc)) from exc


def canonical_bytes(value: Any, *, plain: bool | None = None) -> bytes:
    """RFC 8785 bytes; pass `plain` when the caller already knows the answer of is_plain()."""
    form = fast_form(value, plain=is_plain(value) if plain is None else plain)
    if form is not None:
        return sorted_orjson(form)
    try:
        return rfc8785.dumps(value)
    except (rfc8785.CanonicalizationError, ValueError, TypeError) as exc:
        raise CanonicalError(str(exc) or type(exc).__name__) from exc


def _doubles_for_big_integers(value: Any) -> Any:
    kind = type(value)
    if kind is int and not -MAX_SAFE_INTEGER <= value <= MAX_SAFE_INTEGER:
        return float(value)
    if kind is dict:
        return {key: _doubles_for_big_integers(item) for key, item in value.items()}
    if kind is list:
        return [_doubles_for_big_integers(item) for item in value]
    return value


def recanonicalize(parsed: Any) -> bytes:
    """Canonical bytes of a value parsed back from canonical JSON.

    RFC 8785 writes the double 1e16 as ``10000000000000000``, which a JSON parser reads back as an
    integer beyond 2^53. No integer of that size can enter the ledger, so such a number was a
    double: it becomes one again, and the bytes round-trip.
    """
    try:
        return canonical_bytes(parsed)
    except CanonicalError:
        # Only then walk the value: most events hold no number of that size.
        return canonical_bytes(_doubles_for_big_integers(parsed))
