"""Operators applied to rows and to nested JSON: one rule per column or JSON path.

A path is dot-separated: ``email`` is a column, ``context.ip`` a member of a JSON column,
``items.*.email`` every element of a list (or every value of an object). A JSON column stored as
text (SQLite) is parsed, transformed and written back as text. A path that is absent from a row
leaves the row as it is. Rows are not modified in place: the containers along a rule's path are
copied, the rest is shared.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from gardien.privacy.errors import OperatorError
from gardien.privacy.operators import OperatorContext, OperatorSpec, Transform, compile_operator

WILDCARD = "*"
_SEGMENT = re.compile(r"^[A-Za-z0-9_$@\-]{1,128}$|^\*$")


def parse_path(path: str) -> tuple[str, ...]:
    segments = tuple(path.split("."))
    if not path or len(segments) > 16 or not all(_SEGMENT.match(s) for s in segments):
        raise OperatorError(f"invalid path {path!r}: dot-separated names of letters, digits, _ $ @ - or *", field=path)
    return segments


def get_path(record: Any, path: tuple[str, ...]) -> Any:
    """The value at a path without wildcards, or None when it is absent."""
    value = record
    for segment in path:
        if isinstance(value, str) and value[:1] in "{[":
            value = _loads(value)
        if isinstance(value, Mapping):
            value = value.get(segment)
        elif isinstance(value, list) and segment.isdigit() and int(segment) < len(value):
            value = value[int(segment)]
        else:
            return None
    return value


def _loads(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return None


@dataclass(frozen=True)
class FieldRule:
    path: tuple[str, ...]
    transform: Transform


class RecordPolicy:
    """Rules by path, validated once, applied to many rows.

    ``rules`` maps a path to an operator as plain data, e.g.
    ``{"email": {"operator": "hmac", "params": {"domain": "users.email"}},
    "context.ip": {"operator": "truncate_ip"}}``. ``subject_path`` names the field identifying the
    person a row is about, for operators that keep one person's values consistent (date_shift).
    """

    def __init__(self, rules: Mapping[str, OperatorSpec | Mapping[str, Any]], subject_path: str | None = None) -> None:
        self.rules: list[FieldRule] = []
        for path, spec in rules.items():
            segments = parse_path(path)
            try:
                transform = compile_operator(spec)
            except OperatorError as exc:
                raise OperatorError(str(exc), field=f"{path}.{exc.field}" if exc.field else path) from None
            self.rules.append(FieldRule(segments, transform))
        self.subject_path = parse_path(subject_path) if subject_path else None

    def apply(self, record: Mapping[str, Any], context: OperatorContext | None = None) -> dict[str, Any]:
        context = context or OperatorContext()
        if self.subject_path is not None:
            subject = get_path(record, self.subject_path)
            context = context.with_subject(None if subject is None else str(subject))
        result: dict[str, Any] = dict(record)
        for rule in self.rules:
            try:
                result = _rewrite(result, rule.path, rule.transform, context)
            except OperatorError as exc:
                raise OperatorError(f"{'.'.join(rule.path)}: {exc}", field=".".join(rule.path)) from None
        return result

    def apply_rows(
        self, rows: Iterable[Mapping[str, Any]], context: OperatorContext | None = None
    ) -> Iterator[dict[str, Any]]:
        for row in rows:
            yield self.apply(row, context)


def _rewrite(node: Any, path: tuple[str, ...], transform: Transform, context: OperatorContext) -> Any:
    if not path:
        return transform(node, context)
    if isinstance(node, str) and node[:1] in "{[":
        parsed = _loads(node)
        if parsed is None:
            return node
        return json.dumps(_rewrite(parsed, path, transform, context), ensure_ascii=False, separators=(",", ":"))
    head, rest = path[0], path[1:]
    # `type(...) is dict` first: the ABC check alone costs as much as the rest of a step.
    if type(node) is dict or isinstance(node, Mapping):
        keys = list(node) if head == WILDCARD else [head] if head in node else []
        if not keys:
            return node
        copy = dict(node)
        for key in keys:
            copy[key] = _rewrite(node[key], rest, transform, context)
        return copy
    if isinstance(node, list):
        if head == WILDCARD:
            return [_rewrite(item, rest, transform, context) for item in node]
        if head.isdigit() and int(head) < len(node):
            copy_list = list(node)
            copy_list[int(head)] = _rewrite(node[int(head)], rest, transform, context)
            return copy_list
    return node
