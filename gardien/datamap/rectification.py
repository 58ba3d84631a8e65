"""Checks of rectified values (Art. 16) against the map's rules, before anything is written."""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import date
from decimal import Decimal, InvalidOperation
from typing import Any

from email_validator import EmailNotValidError, validate_email

from gardien.core.errors import InvalidInput
from gardien.datamap.mapfile import DataMap, RectifyRule


def _check(rule: RectifyRule, value: Any) -> tuple[Any, str | None]:
    """(the value to write, or why it is refused)."""
    if value is None:
        return (None, None) if rule.nullable else (None, "may not be empty")
    if rule.type in ("string", "email"):
        if not isinstance(value, str):
            return None, "must be a text"
        if rule.max_length is not None and len(value) > rule.max_length:
            return None, f"at most {rule.max_length} characters"
        if rule.pattern is not None and re.fullmatch(rule.pattern, value) is None:
            return None, f"does not match {rule.pattern}"
        if rule.type == "email":
            try:
                validate_email(value, check_deliverability=False)
            except EmailNotValidError as exc:
                return None, f"not an e-mail address: {exc}"
        return value, None
    if rule.type == "boolean":
        return (value, None) if isinstance(value, bool) else (None, "must be true or false")
    if rule.type == "date":
        try:
            return date.fromisoformat(value), None
        except (TypeError, ValueError):
            return None, "must be a date, YYYY-MM-DD"
    number: int | Decimal
    try:
        if isinstance(value, bool) or not isinstance(value, int | float | str):
            raise TypeError
        number = int(value) if rule.type == "integer" else Decimal(str(value))
        if rule.type == "integer" and isinstance(value, float | str) and Decimal(str(value)) != number:
            raise ValueError
        if isinstance(number, Decimal) and not number.is_finite():
            raise ValueError
    except (TypeError, ValueError, InvalidOperation):
        return None, f"must be {'an integer' if rule.type == 'integer' else 'a number'}"
    if rule.minimum is not None and number < Decimal(str(rule.minimum)):
        return None, f"must be at least {rule.minimum}"
    if rule.maximum is not None and number > Decimal(str(rule.maximum)):
        return None, f"must be at most {rule.maximum}"
    return number, None


def check_changes(datamap: DataMap, changes: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """`{"dataset.table.field": value}` → per table the values to write; every refusal at once (422)."""
    errors: list[dict[str, Any]] = []
    out: dict[str, dict[str, Any]] = {}
    if not changes:
        errors.append({"field": "changes", "message": "nothing to rectify", "type": "datamap"})
    for path, value in changes.items():
        where = f"changes.{path}"
        table, _, name = path.rpartition(".")
        spec = datamap.tables.get(table)
        fspec = spec.fields.get(name) if spec is not None else None
        if fspec is None:
            errors.append({"field": where, "message": "no such field in the data map", "type": "datamap"})
            continue
        if fspec.rectify is None:
            errors.append({"field": where, "message": "this field is not rectifiable", "type": "datamap"})
            continue
        checked, why = _check(fspec.rectify, value)
        if why is not None:
            errors.append({"field": where, "message": why, "type": "datamap"})
            continue
        out.setdefault(table, {})[name] = checked
    if errors:
        raise InvalidInput("; ".join(f"{e['field']}: {e['message']}" for e in errors[:5]), errors)
    return out
