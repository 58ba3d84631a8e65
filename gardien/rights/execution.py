"""The seam between the request workflow and the engine that acts on the host application's data.

The workflow decides *when* (identity verified, deadline kept, every step audited); an executor
decides *how* (find, export, correct, erase across the data map). `RightsService` calls
`Executor.started` after the commit that moves a request to `in_progress`, with the identities in
clear; the executor reports back with `RightsService.complete(org_id, request_id, summary, actor)`
— per-table counts, never values — which closes the request and records the counts in the ledger.
"""

from __future__ import annotations

from typing import Protocol

from gardien.rights.personal import Identities
from gardien.rights.schemas import RequestOut


class Executor(Protocol):
    def started(self, org_id: str, request: RequestOut, identities: Identities) -> None:
        """Begin work on a request that has just entered `in_progress`. Must not block for long."""
