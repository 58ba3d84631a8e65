"""Identifiers: UUIDv7 for records, so that ids sort by creation time and index cheaply."""

from __future__ import annotations

import uuid6


def new_id() -> str:
    return str(uuid6.uuid7())
