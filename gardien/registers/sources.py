"""Figures of other capabilities that the generated documents read, in the shape the registers need.

Consent and rights are always installed and are read through their services (see `evidence.py`).
Retention is optional: a deployment may run without it, and it is developed apart. The registers
name what they need from it as a protocol; the compliance matrix reports Art. 5(1)(e) ABSENT
("no retention policy") and the period report shows no runs when nothing provides it.

To plug retention in, give `RetentionFacts` an implementation — its service itself, or a small
adapter over it — and set it as `app.state.retention_facts`; `find_retention` returns it only when
the `gardien.retention` package is importable and the object speaks the protocol.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol, runtime_checkable


@dataclass(frozen=True)
class RetentionPolicyFact:
    """One retention policy: its key (what an activity's `retention_policy` names) and its last run."""

    key: str
    description: str
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
