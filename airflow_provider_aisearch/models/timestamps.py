"""Timestamps as Cloudflare's schema allows them: parsing every accepted form, and the unparseable ones.

Cloudflare's schema types a job's ``started_at`` / ``ended_at`` / ``last_seen_at`` as plain strings
and a log entry's ``created_at`` as a plain number. :func:`parse_timestamp` accepts:

* ``2026-07-16 19:29:59`` (the form Cloudflare sends today; no zone means UTC);
* RFC 3339 / ISO 8601 with ``T``, fractions of any length and ``Z`` / ``±HH:MM`` / ``±HHMM``
  (``2025-07-27T17:07:45.123456Z``, ``2025-07-27T19:07:45+02:00``);
* Unix epoch time as a JSON number or a string of digits (``1753636065``, ``"1753636065.5"``).
  A number of :data:`EPOCH_MS_THRESHOLD` (10^11) or more is read as milliseconds: 10^11 seconds
  would be the year 5138, and 10^11 milliseconds is March 1973, so no date this API can send is
  ambiguous. A digit string needs 9 or more integer digits (``2026`` is a year, ``20260716`` a date).

Every result is an aware UTC :class:`~datetime.datetime`.

A model keeps a value it cannot read as sent (:func:`read_timestamps`: its ``unparsed_timestamps``),
so an odd optional timestamp never fails a wait; :func:`warn_unparsed` logs it once per object and
field in a process (the core calls it for every answer it parses).

This module imports nothing from Airflow.
"""

from __future__ import annotations

import logging
import math
import re
import threading
from collections import OrderedDict
from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta, timezone
from typing import Any

__all__ = [
    "EPOCH_MS_THRESHOLD",
    "MalformedJobError",
    "format_timestamp",
    "parse_timestamp",
    "read_timestamps",
    "warn_unparsed",
]

log = logging.getLogger(__name__)


class MalformedJobError(ValueError):
    """A job or log object from the API lacks a required field or has a field of the wrong type."""


#: An epoch number at or above this is milliseconds, below it seconds (see the module docstring).
EPOCH_MS_THRESHOLD = 10**11
_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
#: Epoch seconds or milliseconds as a string: 9+ integer digits, an optional fraction.
_EPOCH_TEXT = re.compile(r"(\d{9,})(?:\.(\d+))?")
_DATE_FIRST = re.compile(r"\d{4}-?\d{2}-?\d{2}")
#: The forms Cloudflare sends (``2026-07-16 19:29:59``, or ISO 8601 with ``T``, up to 6 fraction
#: digits and ``Z`` / ``±HH:MM`` / ``±HHMM``), read without pendulum: listing 10,000 jobs parses
#: 30,000 timestamps, and ``pendulum.parse`` costs about 15 µs each.
_COMMON_FORM = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})[ T](\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,6}))?(?:(Z)|([+-])(\d{2}):?(\d{2}))?"
)


def _parse_common_form(text: str) -> datetime | None:
    """A timestamp in :data:`_COMMON_FORM` (naive = UTC), or ``None`` for any other form."""
    match = _COMMON_FORM.fullmatch(text)
    if match is None:
        return None
    year, month, day, hour, minute, second, fraction, _, sign, off_h, off_m = match.groups()
    zone = timezone.utc
    if sign is not None:
        offset = timedelta(hours=int(off_h), minutes=int(off_m))
        zone = timezone(-offset if sign == "-" else offset)
    micro = int(fraction.ljust(6, "0")) if fraction else 0
    return datetime(int(year), int(month), int(day), int(hour), int(minute), int(second), micro, tzinfo=zone)


def _from_epoch(whole: int, micro: int) -> datetime:
    """``whole`` seconds (or milliseconds, from :data:`EPOCH_MS_THRESHOLD` on) plus ``micro`` millionths of them."""
    if abs(whole) >= EPOCH_MS_THRESHOLD:
        return _EPOCH + timedelta(milliseconds=whole, microseconds=micro / 1000)
    return _EPOCH + timedelta(seconds=whole, microseconds=micro)


def _parse_epoch_number(value: float, name: str) -> datetime:
    if not math.isfinite(value):
        raise MalformedJobError(f"{name} is not a timestamp: {value!r}")
    whole = math.floor(value)
    return _from_epoch(int(whole), round((value - whole) * 1_000_000))


