"""k-anonymity and ℓ-diversity of a table over chosen quasi-identifiers.

k is the size of the smallest equivalence class: the rows sharing one combination of
quasi-identifier values (Sweeney 2002). Distinct ℓ-diversity is the smallest number of distinct
sensitive values within a class (Machanavajjhala et al. 2007). Both are a ``GROUP BY`` of the
quasi-identifiers, computed here in one pass over any iterable of rows; the definitions and names
follow pyCANON's ``k_anonymity`` and ``l_diversity``.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from gardien.privacy.errors import OperatorError
from gardien.privacy.records import get_path, parse_path

MAX_NAMED_GROUPS = 100


@dataclass(frozen=True)
class Group:
    """One equivalence class: its quasi-identifier values, its size and its distinct sensitive values."""

    values: dict[str, Any]
    size: int
    distinct_sensitive: int | None = None


@dataclass(frozen=True)
class AnonymityReport:
    rows: int
    classes: int
    k: int
    l: int | None  # noqa: E741 - the letter the literature uses
    quasi_identifiers: tuple[str, ...]
    sensitive: str | None
    offending: list[Group] = field(default_factory=list)  # classes below the required k or ℓ, smallest first
    offending_total: int = 0  # all of them, when more than MAX_NAMED_GROUPS are named


class NotAnonymous(OperatorError):
    """The table is below the required k (or ℓ); ``report.offending`` names the groups."""

    def __init__(self, report: AnonymityReport, k: int, l: int | None) -> None:  # noqa: E741
        worst = report.offending[0] if report.offending else None
        requirement = f"k ≥ {k}" + (f" and ℓ ≥ {l}" if l else "")
        detail = f"{report.offending_total} of {report.classes} groups fall short of {requirement} (k = {report.k}"
        detail += f", ℓ = {report.l})" if report.l is not None else ")"
        if worst is not None:
            detail += f"; smallest: {worst.values} with {worst.size} row(s)"
        super().__init__(detail, "quasi_identifiers")
        self.report = report


def _hashable(value: Any) -> Any:
    if isinstance(value, (dict, list)):
        return json.dumps(value, sort_keys=True, ensure_ascii=False, default=str)
    return value


def measure(
    rows: Iterable[Mapping[str, Any]],
    quasi_identifiers: Sequence[str],
    sensitive: str | None = None,
    *,
    k: int = 1,
    l: int | None = None,  # noqa: E741
) -> AnonymityReport:
    """k (and ℓ, when a sensitive attribute is named) of the rows; ``offending`` lists classes below k or ℓ."""
    if not quasi_identifiers:
        raise OperatorError("name at least one quasi-identifier", "quasi_identifiers")
    paths = [parse_path(q) for q in quasi_identifiers]
    sensitive_path = parse_path(sensitive) if sensitive else None
    sizes: dict[tuple[Any, ...], int] = {}
    values: dict[tuple[Any, ...], set[Any]] = {}
    total = 0
    for row in rows:
        key = tuple(_hashable(get_path(row, p)) for p in paths)
        sizes[key] = sizes.get(key, 0) + 1
        if sensitive_path is not None:
            values.setdefault(key, set()).add(_hashable(get_path(row, sensitive_path)))
        total += 1
    smallest = min(sizes.values(), default=0)
    diversity = min((len(v) for v in values.values()), default=0) if sensitive_path is not None else None
    short = [
        key
        for key, size in sizes.items()
        if size < k or (l is not None and sensitive_path is not None and len(values[key]) < l)
    ]
    short.sort(key=lambda key: (sizes[key], len(values.get(key, ()))))
    offending = [
        Group(
            values=dict(zip(quasi_identifiers, key, strict=True)),
            size=sizes[key],
            distinct_sensitive=len(values[key]) if sensitive_path is not None else None,
        )
        for key in short[:MAX_NAMED_GROUPS]
    ]
    return AnonymityReport(
        rows=total,
        classes=len(sizes),
        k=smallest,
        l=diversity,
        quasi_identifiers=tuple(quasi_identifiers),
        sensitive=sensitive,
        offending=offending,
        offending_total=len(short),
    )


def k_anonymity(rows: Iterable[Mapping[str, Any]], quasi_identifiers: Sequence[str]) -> int:
    return measure(rows, quasi_identifiers).k


def l_diversity(rows: Iterable[Mapping[str, Any]], quasi_identifiers: Sequence[str], sensitive: str) -> int:
    diversity = measure(rows, quasi_identifiers, sensitive).l
    return diversity or 0


def require_anonymous(
    rows: Iterable[Mapping[str, Any]],
    quasi_identifiers: Sequence[str],
    k: int,
    *,
    sensitive: str | None = None,
    l: int | None = None,  # noqa: E741
) -> AnonymityReport:
    """The report when the rows are k-anonymous (and ℓ-diverse); NotAnonymous naming the groups otherwise.

    An empty table passes: it discloses no one.
    """
    if k < 1:
        raise OperatorError("k is at least 1", "k")
    if l is not None and (sensitive is None or l < 1):
        raise OperatorError("ℓ needs a sensitive attribute and is at least 1", "l")
    report = measure(rows, quasi_identifiers, sensitive, k=k, l=l)
    if report.offending_total:
        raise NotAnonymous(report, k, l)
    return report
