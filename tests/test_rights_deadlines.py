"""Art. 12(3) deadlines counted per Regulation (EEC, Euratom) No 1182/71.

Every expected date below was worked out by hand from the regulation's text and a printed
calendar (weekdays and public holidays of the year named), never from the code under test.
"""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest

from gardien.rights.deadlines import can_extend, due_on, paused_days_between, receipt_day

# (country, received on, expected deadline, why)
ONE_MONTH = [
    ("FR", date(2027, 3, 9), date(2027, 4, 9), "same date next month; Friday 9 April 2027 is a working day"),
    ("FR", date(2025, 1, 31), date(2025, 2, 28), "31 February does not exist: last day, Friday 28 February 2025"),
    ("FR", date(2028, 1, 31), date(2028, 2, 29), "2028 is a leap year: Tuesday 29 February"),
    ("FR", date(2027, 1, 31), date(2027, 3, 1), "28 February 2027 is a Sunday: Monday 1 March"),
    ("FR", date(2027, 1, 30), date(2027, 3, 1), "30 February does not exist; 28th is a Sunday"),
    ("FR", date(2027, 3, 10), date(2027, 4, 12), "10 April 2027 is a Saturday: Monday 12 April"),
    ("BE", date(2027, 3, 10), date(2027, 4, 12), "weekends roll in every country"),
    ("FR", date(2027, 6, 14), date(2027, 7, 15), "14 July 2027 (Wednesday) is the Fête nationale"),
    ("BE", date(2027, 6, 14), date(2027, 7, 14), "14 July is an ordinary Wednesday in Belgium"),
    ("NL", date(2027, 6, 14), date(2027, 7, 14), "and in the Netherlands"),
    ("BE", date(2027, 6, 21), date(2027, 7, 22), "21 July 2027 (Wednesday) is the Belgian national day"),
    ("FR", date(2027, 6, 21), date(2027, 7, 21), "21 July is an ordinary Wednesday in France"),
    ("NL", date(2027, 3, 27), date(2027, 4, 28), "Tuesday 27 April 2027 is King's Day"),
    ("FR", date(2027, 3, 27), date(2027, 4, 27), "not a holiday in France"),
    ("BE", date(2027, 3, 27), date(2027, 4, 27), "nor in Belgium"),
    ("FR", date(2026, 3, 6), date(2026, 4, 7), "Monday 6 April 2026 is Easter Monday"),
    ("NL", date(2026, 3, 6), date(2026, 4, 7), "Tweede Paasdag"),
    ("BE", date(2026, 3, 6), date(2026, 4, 7), "Paasmaandag / lundi de Pâques"),
    ("FR", date(2027, 2, 28), date(2027, 3, 30), "28 March 2027 is Easter Sunday, 29 Easter Monday: Tuesday"),
    ("FR", date(2027, 4, 6), date(2027, 5, 7), "Thursday 6 May 2027 is Ascension Day"),
    ("NL", date(2027, 4, 17), date(2027, 5, 18), "Monday 17 May 2027 is Whit Monday (Tweede Pinksterdag)"),
    ("FR", date(2027, 10, 11), date(2027, 11, 12), "Thursday 11 November 2027, Armistice"),
    ("BE", date(2027, 10, 11), date(2027, 11, 12), "Armistice in Belgium too"),
    ("NL", date(2027, 10, 11), date(2027, 11, 11), "not a holiday in the Netherlands"),
    ("FR", date(2026, 11, 25), date(2026, 12, 28), "Christmas 2026 is a Friday, then a weekend: Monday 28"),
    ("NL", date(2027, 11, 26), date(2027, 12, 27), "26 December 2027 (Tweede Kerstdag) is a Sunday: Monday 27"),
]


@pytest.mark.parametrize(("country", "received", "expected", "why"), ONE_MONTH)
def test_one_month_from_receipt(country: str, received: date, expected: date, why: str) -> None:
    assert due_on(received, country) == expected, why


EXTENDED = [
    ("FR", date(2027, 3, 9), date(2027, 6, 9), "9 June 2027 is a Wednesday"),
    ("FR", date(2027, 1, 31), date(2027, 4, 28), "first month ends 28 February (before any roll); +2 months"),
    ("FR", date(2027, 3, 10), date(2027, 6, 10), "first month ends Saturday 10 April, not Monday 12: 10 June"),
    ("FR", date(2027, 2, 8), date(2027, 5, 10), "8 May 2027 is a Saturday (and Victoire 1945): Monday 10"),
    ("BE", date(2027, 2, 17), date(2027, 5, 18), "Monday 17 May 2027 is Whit Monday in Belgium"),
]


@pytest.mark.parametrize(("country", "received", "expected", "why"), EXTENDED)
def test_extended_by_two_further_months(country: str, received: date, expected: date, why: str) -> None:
    assert due_on(received, country, extended=True) == expected, why


PAUSED = [
    ("FR", date(2027, 3, 1), 10, date(2027, 4, 12), "starts 11 March; 11 April 2027 is a Sunday"),
    ("FR", date(2027, 3, 1), 0, date(2027, 4, 1), "no pause: Thursday 1 April"),
    ("FR", date(2027, 1, 20), 11, date(2027, 3, 1), "starts 31 January: 28 February is a Sunday"),
]


@pytest.mark.parametrize(("country", "received", "paused", "expected", "why"), PAUSED)
def test_days_paused_for_identity_move_the_start(
    country: str, received: date, paused: int, expected: date, why: str
) -> None:
    assert due_on(received, country, paused_days=paused) == expected, why


def test_the_day_of_receipt_is_the_organisations_local_date() -> None:
    # 23:30 UTC on 31 January is 00:30 on 1 February in Paris (UTC+1 in winter).
    received = datetime(2027, 1, 31, 23, 30, tzinfo=UTC)
    assert receipt_day(received, "FR") == date(2027, 2, 1)
    # 1 March 2027 is a Monday: one month from 1 February.
    assert due_on(receipt_day(received, "FR"), "FR") == date(2027, 3, 1)
    # 21:30 UTC on 30 June is 23:30 in Brussels (UTC+2 in summer): still 30 June.
    assert receipt_day(datetime(2027, 6, 30, 21, 30, tzinfo=UTC), "BE") == date(2027, 6, 30)
    assert receipt_day(datetime(2027, 6, 30, 22, 30, tzinfo=UTC), "BE") == date(2027, 7, 1)


def test_extension_only_until_the_end_of_the_first_deadline() -> None:
    first = date(2027, 4, 12)
    assert can_extend(date(2027, 3, 20), first)
    assert can_extend(first, first)  # the whole last day counts
    assert not can_extend(date(2027, 4, 13), first)


def test_paused_days_are_whole_local_days() -> None:
    # Paused at 10:00 Paris on 1 March, resumed at 09:00 Paris on 11 March: ten days.
    assert paused_days_between(datetime(2027, 3, 1, 9, tzinfo=UTC), datetime(2027, 3, 11, 8, tzinfo=UTC), "FR") == 10
    assert paused_days_between(datetime(2027, 3, 1, 9, tzinfo=UTC), datetime(2027, 3, 1, 18, tzinfo=UTC), "FR") == 0


def test_unknown_country_is_refused() -> None:
    with pytest.raises(ValueError):
        due_on(date(2027, 3, 9), "XX")
