"""The cookie banner's public surface: its assets and the GPC declaration."""

from __future__ import annotations

import gzip
import hashlib
from dataclasses import dataclass
from datetime import date
from functools import cache
from importlib import resources
from typing import Annotated

from fastapi import APIRouter, Header, Response
from pydantic import BaseModel, ConfigDict, Field

router = APIRouter(tags=["consent"])

# The day Gardien's answer to GPC last changed (W3C GPC §4: `lastUpdate` is an RFC 3339 full-date).
GPC_LAST_UPDATE = date(2026, 11, 22)

# Sites embed the banner on every page: browsers may reuse it for an hour, then revalidate with the ETag.
ASSET_CACHE_CONTROL = "public, max-age=3600"


@dataclass(frozen=True)
class Asset:
    media_type: str
    body: bytes
    gzipped: bytes
    etag: str

    @property
    def gzipped_etag(self) -> str:
        return self.etag[:-1] + '-gz"'


@cache
def asset(name: str, media_type: str) -> Asset:
    body = resources.files("gardien.consent").joinpath("static", name).read_bytes()
    digest = hashlib.sha256(body).hexdigest()[:32]
    return Asset(media_type, body, gzip.compress(body, compresslevel=9, mtime=0), f'"{digest}"')


def accepts_gzip(accept_encoding: str | None) -> bool:
    """Whether an Accept-Encoding header admits gzip (RFC 9110 §12.5.3), honouring `q=0`."""
    for item in (accept_encoding or "").split(","):
        coding, _, params = item.strip().partition(";")
        if coding.strip().lower() not in ("gzip", "x-gzip"):
            continue
        quality = params.strip().lower().removeprefix("q=").strip()
        try:
            return not quality or float(quality) > 0
        except ValueError:
            return False
    return False


def etag_matches(if_none_match: str | None, etag: str) -> bool:
    """If-None-Match uses the weak comparison (RFC 9110 §13.1.2): `W/` prefixes are ignored."""
    if not if_none_match:
        return False
    candidates = {tag.strip().removeprefix("W/") for tag in if_none_match.split(",")}
    return "*" in candidates or etag in candidates


def serve(item: Asset, accept_encoding: str | None, if_none_match: str | None) -> Response:
    compressed = accepts_gzip(accept_encoding)
    etag = item.gzipped_etag if compressed else item.etag
    headers = {
        "ETag": etag,
        "Cache-Control": ASSET_CACHE_CONTROL,
        "Vary": "Accept-Encoding",
        "X-Content-Type-Options": "nosniff",
        # Host sites load the banner from their own pages, some of them with COEP enabled.
        "Cross-Origin-Resource-Policy": "cross-origin",
    }
    if etag_matches(if_none_match, etag):
        return Response(status_code=304, headers=headers)
    if compressed:
        headers["Content-Encoding"] = "gzip"
    return Response(item.gzipped if compressed else item.body, media_type=item.media_type, headers=headers)


AcceptEncoding = Annotated[str | None, Header(include_in_schema=False)]
IfNoneMatch = Annotated[str | None, Header(include_in_schema=False)]


@router.get("/consent/banner.js", include_in_schema=False)
def banner_script(accept_encoding: AcceptEncoding = None, if_none_match: IfNoneMatch = None) -> Response:
    return serve(asset("banner.js", "text/javascript; charset=utf-8"), accept_encoding, if_none_match)


@router.get("/consent/banner.css", include_in_schema=False)
def banner_stylesheet(accept_encoding: AcceptEncoding = None, if_none_match: IfNoneMatch = None) -> Response:
    return serve(asset("banner.css", "text/css; charset=utf-8"), accept_encoding, if_none_match)


class GpcDeclaration(BaseModel):
    model_config = ConfigDict(populate_by_name=True)

    gpc: bool
    last_update: date = Field(alias="lastUpdate")


@router.get(
    "/.well-known/gpc.json",
    response_model=GpcDeclaration,
    response_model_by_alias=True,
    summary="Global Privacy Control support (W3C GPC)",
)
def gpc_declaration(response: Response) -> GpcDeclaration:
    response.headers["Cache-Control"] = "public, max-age=86400"
    return GpcDeclaration(gpc=True, last_update=GPC_LAST_UPDATE)
