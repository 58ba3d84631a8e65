"""Settings: the organisation, the signed-in key, the register's header, and the API keys."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse

from gardien.core import service as core
from gardien.web.console.base import Viewer, page, services_of, viewer
from gardien.web.console.pages import KEY_READERS, REGISTER_READERS, REQUEST_READERS, SETTINGS_READERS

router = APIRouter(prefix="/settings")


@router.get("", response_class=HTMLResponse)
def settings(request: Request, seen: Viewer = Depends(viewer(SETTINGS_READERS))) -> HTMLResponse:
    services = services_of(request)
    org = seen.principal.org_id
    header = services.registers.settings_or_none(org) if seen.may(REGISTER_READERS) else None
    rights_settings = services.rights.settings(org) if seen.may(REQUEST_READERS) else None
    return page(request, "settings.html", {"header": header, "rights_settings": rights_settings})


@router.get("/keys", response_class=HTMLResponse)
def keys(request: Request, seen: Viewer = Depends(viewer(KEY_READERS))) -> HTMLResponse:
    with services_of(request).runtime.sessions() as db:
        listed = [
            {"id": k.id, "name": k.name, "role": k.role, "created_at": k.created_at, "revoked_at": k.revoked_at}
            for k in core.list_keys(db, seen.principal.org_id)
        ]
    return page(request, "keys.html", {"keys": listed})
