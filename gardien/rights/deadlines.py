"""Art. 12(3) GDPR deadlines, counted per Regulation (EEC, Euratom) No 1182/71, Art. 3.

Pure functions: no database, no clock. A period of months starts the day after the event (the
day of receipt is not counted), ends on the same date of the last month, or on that month's last
day when the date does not exist, and, when it ends on a Saturday, a Sunday or a public holiday,
moves to the end of the next working day.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo

import holidays
from dateutil.relativedelta import relativedelta

# The organisation's time zone decides on which day a request was received.
TIME_ZONES = {
    "FR": "Europe/Paris",
    "BE": "Europe/Brussels",
    "NL": "Europe/Amsterdam",
    "LU": "Europe/Luxembourg",
    "DE": "Europe/Berlin",
}
# Where the national rules let the controller stop the clock while identity information is awaited
# (France: décret 2019-536). Elsewhere the organisation may turn it on by setting.
PAUSES_FOR_IDENTITY = frozenset({"FR"})
FIRST_PERIOD_MONTHS = 1
EXTENSION_MONTHS = 2


def _check(country: str) -> str:
    if country not in TIME_ZONES:
        raise ValueError(f"no deadline calendar for country {country!r}; known: {sorted(TIME_ZONES)}")
    return country


@lru_cache(maxsize=64)
def _holidays(country: str, year: int) -> holidays.HolidayBase:
    return holidays.country_holidays(country, years=year)


def is_working_day(day: date, country: str) -> bool:
    return day.weekday() < 5 and day not in _holidays(_check(country), day.year)


def next_working_day(day: date, country: str) -> date:
    """`day` itself when it is a working day, else the first working day after it."""
    while not is_working_day(day, country):
        day += timedelta(days=1)
    return day


def receipt_day(received_at: datetime, country: str) -> date:
    """The date of receipt in the organisation's time zone."""
    if received_at.tzinfo is None:
        raise ValueError("naive datetimes are ambiguous; give a timezone")
    return received_at.astimezone(ZoneInfo(TIME_ZONES[_check(country)])).date()


def paused_days_between(since: datetime, until: datetime, country: str) -> int:
    """Whole days between two moments, counted on the organisation's calendar."""
    return max(0, (receipt_day(until, country) - receipt_day(since, country)).days)


def period_end(received_on: date, months: int, *, paused_days: int = 0) -> date:
    """The last day of a period of `months` from receipt, before any working-day roll.

    relativedelta keeps the day of the month and clips it to the month's last day, which is
    Art. 3(2)(c) of 1182/71. Days the clock was paused push the start back.
    """
    return received_on + timedelta(days=paused_days) + relativedelta(months=months)


def due_on(received_on: date, country: str, *, paused_days: int = 0, extended: bool = False) -> date:
    """The last day to answer: one month from receipt, or three when extended, rolled to a working day.

    The extension's two months are added to the end of the first month before that end is rolled
    to a working day: of the two readings, the earlier date.
    """
    _check(country)
    end = period_end(received_on, FIRST_PERIOD_MONTHS, paused_days=paused_days)
    if extended:
        end += relativedelta(months=EXTENSION_MONTHS)
    return next_working_day(end, country)


def can_extend(today: date, first_due_on: date) -> bool:
    """Art. 12(3): the extension is notified within the first period, which ends with its last day."""
    return today <= first_due_on
