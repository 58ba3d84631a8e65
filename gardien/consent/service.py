"""Consent records, notice versions and the fast consent check."""

from __future__ import annotations

from gardien.audit.service import Ledger
from gardien.core.runtime import Runtime


class ConsentService:
    def __init__(self, runtime: Runtime, ledger: Ledger) -> None:
        self.runtime = runtime
        self.ledger = ledger
