"""The console's pages and who may open each: the role sets of the API that serves the same data."""

from __future__ import annotations

from dataclasses import dataclass

from gardien.core.roles import ALL_ROLES, KEY_MANAGERS, LEDGER_READERS, LEDGER_VERIFIERS, Role
from gardien.registers import api as registers_api
from gardien.retention import api as retention_api
from gardien.rights import api as rights_api

# The dashboard gathers what every reader of the queue, the registers, the retention runs and the
# ledger's integrity
# may see; the service role (applications) has no business in the console.
DASHBOARD = rights_api.READERS & registers_api.READERS & retention_api.READERS & LEDGER_VERIFIERS
REQUEST_READERS = rights_api.READERS
REQUEST_MANAGERS = rights_api.MANAGERS
# Moving a request on: the API's creators, less the service role, which may only cancel.
REQUEST_DECIDERS = rights_api.CREATORS - {Role.SERVICE}
AUDIT_READERS = LEDGER_READERS
AUDIT_VERIFIERS = LEDGER_VERIFIERS
REGISTER_READERS = registers_api.READERS
REGISTER_WRITERS = registers_api.WRITERS
COMPLIANCE_READERS = registers_api.COMPLIANCE_READERS
SETTINGS_READERS = ALL_ROLES
KEY_READERS = KEY_MANAGERS


@dataclass(frozen=True)
class PageInfo:
    name: str
    path: str
    roles: frozenset[Role]


PAGES = (
    PageInfo("dashboard", "/", DASHBOARD),
    PageInfo("requests", "/requests", REQUEST_READERS),
    PageInfo("audit", "/audit", AUDIT_READERS),
    PageInfo("verify", "/audit/verify", AUDIT_VERIFIERS),
    PageInfo("activities", "/registers/activities", REGISTER_READERS),
    PageInfo("processors", "/registers/processors", REGISTER_READERS),
    PageInfo("breaches", "/registers/breaches", REGISTER_READERS),
    PageInfo("dpias", "/registers/dpias", COMPLIANCE_READERS),
    PageInfo("reports", "/reports", COMPLIANCE_READERS),
    PageInfo("settings", "/settings", SETTINGS_READERS),
    PageInfo("keys", "/settings/keys", KEY_READERS),
)


def allowed_pages(role: Role) -> list[PageInfo]:
    return [p for p in PAGES if role in p.roles]


def home_of(role: Role) -> str:
    """Where a sign-in lands: the first page of the menu the role may open."""
    return allowed_pages(role)[0].path
