"""The Art. 33(1) notification clock: 72 hours of elapsed time after the controller became aware.

Pure: no database, no wall clock. Times are aware datetimes and are compared in UTC, so that a
change of summer time between awareness and deadline moves the local reading of the deadline,
never its instant; weekends and holidays do not stop the clock.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum

NOTIFICATION_WINDOW = timedelta(hours=72)


class ClockState(StrEnum):
    RUNNING = "running"
    OVERDUE = "overdue"
    NOTIFIED_IN_TIME = "notified_in_time"
    NOTIFIED_LATE = "notified_late"
    NOT_REQUIRED = "not_required"


@dataclass(frozen=True)
class Clock:
    aware_at: datetime
    deadline: datetime
    state: ClockState
    # Until the initial notification when there is one, else until now.
    hours_elapsed: float
    # Negative once overdue; measured at the notification when there is one.
    hours_remaining: float


def notification_deadline(aware_at: datetime) -> datetime:
    if aware_at.tzinfo is None:
        raise ValueError("naive datetimes are ambiguous; give a timezone")
    return aware_at.astimezone(UTC) + NOTIFICATION_WINDOW


def breach_clock(
    aware_at: datetime, initial_notification: datetime | None, *, now: datetime, notification_required: bool
) -> Clock:
    deadline = notification_deadline(aware_at)
    stop = initial_notification if initial_notification is not None else now
    elapsed = (stop - aware_at).total_seconds() / 3600
    remaining = (deadline - stop).total_seconds() / 3600
    if not notification_required and initial_notification is None:
        state = ClockState.NOT_REQUIRED
    elif initial_notification is not None:
        state = ClockState.NOTIFIED_IN_TIME if initial_notification <= deadline else ClockState.NOTIFIED_LATE
    else:
        state = ClockState.RUNNING if now <= deadline else ClockState.OVERDUE
    return Clock(aware_at.astimezone(UTC), deadline, state, elapsed, remaining)
