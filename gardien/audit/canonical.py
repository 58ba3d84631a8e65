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
  orjson ``1.0``) and exponent forms go to the reference.
``tests/test_canonical.py`` checks the two agree on generated values.
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


def canonical_bytes(value: Any, *, plain: bool | None = None) -> bytes:
    """RFC 8785 bytes; pass `plain` when the caller already knows the answer of is_plain()."""
    if plain if plain is not None else is_plain(value):
        try:
            return orjson.dumps(value, option=orjson.OPT_SORT_KEYS)
        except orjson.JSONEncodeError as exc:  # lone surrogates
            raise CanonicalError(str(exc)) from exc
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
