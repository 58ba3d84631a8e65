"""The cookie banner's public surface: its assets and the GPC declaration."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter(tags=["consent"])
