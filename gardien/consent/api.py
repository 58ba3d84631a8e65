"""Routes of consent management. Parse, authorise, call the ConsentService, shape the answer."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter(prefix="/api/v1/consent", tags=["consent"])
