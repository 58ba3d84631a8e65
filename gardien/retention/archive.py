"""Policies over Gardien's own stores. The ledger's archive-then-purge lands in a later change."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from gardien.core.errors import Problem
from gardien.retention.schemas import PolicyIn

if TYPE_CHECKING:
    from gardien.retention.jobs import Runner


class StoreNotRunnable(Problem):
    def __init__(self, store: str) -> None:
        super().__init__(
            409, "retention-store", "Store not runnable", f"policies on Gardien's {store} store cannot run yet"
        )


def run_store_policy(
    runner: Runner,
    org_id: str,
    policy_row: Mapping[str, Any],
    policy: PolicyIn,
    *,
    dry_run: bool,
    trigger: str,
    actor: Mapping[str, Any],
) -> str:
    raise StoreNotRunnable(getattr(policy.target, "store", "?"))
