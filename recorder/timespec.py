"""Moments and periods as users write them: dates, ISO 8601, "7d"; calendar periods in a zone.

Pure functions: the current time is always passed in. Stored times are UTC; a zone only
decides where a day (or hour, week, month) starts and how times are shown.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from recorder.errors import InputError
from recorder.text import safe

PERIODS = ("hour", "day", "week", "month")
_RELATIVE = re.compile(r"(\d+)\s*([mhdw])")
_UNITS = {"m": "minutes", "h": "hours", "d": "days", "w": "weeks"}
#: Stored times have microsecond precision on every backend, so "up to the end of a day"
#: is "up to one microsecond before the next day starts".
TICK = timedelta(microseconds=1)


def parse_zone(name: str) -> tzinfo:
    """An IANA zone ("Europe/Berlin") or "UTC"; InputError for anything else."""
    if name.upper() in ("UTC", "Z"):
        return UTC
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise InputError(
            f"--tz {name!r} is not a time zone; use a name like UTC, Europe/Berlin or "
            "America/New_York."
        ) from None


def parse_moment(
    text: str, zone: tzinfo, now: datetime, *, end_of_day: bool = False, option: str = "WHEN"
) -> datetime:
    """A moment in UTC from "2026-03-31", an ISO 8601 time, "now", or "7d" / "24h" ago.

    A bare date means its start in `zone`, or with `end_of_day` its last microsecond.
    A time without an offset is read in `zone`.
    """
    try:
        return _moment(text, zone, now, end_of_day=end_of_day, option=option)
    except OverflowError:
        raise InputError(
            f"{option} {safe(text, 40)!r} is outside the times the recorder can show "
            "(years 1 to 9999 in every zone); give a nearer date or age."
        ) from None


def _moment(text: str, zone: tzinfo, now: datetime, *, end_of_day: bool, option: str) -> datetime:
    value = text.strip()
    if value.lower() == "now":
        return now.astimezone(UTC)
    relative = _RELATIVE.fullmatch(value.lower())
    if relative:
        amount, unit = int(relative.group(1)), _UNITS[relative.group(2)]
        return (now - timedelta(**{unit: amount})).astimezone(UTC)
    try:
        if re.fullmatch(r"\d{4}-\d{2}-\d{2}", value):
            day = date.fromisoformat(value)
            start = local_midnight(day, zone)
            return (local_midnight(day + timedelta(days=1), zone) - TICK) if end_of_day else start
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise InputError(
            f"{option} {text!r} is not a date or time; use 2026-03-31, "
            "2026-03-31T18:00:00+02:00, now, or an age such as 7d, 24h, 30m, 2w."
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=zone)
    return moment.astimezone(UTC)


def local_midnight(day: date, zone: tzinfo) -> datetime:
    """The first moment of `day` in `zone`, in UTC."""
    return datetime.combine(day, time(0), tzinfo=zone).astimezone(UTC)


def period_start(moment: datetime, every: str, zone: tzinfo) -> datetime:
    """The start (UTC) of the hour / day / ISO week / month holding `moment`, in `zone`."""
    local = moment.astimezone(zone)
    if every == "hour":
        # Whole hours in UTC are whole hours in every zone with whole-hour offsets; going
        # through UTC keeps the repeated hour at the end of summer time distinct.
        offset = local.utcoffset() or timedelta(0)
        truncated = (moment.astimezone(UTC) + offset).replace(minute=0, second=0, microsecond=0)
        return (truncated - offset).astimezone(UTC)
    if every == "day":
        return local_midnight(local.date(), zone)
    if every == "week":
        return local_midnight(local.date() - timedelta(days=local.weekday()), zone)
    if every == "month":
        return local_midnight(local.date().replace(day=1), zone)
    raise InputError(f"--every must be one of {', '.join(PERIODS)} (got {every!r}).")


def next_period(start: datetime, every: str, zone: tzinfo) -> datetime:
    """The start of the period after the one starting at `start`."""
    if every == "hour":
        return start + timedelta(hours=1)
    local = start.astimezone(zone).date()
    if every == "day":
        return local_midnight(local + timedelta(days=1), zone)
    if every == "week":
        return local_midnight(local + timedelta(days=7), zone)
    month = local.replace(day=1) + timedelta(days=32)
    return local_midnight(month.replace(day=1), zone)


def periods(
    since: datetime, until: datetime, every: str, zone: tzinfo
) -> Iterator[tuple[datetime, datetime]]:
    """[start, end) of every period overlapping since..until, in order, as UTC times."""
    start = period_start(since, every, zone)
    while start <= until:
        try:
            end = next_period(start, every, zone)
        except OverflowError:  # the last period before the end of the calendar
            yield start, datetime.max.replace(tzinfo=UTC)
            return
        yield start, end
        start = end


def show(moment: datetime, zone: tzinfo, *, precise: bool = True) -> str:
    """A stored time as shown in reports: ISO 8601 in `zone`, with its offset; to the
    microsecond in exports, to the second on screen."""
    return moment.astimezone(zone).isoformat(timespec="auto" if precise else "seconds")
