"""Dates, ISO times, ages and calendar periods in a time zone."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest

from recorder.errors import InputError
from recorder.timespec import parse_moment, parse_zone, periods

NOW = datetime(2026, 4, 10, 12, 0, tzinfo=UTC)
BERLIN = ZoneInfo("Europe/Berlin")


@pytest.mark.parametrize(
    ("text", "zone", "end", "expected"),
    [
        ("2026-03-31", UTC, False, datetime(2026, 3, 31, tzinfo=UTC)),
        ("2026-03-31", UTC, True, datetime(2026, 3, 31, 23, 59, 59, 999999, tzinfo=UTC)),
        ("2026-03-31", BERLIN, True, datetime(2026, 3, 31, 21, 59, 59, 999999, tzinfo=UTC)),
        ("2026-03-31T18:00:00+02:00", UTC, False, datetime(2026, 3, 31, 16, tzinfo=UTC)),
        ("2026-03-31T18:00:00Z", BERLIN, False, datetime(2026, 3, 31, 18, tzinfo=UTC)),
        ("2026-03-31T18:00", BERLIN, False, datetime(2026, 3, 31, 16, tzinfo=UTC)),
        ("7d", UTC, False, datetime(2026, 4, 3, 12, tzinfo=UTC)),
        ("24h", UTC, False, datetime(2026, 4, 9, 12, tzinfo=UTC)),
        ("30m", UTC, False, datetime(2026, 4, 10, 11, 30, tzinfo=UTC)),
        ("now", BERLIN, True, NOW),
    ],
)
def test_moments(text: str, zone: object, end: bool, expected: datetime) -> None:
    assert parse_moment(text, zone, NOW, end_of_day=end) == expected  # type: ignore[arg-type]


@pytest.mark.parametrize("text", ["31/03/2026", "yesterday", "7 days", "2026-13-01", ""])
def test_bad_moments_are_one_clear_sentence(text: str) -> None:
    with pytest.raises(InputError, match="is not a date or time"):
        parse_moment(text, UTC, NOW, option="--since")


def test_unknown_zones_are_refused() -> None:
    with pytest.raises(InputError, match="is not a time zone"):
        parse_zone("Mars/Olympus")
    assert parse_zone("utc") is UTC


def test_days_follow_the_zone_across_a_summer_time_change() -> None:
    days = list(
        periods(
            datetime(2026, 3, 28, 12, tzinfo=UTC),
            datetime(2026, 3, 30, 12, tzinfo=UTC),
            "day",
            BERLIN,
        )
    )
    assert [
        (s.astimezone(BERLIN).isoformat(), (e - s).total_seconds() / 3600) for s, e in days
    ] == [
        ("2026-03-28T00:00:00+01:00", 24.0),
        ("2026-03-29T00:00:00+01:00", 23.0),  # the night the clocks go forward
        ("2026-03-30T00:00:00+02:00", 24.0),
    ]


def test_weeks_start_on_monday_and_months_on_the_first() -> None:
    (week,) = list(
        periods(datetime(2026, 4, 8, tzinfo=UTC), datetime(2026, 4, 8, tzinfo=UTC), "week", UTC)
    )
    assert week[0] == datetime(2026, 4, 6, tzinfo=UTC)
    months = list(
        periods(datetime(2026, 1, 31, tzinfo=UTC), datetime(2026, 3, 1, tzinfo=UTC), "month", UTC)
    )
    assert [s.month for s, _ in months] == [1, 2, 3]


def test_hours_stay_distinct_when_the_clocks_go_back() -> None:
    hours = list(
        periods(
            datetime(2026, 10, 25, 0, 30, tzinfo=UTC),
            datetime(2026, 10, 25, 1, 30, tzinfo=UTC),
            "hour",
            BERLIN,
        )
    )
    assert len(hours) == 2 and hours[1][0] - hours[0][0] == hours[0][1] - hours[0][0]
