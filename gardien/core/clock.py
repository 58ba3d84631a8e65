"""One place that tells the time, so tests and formats agree on precision and zone."""

from __future__ import annotations

from datetime import UTC, datetime


def utcnow() -> datetime:
    return datetime.now(UTC)


def rfc3339(moment: datetime) -> str:
    """Format as RFC 3339 UTC with exactly six fractional digits, the ledger's time form."""
    if moment.tzinfo is None:
        raise ValueError("naive datetimes are ambiguous; give a timezone")
    moment = moment.astimezone(UTC)
    # Spelled out: strftime("%Y") does not pad years below 1000 on every platform.
    return (
        f"{moment.year:04d}-{moment.month:02d}-{moment.day:02d}T"
        f"{moment.hour:02d}:{moment.minute:02d}:{moment.second:02d}.{moment.microsecond:06d}Z"
    )
