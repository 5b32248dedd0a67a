"""FHIR date, dateTime and instant values as the UTC ranges that search compares.

FHIR search treats every date as an implicit range: "2024-03" covers the whole month
(R4 §3.1.1.4.7 Date). Ranges are UTC-aware datetimes, stored by the database as UTC.
"""

import calendar
import re
from datetime import UTC, datetime, timedelta

_DATE_RE = re.compile(
    r"^(?P<year>\d{4})(?:-(?P<month>\d{2})(?:-(?P<day>\d{2})"
    r"(?:T(?P<hour>\d{2}):(?P<minute>\d{2})(?::(?P<second>\d{2})(?:\.(?P<fraction>\d+))?)?"
    r"(?P<tz>Z|[+-]\d{2}:\d{2})?)?)?)?$"
)

EARLIEST = datetime(1, 1, 1, tzinfo=UTC)
LATEST = datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC)


def parse_range(text: str) -> tuple[datetime, datetime]:
    """The [lo, hi] UTC range a FHIR date, dateTime or instant covers; ValueError if malformed,
    or if its zone puts it outside the years 1 to 9999 in UTC (`9999-12-31T23:00-05:00`)."""
    try:
        lo, hi = _naive_range(text)
    except OverflowError:
        raise ValueError(f"outside the years 1 to 9999 in UTC: {text[:40]!r}") from None
    return lo.replace(tzinfo=UTC), hi.replace(tzinfo=UTC)


def _naive_range(text: str) -> tuple[datetime, datetime]:
    match = _DATE_RE.match(text)
    if match is None:
        raise ValueError(f"not a FHIR date or dateTime: {text[:40]!r}")
    parts = match.groupdict()
    year = int(parts["year"])
    if parts["month"] is None:
        return datetime(year, 1, 1), datetime(year, 12, 31, 23, 59, 59, 999999)
    month = int(parts["month"])
    if parts["day"] is None:
        last_day = calendar.monthrange(year, month)[1]
        return datetime(year, month, 1), datetime(year, month, last_day, 23, 59, 59, 999999)
    day = int(parts["day"])
    if parts["hour"] is None:
        start = datetime(year, month, day)
        return start, start + _last_microsecond(timedelta(days=1))
    return _time_range(datetime(year, month, day), parts)


def _time_range(date: datetime, parts: dict[str, str | None]) -> tuple[datetime, datetime]:
    """A time of day is as precise as it is written: seconds, or the digits of the fraction."""
    hour, minute = int(parts["hour"] or 0), int(parts["minute"] or 0)
    if parts["second"] is None:
        width = timedelta(minutes=1)
        start = date.replace(hour=hour, minute=minute)
    else:
        fraction = (parts["fraction"] or "")[:6]
        width = (
            timedelta(microseconds=10 ** (6 - len(fraction))) if fraction else timedelta(seconds=1)
        )
        micro = int(fraction.ljust(6, "0")) if fraction else 0
        start = date.replace(
            hour=hour, minute=minute, second=int(parts["second"]), microsecond=micro
        )
    start = _to_utc(start, parts["tz"])
    return start, start + _last_microsecond(width)


def _last_microsecond(width: timedelta) -> timedelta:
    """From a span's first microsecond to its last: added in one step, so that the calendar's
    last day (9999-12-31) ends on itself rather than overflowing into a day that cannot be."""
    return width - timedelta(microseconds=1)


def _to_utc(moment: datetime, tz: str | None) -> datetime:
    """Times without a zone are taken as UTC, the server's time zone."""
    if tz is None or tz == "Z":
        return moment
    sign = 1 if tz[0] == "+" else -1
    offset = timedelta(hours=int(tz[1:3]), minutes=int(tz[4:6]))
    return moment - sign * offset


def format_instant(moment: datetime) -> str:
    """A FHIR instant in UTC with millisecond precision, e.g. 2026-11-25T08:00:00.123Z."""
    moment = moment.astimezone(UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def as_utc(moment: datetime) -> datetime:
    """A stored moment in UTC: SQLite hands datetimes back naive, as they were written in UTC."""
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def now_ms() -> datetime:
    """The current UTC time, truncated to the millisecond precision lastUpdated carries."""
    moment = datetime.now(UTC)
    return moment.replace(microsecond=moment.microsecond - moment.microsecond % 1000)
