"""Value objects for an AI Search instance, its item statistics and its items (the quality gate's inputs).

:class:`Instance` is ``GET .../instances/{id}`` (its source: an R2 bucket or a website),
:class:`InstanceStats` is ``GET .../instances/{id}/stats`` (item counts by status, ``degraded``
when Cloudflare cannot count them), :class:`Item` is one entry of ``GET .../instances/{id}/items``.
Shapes follow the ``cloudflare`` SDK 5.9 types ``InstanceReadResponse``, ``InstanceStatsResponse``
and ``ItemListResponse``; unknown extra fields are ignored, and a field of the wrong type raises
:class:`MalformedInstanceError` (a :class:`~airflow_provider_aisearch.models.jobs.MalformedJobError`, which
the core turns into :class:`~airflow_provider_aisearch.exceptions.AISearchResponseError`).

Like :mod:`~airflow_provider_aisearch.models.jobs`, this module imports nothing from Airflow.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from datetime import datetime
from enum import Enum
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from airflow_provider_aisearch.models.jobs import MalformedJobError
from airflow_provider_aisearch.models.timestamps import format_timestamp, read_timestamps

__all__ = [
    "ITEM_SORT_KEYS",
    "STATS_COUNT_FIELDS",
    "Instance",
    "InstanceStats",
    "Item",
    "ItemStatus",
    "MalformedInstanceError",
    "MalformedStatsError",
    "redact_url",
    "url_secrets",
]

_URL = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://[^\s]+")
_USERINFO = re.compile(r"(?<=://)[^/@?#\s]*@")
_QUERY_VALUE = re.compile(r"(?<=[?&])([^=&#\s]*)=[^&#\s]*")
#: Query keys whose values are credentials (masked in task logs; any query value is redacted in a repr).
_SECRET_QUERY_KEY = re.compile(r"key|token|secret|pass|auth|sig|credential|session", re.IGNORECASE)


def redact_url(text: str | None) -> str | None:
    """
    ``text`` with a URL's user info replaced by ``***@`` and its query values by ``***`` (for a repr).

    :param text: A URL, or a string holding one (an item's ``source_id`` is ``"web-crawler:<url>"``).
    """
    if text is None or "://" not in text:
        return text
    return _QUERY_VALUE.sub(r"\1=***", _USERINFO.sub("***@", text))


def url_secrets(text: str | None) -> list[str]:
    """
    The credentials in a URL (in ``text``): the user info's password and the values of query keys that
    name a credential (``key``, ``token``, ``secret``, ``password``, ``signature``, ...), to be masked.

    :param text: A URL, or a string holding one.
    """
    match = _URL.search(text or "")
    if match is None:
        return []
    parts = urlsplit(match.group(0))  # .password as written (not unquoted), as it appears in a log
    found = [parts.password or ""]
    found += [v for k, v in parse_qsl(parts.query) if _SECRET_QUERY_KEY.search(k)]
    return [v for v in found if v]


def _redacted_repr(obj: Any, *url_fields: str) -> str:
    """
    The dataclass repr, with ``url_fields`` through :func:`redact_url` (for a mapping field, each string value:
    an item's ``metadata`` holds its folder, which for a crawled page is part of its URL).
    """

    def shown(name: str) -> Any:
        value = getattr(obj, name)
        if name not in url_fields:
            return value
        if isinstance(value, Mapping):
            return {k: redact_url(v) if isinstance(v, str) else v for k, v in value.items()}
        return redact_url(value)

    return f"{type(obj).__name__}({', '.join(f'{f.name}={shown(f.name)!r}' for f in fields(obj))})"


class MalformedInstanceError(MalformedJobError):
    """An instance, stats or item object from the API lacks a required field or has one of the wrong type."""


class MalformedStatsError(MalformedInstanceError):
    """
    A stats answer that can never become valid: a negative count, or a field of the wrong type.

    Unlike a garbled body (HTML from a proxy, cut JSON, which the retries ride out), this is a
    well-formed answer that breaks the schema, so reading it again cannot help: the core turns it
    into a permanent :class:`~airflow_provider_aisearch.exceptions.AISearchResponseError` and an
    item wait fails at its first such read instead of at its timeout.
    """


class ItemStatus(str, Enum):
    """Status of one indexed item (a file or a page), as the items list and the stats report it."""

    QUEUED = "queued"
    RUNNING = "running"
    COMPLETED = "completed"
    ERROR = "error"
    SKIPPED = "skipped"
    OUTDATED = "outdated"

    def __str__(self) -> str:
        return self.value


#: The item counts of :class:`InstanceStats`, in the order of the XCom shape.
STATS_COUNT_FIELDS = ("completed", "queued", "running", "error", "skipped", "outdated")
#: The items list's ``sort_by`` values (SDK ``item_list_params``): status priority, or modification time.
ITEM_SORT_KEYS = frozenset({"status", "modified_at"})


def _object(raw: Any, what: str) -> Mapping[str, Any]:
    if not isinstance(raw, Mapping):
        raise MalformedInstanceError(f"{what} must be a JSON object, got {type(raw).__name__}")
    return raw


def _required_str(raw: Mapping[str, Any], key: str, what: str) -> str:
    value = raw.get(key)
    if not isinstance(value, str) or not value:
        raise MalformedInstanceError(f"{what} has no string {key!r}")
    return value


def _optional_str(raw: Mapping[str, Any], key: str, what: str) -> str | None:
    value = raw.get(key)
    if value is None or isinstance(value, str):
        return value
    raise MalformedInstanceError(f"{what} field {key!r} must be a string or null, got {type(value).__name__}")


def _optional_bool(
    raw: Mapping[str, Any], key: str, what: str, error: type[MalformedInstanceError] = MalformedInstanceError
) -> bool | None:
    value = raw.get(key)
    if value is None or isinstance(value, bool):
        return value
    raise error(f"{what} field {key!r} must be a boolean or null, got {type(value).__name__}")


def _optional_count(
    raw: Mapping[str, Any], key: str, what: str, error: type[MalformedInstanceError] = MalformedInstanceError
) -> int | None:
    """A non-negative integer or ``None`` (``3.0`` is read as 3: JSON has one number type)."""
    value = raw.get(key)
    if value is None:
        return None
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise error(f"{what} field {key!r} must be a non-negative integer or null, got {value!r}")
    return value


def _optional_size(raw: Mapping[str, Any], key: str, what: str) -> int | float | None:
    """A non-negative number or ``None``; an integral one as an ``int`` (the SDK types sizes as numbers)."""
    value = raw.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value >= 0:
        raise MalformedInstanceError(f"{what} field {key!r} must be a non-negative number or null, got {value!r}")
    return int(value) if isinstance(value, float) and value.is_integer() else value


def _optional_mapping(
    raw: Mapping[str, Any], key: str, what: str, error: type[MalformedInstanceError] = MalformedInstanceError
) -> dict[str, Any] | None:
    value = raw.get(key)
    if value is None:
        return None
    if not isinstance(value, Mapping):
        raise error(f"{what} field {key!r} must be an object or null, got {type(value).__name__}")
    return dict(value)


@dataclass(frozen=True)
class Instance:
    """
    An AI Search instance, as ``GET .../instances/{id}`` returns it (the fields the provider reads).

    :param id: Instance id.
    :param type: ``"r2"``, ``"web-crawler"``, or ``None`` (managed upload-only storage, or not reported).
    :param source: The R2 bucket name or the crawled site's URL.
    :param namespace: The namespace the API reports (``None`` when absent).
    :param paused: Whether syncing is paused.
    :param status: The instance's status string (undocumented values).
    :param sync_interval: Seconds between automatic syncs.

    The repr redacts a crawled URL's user info and query values (:func:`redact_url`); :meth:`to_dict`
    keeps ``source`` as Cloudflare returned it (``AISearchHook.get_instance`` masks its credentials in
    task logs).
    """

    id: str
    type: str | None = None
    source: str | None = None
    namespace: str | None = None
    paused: bool | None = None
    status: str | None = None
    sync_interval: int | None = None

    @classmethod
    def from_api(cls, raw: Any) -> Instance:
        """
        Build an instance from the API's JSON object. Unknown extra fields are ignored.

        :raises MalformedInstanceError: ``raw`` is not an object, has no string ``id``, or a field of the wrong type.
        """
        what = "an instance"
        data = _object(raw, what)
        return cls(
            id=_required_str(data, "id", what),
            type=_optional_str(data, "type", what),
            source=_optional_str(data, "source", what),
            namespace=_optional_str(data, "namespace", what),
            paused=_optional_bool(data, "paused", what),
            status=_optional_str(data, "status", what),
            sync_interval=_optional_count(data, "sync_interval", what),
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe dict (the fields above)."""
        return {
            "id": self.id,
            "type": self.type,
            "source": self.source,
            "namespace": self.namespace,
            "paused": self.paused,
            "status": self.status,
            "sync_interval": self.sync_interval,
        }

    def __repr__(self) -> str:
        return _redacted_repr(self, "source")


@dataclass(frozen=True)
class InstanceStats:
    """
    An instance's item statistics, as ``GET .../instances/{id}/stats`` returns them.

    Every field is optional in Cloudflare's schema (SDK 5.9 ``InstanceStatsResponse``), and whether
    it omits zero counts is undocumented. :meth:`from_api` reads an answer as follows:

    - a count that is absent or ``null`` is **0**, when the answer carries at least one count;
    - an answer with **no count at all** is read as ``degraded`` (the counts stay ``None``): it says
      nothing about the items, so it is judged like Cloudflare's own ``degraded: true``, which omits
      every count when Cloudflare cannot count (e.g. its stats query hit a storage limit);
    - ``degraded: true`` keeps whatever counts it carries, unreliable, as sent.

    :param completed: Items indexed.
    :param queued: Items waiting to be indexed.
    :param running: Items being indexed.
    :param error: Items that failed.
    :param skipped: Items skipped (e.g. unsupported).
    :param outdated: Items changed at the source since they were indexed.
    :param degraded: The counts are unavailable: the answer said so, or carried no count
        (``False`` when the answer leaves it out and carries counts).
    :param last_activity: When the instance last indexed anything.
    :param file_embed_errors: Cloudflare's per-error-kind breakdown (shape undocumented).
    :param index_source_errors: Likewise for errors reading the source.
    """

    completed: int | None = None
    queued: int | None = None
    running: int | None = None
    error: int | None = None
    skipped: int | None = None
    outdated: int | None = None
    degraded: bool = False
    last_activity: datetime | None = None
    file_embed_errors: dict[str, Any] | None = None
    index_source_errors: dict[str, Any] | None = None
    #: ``{"last_activity": value}`` when it was present but not a timestamp (kept as sent).
    unparsed_timestamps: Mapping[str, Any] = field(default_factory=dict, hash=False)

    @property
    def in_flight(self) -> int | None:
        """``queued + running``: items not settled yet (``None`` when ``degraded``; a missing count is 0)."""
        if self.degraded:
            return None
        return (self.queued or 0) + (self.running or 0)

    @property
    def processed(self) -> int | None:
        """``completed + error + skipped``: items the indexing settled (``None`` when ``degraded``)."""
        if self.degraded:
            return None
        return (self.completed or 0) + (self.error or 0) + (self.skipped or 0)

    @classmethod
    def from_api(cls, raw: Any) -> InstanceStats:
        """
        Build stats from the API's JSON object (absent counts as the class says). Unknown extra
        fields (e.g. ``engine``) are ignored.

        :raises MalformedStatsError: ``raw`` is not an object, a count is negative or not an integer,
            or ``degraded`` or an error breakdown has the wrong type.
        """
        what, bad = "instance stats", MalformedStatsError
        if not isinstance(raw, Mapping):
            raise bad(f"{what} must be a JSON object, got {type(raw).__name__}")
        counts = {name: _optional_count(raw, name, what, bad) for name in STATS_COUNT_FIELDS}
        degraded = bool(_optional_bool(raw, "degraded", what, bad))
        if all(count is None for count in counts.values()):
            degraded = True  # no count at all: nothing to judge or to wait on
        elif not degraded:
            counts = {name: count or 0 for name, count in counts.items()}
        times, unparsed = read_timestamps(raw, ("last_activity",))
        return cls(
            **counts,
            degraded=degraded,
            last_activity=times["last_activity"],
            file_embed_errors=_optional_mapping(raw, "file_embed_errors", what, bad),
            index_source_errors=_optional_mapping(raw, "index_source_errors", what, bad),
            unparsed_timestamps=unparsed,
        )

    def to_dict(self) -> dict[str, Any]:
        """The XCom shape: the six counts, ``last_activity`` (ISO 8601 or ``None``) and ``degraded``; nothing else."""
        out: dict[str, Any] = {name: getattr(self, name) for name in STATS_COUNT_FIELDS}
        out["last_activity"] = format_timestamp(self.last_activity, self.unparsed_timestamps, "last_activity")
        out["degraded"] = self.degraded
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> InstanceStats:
        """Inverse of :meth:`to_dict` (e.g. for a trigger event); the error breakdowns are not carried."""
        return cls.from_api(data)


@dataclass(frozen=True)
class Item:
    """
    One item (a file or a page) of an instance, as ``GET .../namespaces/{ns}/instances/{id}/items`` lists it.

    :param id: Item id.
    :param key: Object key or page URL.
    :param status: One of :class:`ItemStatus` (kept as the API's string, so a new status does not break reading).
    :param error: Why the item failed (``status == "error"``).
    :param source_id: ``"builtin"``, ``"{type}:{source}"``, or ``None`` for legacy items.
    :param last_seen_at: When the source was last seen holding the item.
    :param next_action: ``"INDEX"``, ``"DELETE"`` or ``None``.
    :param checksum: Cloudflare's checksum of the content (its algorithm is undocumented: compare, never compute).
    :param chunks_count: Chunks indexed (``None`` until indexed).
    :param file_size: Size in bytes (a number in the SDK; an integral one is read as an ``int``).
    :param created_at: When the item was first stored.
    :param metadata: Built-in, filterable and custom metadata (string, number or boolean values).

    Every field after ``key`` and ``status`` is optional here, although the SDK marks ``checksum`` and
    ``created_at`` required: an answer without them is still an item. The repr redacts URL user info
    and query values in ``key``, ``source_id`` and ``metadata``'s strings (:func:`redact_url`).
    """

    id: str
    key: str
    status: str
    error: str | None = None
    source_id: str | None = None
    last_seen_at: datetime | None = None
    next_action: str | None = None
    checksum: str | None = None
    chunks_count: int | None = None
    file_size: int | float | None = None
    created_at: datetime | None = None
    metadata: Mapping[str, Any] | None = field(default=None, hash=False)
    #: ``{"last_seen_at": value}`` (or ``created_at``) when present but not a timestamp (kept as sent).
    unparsed_timestamps: Mapping[str, Any] = field(default_factory=dict, hash=False)

    @classmethod
    def from_api(cls, raw: Any) -> Item:
        """
        Build an item from the API's JSON object. Unknown extra fields are ignored.

        :raises MalformedInstanceError: ``raw`` is not an object, lacks ``id``/``key``/``status``, or a field
            has the wrong type.
        """
        what = "an item"
        data = _object(raw, what)
        times, unparsed = read_timestamps(data, ("last_seen_at", "created_at"))
        return cls(
            id=_required_str(data, "id", what),
            key=_required_str(data, "key", what),
            status=_required_str(data, "status", what),
            error=_optional_str(data, "error", what),
            source_id=_optional_str(data, "source_id", what),
            last_seen_at=times["last_seen_at"],
            next_action=_optional_str(data, "next_action", what),
            checksum=_optional_str(data, "checksum", what),
            chunks_count=_optional_count(data, "chunks_count", what),
            file_size=_optional_size(data, "file_size", what),
            created_at=times["created_at"],
            metadata=_optional_mapping(data, "metadata", what),
            unparsed_timestamps=unparsed,
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe dict (ISO 8601 timestamps)."""
        return {
            "id": self.id,
            "key": self.key,
            "status": self.status,
            "error": self.error,
            "source_id": self.source_id,
            "last_seen_at": format_timestamp(self.last_seen_at, self.unparsed_timestamps, "last_seen_at"),
            "next_action": self.next_action,
            "checksum": self.checksum,
            "chunks_count": self.chunks_count,
            "file_size": self.file_size,
            "created_at": format_timestamp(self.created_at, self.unparsed_timestamps, "created_at"),
            "metadata": None if self.metadata is None else dict(self.metadata),
        }

    def __repr__(self) -> str:
        return _redacted_repr(self, "key", "source_id", "metadata")
