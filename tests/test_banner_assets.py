"""The banner's assets and the GPC declaration, as a browser or a cache sees them (no browser here)."""

from __future__ import annotations

import gzip
import re
from datetime import date
from importlib import resources

import pytest
from fastapi.testclient import TestClient

from gardien.consent.banner import accepts_gzip

# Served assets do not depend on the database: one engine is enough.
sqlite_only = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)

BUDGET_GZIPPED = 15 * 1024
ASSETS = {"banner.js": "text/javascript; charset=utf-8", "banner.css": "text/css; charset=utf-8"}


def packaged(name: str) -> bytes:
    return resources.files("gardien.consent").joinpath("static", name).read_bytes()


@sqlite_only
def test_script_and_stylesheet_fit_the_size_budget_gzipped(client: TestClient) -> None:
    served = 0
    for name in ASSETS:
        response = client.get(f"/consent/{name}", headers={"Accept-Encoding": "gzip"})
        assert response.headers["content-encoding"] == "gzip"
        served += int(response.headers["content-length"])
    assert served <= BUDGET_GZIPPED, f"banner.js + banner.css are {served} bytes gzipped, over {BUDGET_GZIPPED}"
    # The budget holds for any gzip, not only ours at level 9.
    assert sum(len(gzip.compress(packaged(name), compresslevel=6)) for name in ASSETS) <= BUDGET_GZIPPED


@sqlite_only
@pytest.mark.parametrize("name", sorted(ASSETS))
def test_assets_are_served_with_their_type_and_cache_headers(client: TestClient, name: str) -> None:
    plain = client.get(f"/consent/{name}", headers={"Accept-Encoding": "identity"})
    assert plain.status_code == 200
    assert plain.headers["content-type"] == ASSETS[name]
    assert "content-encoding" not in plain.headers
    assert plain.content == packaged(name)
    assert plain.headers["cache-control"] == "public, max-age=3600"
    assert plain.headers["vary"] == "Accept-Encoding"
    assert plain.headers["x-content-type-options"] == "nosniff"
    assert plain.headers["cross-origin-resource-policy"] == "cross-origin"
    assert re.fullmatch(r'"[0-9a-f]{32}"', plain.headers["etag"])

    packed = client.get(f"/consent/{name}", headers={"Accept-Encoding": "br, gzip;q=0.8"})
    assert packed.headers["content-encoding"] == "gzip"
    assert packed.content == packaged(name)  # httpx decompressed it: the same bytes
    assert int(packed.headers["content-length"]) < len(packaged(name))
    assert packed.headers["etag"] != plain.headers["etag"], "two representations, two ETags"


@sqlite_only
@pytest.mark.parametrize("name", sorted(ASSETS))
def test_a_revalidation_with_the_etag_answers_304_without_a_body(client: TestClient, name: str) -> None:
    for encoding in ("identity", "gzip"):
        first = client.get(f"/consent/{name}", headers={"Accept-Encoding": encoding})
        etag = first.headers["etag"]
        for validator in (etag, f"W/{etag}", f'"other", {etag}', "*"):
            again = client.get(f"/consent/{name}", headers={"Accept-Encoding": encoding, "If-None-Match": validator})
            assert again.status_code == 304, validator
            assert again.content == b""
            assert again.headers["etag"] == etag
            assert again.headers["cache-control"] == "public, max-age=3600"
        stale = client.get(f"/consent/{name}", headers={"Accept-Encoding": encoding, "If-None-Match": '"stale"'})
        assert stale.status_code == 200 and stale.content == packaged(name)


@sqlite_only
def test_the_other_representation_s_etag_does_not_validate(client: TestClient) -> None:
    plain_etag = client.get("/consent/banner.js", headers={"Accept-Encoding": "identity"}).headers["etag"]
    response = client.get("/consent/banner.js", headers={"Accept-Encoding": "gzip", "If-None-Match": plain_etag})
    assert response.status_code == 200
    assert response.headers["content-encoding"] == "gzip"


@pytest.mark.parametrize(
    ("header", "gzip_ok"),
    [
        (None, False),
        ("", False),
        ("identity", False),
        ("gzip", True),
        ("GZIP", True),
        ("x-gzip", True),
        ("deflate, gzip;q=1.0, *;q=0.5", True),
        ("gzip;q=0", False),
        ("gzip; q=0.000", False),
        ("gzip;q=0.001", True),
        ("gzip;q=nonsense", False),
        ("br", False),
    ],
)
def test_accept_encoding_is_read_with_its_quality_values(header: str | None, gzip_ok: bool) -> None:
    assert accepts_gzip(header) is gzip_ok


@sqlite_only
def test_gpc_declaration_follows_the_w3c_well_known_format(client: TestClient) -> None:
    response = client.get("/.well-known/gpc.json")
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    assert set(body) == {"gpc", "lastUpdate"}
    assert body["gpc"] is True
    assert re.fullmatch(r"\d{4}-\d{2}-\d{2}", body["lastUpdate"])
    assert date.fromisoformat(body["lastUpdate"]) <= date.today()
    assert "public" in response.headers["cache-control"]
