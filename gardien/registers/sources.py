"""Figures of other capabilities that the generated documents read, in the shape the registers need.

Consent and rights are always installed and are read through their services (see `evidence.py`).
Retention is optional: a deployment may run without it, and it is developed apart. The registers
name what they need from it as a protocol; the compliance matrix reports Art. 5(1)(e) ABSENT
("no retention policy") and the period report shows no runs when nothing provides it.

Retention is plugged in by setting an implementation of `RetentionFacts` as
`app.state.retention_facts`: `RetentionReader` reads the retention capability's service.
`find_retention` returns it only when the `gardien.retention` package is importable and the object
speaks the protocol, so another implementation can take its place.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Protocol, runtime_checkable

if TYPE_CHECKING:
    from gardien.retention.schemas import RunOut
    from gardien.retention.service import RetentionService

# What a run did to records, per table, besides counting them (`matched`) or keeping them (`held`).
ACTED = ("deleted", "anonymised", "archived")
PAGE = 200


@dataclass(frozen=True)
class RetentionPolicyFact:
    """One retention policy: its key (what an activity's `retention_policy` names) and its last run."""

    key: str
    description: str
    name: str = ""
    last_run_at: datetime | None = None
    last_run_ok: bool | None = None


@dataclass(frozen=True)
class RetentionRunFact:
    """One run of a policy's job: when, whether it succeeded, how many records it purged or anonymised."""

    policy: str
    started_at: datetime
    succeeded: bool
    affected: int


@runtime_checkable
class RetentionFacts(Protocol):
    def retention_policies(self, org_id: str) -> Sequence[RetentionPolicyFact]: ...

    def retention_runs(self, org_id: str, since: datetime, until: datetime) -> Sequence[RetentionRunFact]: ...


def retention_installed() -> bool:
    return importlib.util.find_spec("gardien.retention") is not None


def find_retention(candidate: object | None) -> RetentionFacts | None:
    """The retention capability's figures, or None when it is not installed or not plugged in."""
    if candidate is None or not retention_installed():
        return None
    return candidate if isinstance(candidate, RetentionFacts) else None


class RetentionReader:
    """`RetentionFacts` from the retention capability's service: its policies and its runs, dry runs left out."""

    def __init__(self, service: RetentionService) -> None:
        self.service = service

    def _runs(self, org_id: str) -> Iterator[RunOut]:
        """Every real run, newest first."""
        cursor: str | None = None
        while True:
            page = self.service.list_runs(org_id, cursor=cursor, limit=PAGE)
            yield from (run for run in page.items if not run.dry_run)
            if page.next_cursor is None:
                return
            cursor = page.next_cursor

    def retention_policies(self, org_id: str) -> list[RetentionPolicyFact]:
        policies = self.service.list_policies(org_id)
        last: dict[str, RunOut] = {}
        for run in self._runs(org_id):
            last.setdefault(run.policy_id, run)
            if len(last) == len(policies):
                break
        facts = []
        for p in policies:
            latest = last.get(p.id)
            finished = latest is not None and latest.status != "running"
            facts.append(
                RetentionPolicyFact(
                    key=p.id,
                    name=p.policy.name,
                    description=f"{p.policy.name}: {p.policy.period}, {p.policy.action}",
                    last_run_at=latest.started_at if latest is not None else None,
                    last_run_ok=(latest.status == "completed") if latest is not None and finished else None,
                )
            )
        return facts

    def retention_runs(self, org_id: str, since: datetime, until: datetime) -> list[RetentionRunFact]:
        found = []
        for run in self._runs(org_id):
            if run.started_at < since:
                break
            if run.started_at < until and run.status != "running":
                found.append(
                    RetentionRunFact(
                        policy=run.policy_id,
                        started_at=run.started_at,
                        succeeded=run.status == "completed",
                        affected=sum(counts.get(k, 0) for counts in run.counts.values() for k in ACTED),
                    )
                )
        return found
