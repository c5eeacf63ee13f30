"""Dates on the command line: ISO 8601, the API's own form, and relative ones (30d, now).

Pure and standard library only: the argument parser uses it, and `--help` must not wait for
the client to import.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone

__all__ = ["DATES_HELP", "When", "parse_when", "parse_when_spec", "resolve_when"]

UTC = timezone.utc

DATE_EXAMPLES = "2026-11-01, 2026-11-01T12:00, 2026-11-01 12:00:00+02:00 or 2026-11-01T12:00:00Z"
RELATIVE_EXAMPLES = "30d, 12h, 2w, 90m or now"
DATES_HELP = (
    f"Dates are ISO 8601 ({DATE_EXAMPLES}) or the API's own form (2026-11-01 12:00:00 +00:00). "
    "A date or time without a zone is UTC. Or relative: a whole number and m, h, d or w "
    "(minutes, hours, days, weeks) means that long before now, as in --from 30d or --from 90m; "
    "'now' is now. Now is read once, when the command starts; an export resumed from its "
    "state file keeps the first run's."
)

#: Patterns as text: re compiles (and caches) them on first use, so --help pays nothing.
_WHEN = (
    r"(?P<year>[0-9]{4})-(?P<month>[0-9]{2})-(?P<day>[0-9]{2})"
    r"(?:[T ](?P<hour>[0-9]{2}):(?P<minute>[0-9]{2})"
    r"(?::(?P<second>[0-9]{2})(?:\.(?P<fraction>[0-9]{1,6}))?)?"
    r" ?(?P<zone>[Zz]|[+-][0-9]{2}:?[0-9]{2})?)?"
)


_RELATIVE = r"(?P<count>[0-9]{1,12})(?P<unit>[mhdw])|now"
_UNITS = {"m": "minutes", "h": "hours", "d": "days", "w": "weeks"}

#: A parsed --from/--to: a moment, or how long before "now" (which is read later, once).
When = datetime | timedelta


def parse_when_spec(text: str) -> When:
    """A command-line date or time: an aware UTC datetime, or a timedelta before "now".

    Accepts ISO 8601 dates and times (``T`` or a blank between them, ``Z`` or ``+HH:MM``), the
    API's ``YYYY-MM-DD HH:MM:SS +00:00`` (no zone means UTC), ``30d``, ``12h``, ``2w``,
    ``90m`` and ``now``. Raises ValueError with a readable reason.
    """
    relative = re.fullmatch(_RELATIVE, text.strip())
    if relative is not None:
        if relative.group("unit") is None:
            return timedelta(0)
        try:
            return timedelta(**{_UNITS[relative.group("unit")]: int(relative.group("count"))})
        except OverflowError:
            raise ValueError(f"{text!r} reaches too far back") from None
    match = re.fullmatch(_WHEN, text.strip())
    if match is None:
        raise ValueError(
            f"{text!r} is not a date: use ISO 8601 such as {DATE_EXAMPLES}, or "
            f"{RELATIVE_EXAMPLES}; without a zone it is UTC"
        )
    part = match.groupdict()
    zone = UTC
    if part["zone"] is not None and part["zone"] not in "Zz":
        digits = part["zone"].replace(":", "")
        offset = timedelta(hours=int(digits[1:3]), minutes=int(digits[3:5]))
        try:
            zone = timezone(-offset if digits[0] == "-" else offset)
        except ValueError:
            raise ValueError(f"{text!r} is not a valid date: bad zone offset") from None
    try:
        moment = datetime(
            int(part["year"]),
            int(part["month"]),
            int(part["day"]),
            int(part["hour"] or 0),
            int(part["minute"] or 0),
            int(part["second"] or 0),
            int((part["fraction"] or "0").ljust(6, "0")),
            tzinfo=zone,
        )
        # Inside the try: 0001-01-01T00:00+01:00 is a valid local time but before year 1 in UTC.
        return moment.astimezone(UTC)
    except (ValueError, OverflowError) as exc:
        raise ValueError(f"{text!r} is not a valid date: {exc}") from None


def resolve_when(when: When, now: datetime) -> datetime:
    """The moment `when` names, a relative one read against `now`; ValueError if out of range."""
    if isinstance(when, datetime):
        return when
    try:
        return now - when
    except OverflowError:
        raise ValueError(f"{_ago(when)} before {now.isoformat()} is before the year 1") from None


def _ago(when: timedelta) -> str:
    return f"{when.days} days" if not when.seconds else str(when)


def parse_when(text: str, *, now: datetime) -> datetime:
    """`parse_when_spec` and `resolve_when` in one: the moment `text` names at `now`."""
    return resolve_when(parse_when_spec(text), now)
