"""The API documentation pages work without reaching any other host."""

from __future__ import annotations

import re

import pytest
from fastapi.testclient import TestClient


@pytest.mark.parametrize("page", ["/docs", "/redoc"])
def test_docs_pages_load_only_local_assets(client: TestClient, page: str) -> None:
    response = client.get(page)
    assert response.status_code == 200
    assets = re.findall(r'(?:src|href)="([^"]+)"', response.text) + re.findall(r"url: *'([^']+)'", response.text)
    assert assets, response.text
    for asset in assets:
        assert not re.match(r"^(https?:)?//", asset), f"{page} loads {asset} from another host"
        if asset.endswith((".js", ".css", ".png")):
            assert client.get(asset).status_code == 200, asset
    assert client.get("/openapi.json").json()["info"]["title"] == "Gardien"