def _parse_text(value: str, name: str) -> datetime:
    text = value.strip()
    epoch = _EPOCH_TEXT.fullmatch(text)
    if epoch is not None:
        fraction = epoch.group(2) or ""
        return _from_epoch(int(epoch.group(1)), int(fraction[:6].ljust(6, "0")))
    common = _parse_common_form(text)
    if common is not None:
        return common
    import pendulum  # Airflow imports it already: no import cost

    result = None
    if _DATE_FIRST.match(text):  # a date and maybe a time; never a bare time or a duration
        try:
            result = pendulum.parse(text, tz="UTC")
        except (ValueError, TypeError, OverflowError):
            result = None
    if not isinstance(result, pendulum.DateTime):
        raise MalformedJobError(f"{name} is not a timestamp: {value[:64]!r}")
    return datetime(
        result.year,
        result.month,
        result.day,
        result.hour,
        result.minute,
        result.second,
        result.microsecond,
        tzinfo=timezone(result.utcoffset() or timedelta(0)),
    )


def parse_timestamp(value: Any, *, name: str = "timestamp") -> datetime | None:
    """
    Parse a timestamp in any form the module docstring lists into an aware UTC datetime.

    ``pendulum`` reads ISO 8601 shapes beyond the common ones, the same on every Python version
    (``datetime.fromisoformat`` accepts far less before Python 3.11).

    :param value: The raw value (``None`` and ``""`` give ``None``).
    :param name: Field name, for the error message.
    :raises MalformedJobError: the value is not a timestamp.
    """
    if value is None or value == "":
        return None
    try:
        if isinstance(value, datetime):
            parsed = value
        elif isinstance(value, bool):
            raise MalformedJobError(f"{name} must be a string or a number, got bool")
        elif isinstance(value, (int, float)):
            parsed = _parse_epoch_number(value, name)
        elif isinstance(value, str):
            parsed = _parse_text(value, name)
        else:
            raise MalformedJobError(f"{name} must be a string or a number, got {type(value).__name__}")
    except (ValueError, OverflowError) as exc:  # e.g. month 13, an offset of a day or more, year 10000
        if isinstance(exc, MalformedJobError):
            raise
        raise MalformedJobError(f"{name} is not a timestamp: {str(value)[:64]!r}") from None
    if parsed.tzinfo is None:
        return parsed.replace(tzinfo=timezone.utc)
    return parsed.astimezone(timezone.utc)


def read_timestamps(raw: Mapping[str, Any], keys: Iterable[str]) -> tuple[dict[str, datetime | None], dict[str, Any]]:
    """
    Read optional timestamp fields leniently: ``(parsed, unparsed)``.

    ``parsed`` maps every key to its datetime (``None`` when absent, null, empty, or unreadable);
    ``unparsed`` maps the keys whose value is present but not a timestamp to that value, as sent.
    """
    parsed: dict[str, datetime | None] = {}
    unparsed: dict[str, Any] = {}
    for key in keys:
        value = raw.get(key)
        try:
            parsed[key] = parse_timestamp(value, name=key)
        except MalformedJobError:
            parsed[key] = None
            unparsed[key] = value
    return parsed, unparsed


def format_timestamp(value: datetime | None, unparsed: Mapping[str, Any], key: str) -> Any:
    """A field as :func:`read_timestamps` read it, for XCom: ISO 8601 UTC, or as sent when not a timestamp."""
    if key in unparsed:
        return unparsed[key]
    return None if value is None else value.isoformat()


#: How many (kind, object, field) triples :func:`warn_unparsed` remembers (the oldest are forgotten).
_WARNED_MAX = 4096
_warned: OrderedDict[tuple[str, str, str], None] = OrderedDict()
_warned_lock = threading.Lock()


def warn_unparsed(what: str, ident: str, unparsed: Mapping[str, Any], *, where: str, consequence: str = "") -> None:
    """
    Log each unreadable timestamp of one object once per process (per object and field).

    The memory is per process and bounded (:data:`_WARNED_MAX`), so a sensor poking or a trigger
    polling the same job logs its odd ``started_at`` once, not at every poll.

    :param what: The kind of object (``"job"``, ``"log entry"``, ``"item"``, ``"instance stats"``).
    :param ident: The object's id (or the request path when it has none).
    :param unparsed: Field name -> value as sent (a model's ``unparsed_timestamps``).
    :param where: The request, e.g. ``"GET /accounts/.../jobs/j1"``.
    :param consequence: What the reader does instead, appended to the message.
    """
    for key, value in unparsed.items():
        marker = (what, ident, key)
        with _warned_lock:
            if marker in _warned:
                _warned.move_to_end(marker)
                continue
            _warned[marker] = None
            if len(_warned) > _WARNED_MAX:
                _warned.popitem(last=False)
        log.warning(
            "%s: %s %r has a %s that is not a timestamp (%s); it is kept as sent%s",
            where,
            what,
            ident,
            key,
            repr(value)[:64],
            consequence,
        )


def _forget_warnings() -> None:
    """Forget what :func:`warn_unparsed` logged (tests start each case afresh)."""
    with _warned_lock:
        _warned.clear()
