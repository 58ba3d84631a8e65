"""One place that tells the time, so tests and formats agree on precision and zone."""

from __future__ import annotations

from datetime import UTC, datetime


def utcnow() -> datetime:
    return datetime.now(UTC)


def rfc3339(moment: datetime) -> str:
    """Format as RFC 3339 UTC with exactly six fractional digits, the ledger's time form."""
    if moment.tzinfo is None:
        raise ValueError("naive datetimes are ambiguous; give a timezone")
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
