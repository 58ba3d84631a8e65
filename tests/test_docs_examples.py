"""The Python examples in the docs run as written."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

DOCS = Path(__file__).resolve().parent.parent / "docs"
# Pages whose examples need nothing but the package (no server, no database).
SELF_CONTAINED = ["psd2.md", "rights.md", "privacy.md"]


def python_blocks(page: str) -> list[str]:
    return re.findall(r"```python\n(.*?)```", (DOCS / page).read_text(encoding="utf-8"), flags=re.DOTALL)


@pytest.mark.parametrize("page", SELF_CONTAINED)
def test_python_examples_run(page: str) -> None:
    blocks = python_blocks(page)
    assert blocks, f"{page} has no Python example"
    namespace: dict[str, object] = {}  # a page is read top to bottom: later examples use earlier names
    for block in blocks:
        exec(compile(block, f"{page}:example", "exec"), namespace)
