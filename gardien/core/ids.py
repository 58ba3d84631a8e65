"""Identifiers: UUIDv7 for records, so that ids sort by creation time and index cheaply."""

from __future__ import annotations

import uuid_utils


def new_id() -> str:
    return str(uuid_utils.uuid7())
