"""Integrations that give a host application audit for free.

- :class:`GardienClient` / :class:`AsyncGardienClient`: the SDK (append, read, verify, export);
- :class:`GardienAuditMiddleware`: ASGI middleware recording HTTP requests;
- :func:`install_audit_hook`: SQLAlchemy ORM hook recording creates, updates and deletes.

``import gardien.client`` loads only the SDK (httpx and Gardien's pure format modules); the
middleware and the SQLAlchemy hook are imported on first access, so the SDK never drags in
SQLAlchemy.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from gardien.client.sdk import (
    AsyncGardienClient,
    ConsistencyVerified,
    ExportResult,
    GardienClient,
    GardienError,
    InclusionVerified,
    Receipt,
    VerificationError,
)

if TYPE_CHECKING:
    from gardien.client.asgi import GardienAuditMiddleware, MiddlewareStats, RoutePattern, current_request_id
    from gardien.client.sqlalchemy import AuditHook, install_audit_hook

__all__ = [
    "AsyncGardienClient",
    "AuditHook",
    "ConsistencyVerified",
    "ExportResult",
    "GardienAuditMiddleware",
    "GardienClient",
    "GardienError",
    "InclusionVerified",
    "MiddlewareStats",
    "Receipt",
    "RoutePattern",
    "VerificationError",
    "current_request_id",
    "install_audit_hook",
]

_LAZY = {
    "GardienAuditMiddleware": "gardien.client.asgi",
    "MiddlewareStats": "gardien.client.asgi",
    "RoutePattern": "gardien.client.asgi",
    "current_request_id": "gardien.client.asgi",
    "AuditHook": "gardien.client.sqlalchemy",
    "install_audit_hook": "gardien.client.sqlalchemy",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'gardien.client' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value
