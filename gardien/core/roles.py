"""Roles an API key can carry, and what each may do."""

from __future__ import annotations

from enum import StrEnum


class Role(StrEnum):
    ADMIN = "admin"
    DPO = "dpo"
    AUDITOR = "auditor"
    OPERATOR = "operator"
    SERVICE = "service"


ALL_ROLES = frozenset(Role)
# Who may read the ledger's contents (they hold personal data) and export it.
LEDGER_READERS = frozenset({Role.ADMIN, Role.DPO, Role.AUDITOR})
# Who may check integrity: reading proofs and checkpoints reveals hashes only.
LEDGER_VERIFIERS = frozenset({Role.ADMIN, Role.DPO, Role.AUDITOR, Role.OPERATOR})
# Who may append events.
LEDGER_WRITERS = frozenset({Role.ADMIN, Role.DPO, Role.SERVICE, Role.OPERATOR})
KEY_MANAGERS = frozenset({Role.ADMIN})
