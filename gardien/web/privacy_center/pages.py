"""Routes of the privacy center. Parse, call the rights services, render; no logic, no SQL."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Request
from fastapi import Path as PathParam
from fastapi.responses import StreamingResponse

from gardien.rights.packages import PackageStore

router = APIRouter(prefix="/privacy", include_in_schema=False)

Token = Annotated[str, PathParam(max_length=1000)]


def _packages(request: Request) -> PackageStore:
    packages: PackageStore = request.app.state.packages
    return packages


@router.get("/download/{token}")
def download(token: Token, request: Request) -> StreamingResponse:
    package, body = _packages(request).open(token)
    name = f"{package.kind}-{package.created_at.date().isoformat()}.zip"
    headers = {
        "Content-Disposition": f'attachment; filename="{name}"',
        "Content-Length": str(package.size),
        "Cache-Control": "no-store",
        "Referrer-Policy": "no-referrer",
        "X-Content-Type-Options": "nosniff",
    }
    return StreamingResponse(body, media_type="application/zip", headers=headers)
