"""One place that tells the time, so tests and formats agree on precision and zone."""

from __future__ import annotations

from datetime import UTC, datetime


def utcnow() -> datetime:
    return datetime.now(UTC)


def rfc3339(moment: datetime) -> str:
    """Format as RFC 3339 UTC with exactly six fractional digits, the ledger's time form."""
    if moment.tzinfo is None:
        raise ValueError("naive datetimes are ambiguous; give a timezone")
    # isoformat always writes four-digit years (strftime("%Y") does not, below 1000) and is the
    # fastest spelling; this runs several times per sealed event.
    return moment.astimezone(UTC).replace(tzinfo=None).isoformat(timespec="microseconds") + "Z"
