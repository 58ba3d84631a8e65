"""The Art. 33(1) clock, with figures taken from the regulation and a calendar, not from the code.

Art. 33(1): notify "not later than 72 hours after having become aware of it". Hours, not working
days: a weekend does not stop the clock, and a change of summer time in Europe/Paris shifts the
local wall-clock reading of the deadline by one hour, since 72 hours of elapsed time is what counts.
Calendar facts used below: 27 March 2026 is a Friday and Europe switches to summer time on Sunday
29 March 2026 at 01:00 UTC; 23 October 2026 is a Friday and summer time ends on Sunday 25 October
2026 at 01:00 UTC.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from gardien.registers.clock import ClockState, breach_clock, notification_deadline

PARIS = ZoneInfo("Europe/Paris")


def test_deadline_is_72_hours_across_a_weekend_and_the_spring_change() -> None:
    # Aware on Friday 27 March 2026 at 15:00 in Paris (CET, UTC+1), stored in UTC as 14:00.
    aware = datetime(2026, 3, 27, 15, 0, tzinfo=PARIS).astimezone(UTC)
    assert aware == datetime(2026, 3, 27, 14, 0, tzinfo=UTC)
    deadline = notification_deadline(aware)
    # 72 elapsed hours later: Monday 30 March 2026 14:00 UTC, which is 16:00 in Paris (CEST, UTC+2),
    # not the 15:00 a wall-clock "three days later" would give, nor a later day for the weekend.
    assert deadline == datetime(2026, 3, 30, 14, 0, tzinfo=UTC)
    assert deadline.astimezone(PARIS).replace(tzinfo=None) == datetime(2026, 3, 30, 16, 0)


def test_deadline_is_72_hours_across_a_weekend_and_the_autumn_change() -> None:
    # Aware on Friday 23 October 2026 at 18:00 in Paris (CEST, UTC+2) = 16:00 UTC.
    aware = datetime(2026, 10, 23, 18, 0, tzinfo=PARIS)
    deadline = notification_deadline(aware)
    assert deadline == datetime(2026, 10, 26, 16, 0, tzinfo=UTC)
    # Monday 26 October 2026 at 17:00 in Paris (CET, UTC+1).
    assert deadline.astimezone(PARIS).replace(tzinfo=None) == datetime(2026, 10, 26, 17, 0)


def test_running_clock_counts_elapsed_hours() -> None:
    aware = datetime(2026, 3, 27, 14, 0, tzinfo=UTC)
    now = datetime(2026, 3, 29, 2, 30, tzinfo=UTC)  # Sunday, after the change: 36.5 hours elapsed
    clock = breach_clock(aware, initial_notification=None, now=now, notification_required=True)
    assert clock.state is ClockState.RUNNING
    assert clock.hours_elapsed == 36.5
    assert clock.hours_remaining == 35.5


def test_clock_is_overdue_one_second_after_72_hours() -> None:
    aware = datetime(2026, 3, 27, 14, 0, tzinfo=UTC)
    at_deadline = breach_clock(aware, None, now=aware + timedelta(hours=72), notification_required=True)
    assert at_deadline.state is ClockState.RUNNING
    assert at_deadline.hours_remaining == 0
    late = breach_clock(aware, None, now=aware + timedelta(hours=72, seconds=1), notification_required=True)
    assert late.state is ClockState.OVERDUE
    assert late.hours_remaining < 0


def test_notification_stops_the_clock() -> None:
    aware = datetime(2026, 10, 23, 16, 0, tzinfo=UTC)
    in_time = breach_clock(
        aware, aware + timedelta(hours=71, minutes=59), now=aware + timedelta(days=30), notification_required=True
    )
    assert in_time.state is ClockState.NOTIFIED_IN_TIME
    assert in_time.hours_elapsed == 71 + 59 / 60
    late = breach_clock(aware, aware + timedelta(hours=73), now=aware + timedelta(days=30), notification_required=True)
    assert late.state is ClockState.NOTIFIED_LATE
    assert late.hours_elapsed == 73


def test_no_clock_when_notification_is_not_required() -> None:
    aware = datetime(2026, 3, 27, 14, 0, tzinfo=UTC)
    clock = breach_clock(aware, None, now=aware + timedelta(days=10), notification_required=False)
    assert clock.state is ClockState.NOT_REQUIRED
    assert clock.deadline == datetime(2026, 3, 30, 14, 0, tzinfo=UTC)
