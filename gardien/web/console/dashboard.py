"""The dashboard: what needs attention today, from the capabilities' services."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import date
from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse

from gardien.core.errors import NotFound
from gardien.rights.schemas import RequestOut
from gardien.web.console.base import Viewer, page, services_of, viewer
from gardien.web.console.pages import AUDIT_VERIFIERS, COMPLIANCE_READERS, DASHBOARD, REQUEST_MANAGERS

router = APIRouter()
MAX_BREACHES = 200
LAST_RUNS = 5


@dataclass(frozen=True)
class ConsentRate:
    purpose: str
    granted: int
    denied: int

    @property
    def rate(self) -> float:
        total = self.granted + self.denied
        return self.granted / total if total else 0.0


def days_left(item: RequestOut, today: date) -> int:
    """Days until the request's deadline; negative once it is overdue."""
    return (item.due_on - today).days


def run_rows(run: Any) -> tuple[int, int]:
    """Rows a retention run deleted or anonymised, and rows its policy matched (all a dry run counts)."""
    acted = sum(n for table in run.counts.values() for kind, n in table.items() if kind not in ("matched", "held"))
    matched = sum(table.get("matched", 0) for table in run.counts.values())
    return acted, matched


def consent_rates(days: list[Any]) -> list[ConsentRate]:
    granted: dict[str, int] = defaultdict(int)
    denied: dict[str, int] = defaultdict(int)
    for day in days:
        granted[day.purpose] += day.granted
        denied[day.purpose] += day.denied
    return [ConsentRate(p, granted[p], denied[p]) for p in sorted(set(granted) | set(denied))]


@router.get("/", response_class=HTMLResponse)
def dashboard(request: Request, seen: Viewer = Depends(viewer(DASHBOARD))) -> HTMLResponse:
    services = services_of(request)
    org = seen.principal.org_id
    due = services.rights.due(org, reveal=seen.may(REQUEST_MANAGERS))
    breaches = services.registers.breaches(org, None, MAX_BREACHES, "open").items
    try:
        checkpoint = services.ledger.checkpoint(org)
    except NotFound:
        checkpoint = None
    stats = services.consent.stats(org, None, None)
    runs = services.retention.list_runs(org, limit=LAST_RUNS).items
    policies = {p.id: p.policy.name for p in services.retention.list_policies(org)}
    return page(
        request,
        "dashboard.html",
        {
            "due": due,
            "days_left": days_left,
            "breaches": sorted(breaches, key=lambda b: b.clock.deadline),
            "checkpoint": checkpoint,
            "head_size": services.ledger.head_size(org),
            "verification": services.ledger.last_verification(org),
            "may_verify": seen.may(AUDIT_VERIFIERS),
            "may_read_documents": seen.may(COMPLIANCE_READERS),
            "alerts": services.registers.alerts(org).alerts,
            "runs": runs,
            "run_rows": run_rows,
            "policies": policies,
            "consent": consent_rates(stats.days),
            "consent_since": stats.since,
            "consent_until": stats.until,
        },
    )
