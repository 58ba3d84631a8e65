"""axe-core's audit of a page in the browser tests (the browser itself: tests/conftest.py)."""

from __future__ import annotations

from axe_playwright_python.sync_playwright import Axe
from playwright.sync_api import Page


def audit(page: Page) -> list[str]:
    """axe-core's violations on the page as it stands, one line each; empty when there are none."""
    results = Axe().run(page)
    return [
        f"{v['id']} ({v['impact']}): {v['help']} — {[n['target'] for n in v['nodes']]}"
        for v in results.response["violations"]
    ]
