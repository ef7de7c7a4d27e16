"""Items: the files (or pages) of each emulated instance, and how a job moves them through their statuses.

An instance holds ``item_count`` items (keys ``docs/file-0001.md``, every fifth a ``.pdf``; a web
crawler's are page URLs), or, when it was given documents (:mod:`.documents`), its documents. The
instance's latest job moves them ``queued -> running -> completed`` (or ``error`` / ``skipped``), one
after another over its duration, so that every item has settled when the job ends;
:meth:`ItemState.set_item_lag` makes them settle that many seconds later instead. Before any job,
every item has settled. Like the jobs, items are computed lazily from the clock whenever they are
looked at.

Which items fail: exactly ``round(share * item_count)`` of them (:meth:`ItemState.set_item_errors`),
picked by a hash of the job id, with realistic error strings; likewise for skipped items. The
shares apply to the latest job's items from the moment they are set. :meth:`ItemState.set_degraded`
makes the stats answer ``degraded: true`` without counts, as Cloudflare's does when it cannot count.
:meth:`ItemState.set_stats_fields` changes the stats answer's shape: fields left out (every field is
optional in Cloudflare's schema, and whether it omits zero counts is undocumented) or sent as given
(``null``, a negative count, a string, a bool: answers a client must survive).
Settings given without ``instance_id`` apply to every instance that has none of its own.

Shapes are the ``cloudflare`` SDK 5.9 types ``InstanceStatsResponse`` and ``ItemListResponse``.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from airflow_provider_aisearch.emulator.documents import DocumentState
from airflow_provider_aisearch.emulator.state import EmulatedJob, Instance

__all__ = ["EMBED_ERRORS", "ITEM_STATUSES", "STATS_FIELDS", "ItemState", "ItemView", "StatsFields"]

#: The statuses an item can have (the SDK's ``ItemListResponse.status``), in the "status" sort's priority.
ITEM_STATUSES = ("error", "running", "queued", "outdated", "skipped", "completed")
#: Error strings of failed items: PDFs fail to parse, other files fail to embed or have an unsupported type.
PDF_ERROR = "Could not parse PDF: unexpected end of stream (the file may be truncated or encrypted)"
EMBED_ERRORS = (
    "Failed to embed: document exceeds maximum token length (8192 tokens)",
    "Unsupported file type: application/octet-stream",
    "Failed to embed: upstream model returned 503 after 3 attempts",
)


#: The fields of the stats answer (the SDK's ``InstanceStatsResponse``, ``engine`` aside).
STATS_FIELDS = frozenset(
    {"completed", "queued", "running", "error", "skipped", "outdated", "degraded", "last_activity"}
    | {"file_embed_errors", "index_source_errors"}
)


@dataclass(frozen=True)
class StatsFields:
    """How the stats answer departs from the computed one: ``omit`` these fields, send ``replace``'s values as given."""

    omit: frozenset[str] = frozenset()
    replace: tuple[tuple[str, Any], ...] = ()

    def apply(self, body: dict[str, Any]) -> dict[str, Any]:
        """``body`` with the fields left out and replaced."""
        out = {key: value for key, value in body.items() if key not in self.omit}
        out.update(self.replace)
        return out


@dataclass(frozen=True)
class ItemView:
    """One item as it is at one moment: its position, key, status, error and timestamps."""

    index: int
    key: str
    status: str
    error: str | None
    last_seen_at: float
    created_at: float


class ItemState(DocumentState):
    """
    The items of the emulated instances (a mixin of :class:`~airflow_provider_aisearch.emulator.AISearchEmulator`).

    Class attributes hold the emulator-wide settings; ``set_*`` with an ``instance_id`` overrides them for
    one instance.
    """

    #: Share of items that end ``error`` (emulator-wide default).
    item_error_share: float = 0.0
    #: Share of items that end ``skipped``.
    item_skipped_share: float = 0.0
    #: Seconds items keep ``queued`` / ``running`` after their job ended.
    item_lag: float = 0.0
    #: Whether the stats answer ``degraded: true`` without counts.
    degraded: bool = False
    #: Fields the stats answer leaves out or sends as given (``None``: as computed).
    stats_fields: StatsFields | None = None

    # -- settings --------------------------------------------------------------------------

    def set_item_errors(self, share: float, *, instance_id: str | None = None, namespace: str = "default") -> None:
        """
        Make ``share`` (0-1) of the items end ``error``, with realistic error strings.

        :param instance_id: Only this instance (``None``: every instance without its own setting).
        """
        self._set_item_setting("item_error_share", _share("share", share), instance_id, namespace)

    def set_item_skipped(self, share: float, *, instance_id: str | None = None, namespace: str = "default") -> None:
        """
        Make ``share`` (0-1) of the items end ``skipped`` (taken from those that do not fail).

        :param instance_id: Only this instance (``None``: every instance without its own setting).
        """
        self._set_item_setting("item_skipped_share", _share("share", share), instance_id, namespace)

    def set_degraded(self, flag: bool, *, instance_id: str | None = None, namespace: str = "default") -> None:
        """
        Make the stats answer ``degraded: true`` with no counts (``False``: counts again).

        :param instance_id: Only this instance (``None``: every instance without its own setting).
        """
        if not isinstance(flag, bool):
            raise ValueError(f"flag must be a boolean, got {flag!r}")
        self._set_item_setting("degraded", flag, instance_id, namespace)

    def set_stats_fields(
        self,
        *,
        omit: Iterable[str] = (),
        replace: Mapping[str, Any] | None = None,
        instance_id: str | None = None,
        namespace: str = "default",
    ) -> None:
        """
        Change the stats answer: leave the ``omit`` fields out, send ``replace``'s values as given.

        For example ``omit=["queued"]`` (a count left out), ``replace={"error": None}`` (``null``) or
        ``replace={"queued": -1}`` / ``{"queued": "3"}`` (malformed). Both empty: clears the setting
        (the instance follows the emulator-wide one, which answers as computed).

        :param omit: Names of stats fields (:data:`STATS_FIELDS`) to leave out.
        :param replace: Stats field name -> the JSON value to send instead of the computed one.
        :param instance_id: Only this instance (``None``: every instance without its own setting).
        """
        if isinstance(omit, str):
            raise ValueError(f"omit must be a list of stats field names, got {omit!r}")
        left_out, replaced = frozenset(omit), dict(replace or {})
        unknown = sorted((left_out | set(replaced)) - STATS_FIELDS)
        if unknown:
            raise ValueError(f"omit and replace take stats fields ({', '.join(sorted(STATS_FIELDS))}), got {unknown}")
        json.dumps(replaced)  # a TypeError for a value the answer could not carry
        shape = StatsFields(left_out, tuple(replaced.items())) if left_out or replaced else None
        self._set_item_setting("stats_fields", shape, instance_id, namespace)

    def set_item_lag(self, seconds: float, *, instance_id: str | None = None, namespace: str = "default") -> None:
        """
        Let items keep ``queued`` / ``running`` for ``seconds`` after their job ended (0: settled when it ends).

        :param instance_id: Only this instance (``None``: every instance without its own setting).
        """
        if isinstance(seconds, bool) or not isinstance(seconds, (int, float)) or not seconds >= 0:
            raise ValueError(f"seconds must be a number >= 0, got {seconds!r}")
        self._set_item_setting("item_lag", float(seconds), instance_id, namespace)

    def _set_item_setting(self, name: str, value: Any, instance_id: str | None, namespace: str) -> None:
        with self._lock:
            if instance_id is None:
                setattr(self, name, value)
                return
            inst = self._instance(namespace, instance_id)
            if inst is None:
                raise KeyError(f"no instance {namespace}/{instance_id}")
            setattr(inst, name, value)

    def _setting(self, inst: Instance, name: str) -> Any:
        own = getattr(inst, name)
        return getattr(self, name) if own is None else own

    # -- the items at one moment -------------------------------------------------------------

    def items(self, instance_id: str, *, namespace: str = "default") -> list[dict[str, Any]]:
        """The instance's items now, as the items list renders them (in key order)."""
        with self._lock:
            inst = self._instance(namespace, instance_id)
            if inst is None:
                raise KeyError(instance_id)
            return [self._item_json(inst, view) for view in self._item_views(inst)]

    def _latest_job(self, inst: Instance) -> EmulatedJob | None:
        now = self.clock()
        for job in inst.jobs:
            job.settle(now)
        # The newest by started_at; of jobs started at the same moment, the one added last.
        latest = max(enumerate(inst.jobs), key=lambda pair: (pair[1].started_at, pair[0]), default=None)
        return None if latest is None else latest[1]

    def _item_key(self, inst: Instance, index: int) -> str:
        if inst.type == "web-crawler" and inst.source:
            return f"{inst.source.rstrip('/')}/page-{index + 1:04d}"
        extension = "pdf" if (index + 1) % 5 == 0 else "md"
        return f"docs/file-{index + 1:04d}.{extension}"

    def _item_keys(self, inst: Instance) -> list[str]:
        """The instance's item keys in order: its documents' (:mod:`.documents`), else the generated ones."""
        if self._documents.holds(inst.namespace, inst.id):
            return self._documents.keys(inst.namespace, inst.id)
        return [self._item_key(inst, index) for index in range(inst.item_count)]

    def _outcomes(self, inst: Instance, job: EmulatedJob | None, keys: list[str]) -> list[tuple[str, str | None]]:
        """The final status and error of each item for ``job``: exact shares, picked by a hash of the job id."""
        count = len(keys)
        seed = job.id if job is not None else ""
        ranking = sorted(range(count), key=lambda i: hashlib.sha256(f"{seed}:{i}".encode()).digest())
        errors = min(count, round(self._setting(inst, "item_error_share") * count))
        skipped = min(count - errors, round(self._setting(inst, "item_skipped_share") * count))
        outcomes: list[tuple[str, str | None]] = [("completed", None)] * count
        for rank, index in enumerate(ranking):
            if rank < errors:
                key = keys[index]
                message = PDF_ERROR if key.endswith(".pdf") else EMBED_ERRORS[index % len(EMBED_ERRORS)]
                outcomes[index] = ("error", message)
            elif rank < errors + skipped:
                outcomes[index] = ("skipped", None)
        return outcomes

    def _item_views(self, inst: Instance) -> list[ItemView]:
        """Each item's status now: the latest job processes them in key order, settling the last when it ends."""
        now = self.clock()
        job = self._latest_job(inst)
        keys = self._item_keys(inst)
        outcomes = self._outcomes(inst, job, keys)
        created = min([inst.created_at, *(j.started_at for j in inst.jobs)])
        count = len(keys)
        views = []
        for index in range(count):
            final, error = outcomes[index]
            status, message, seen = final, error, created
            if job is not None:
                planned_end = job.ended_at if job.ended_at is not None else job.started_at + job.duration
                span = max(planned_end + self._setting(inst, "item_lag") - job.started_at, 0.0)
                # The last item settles when the job (and the lag after it) is over, never later.
                settles = min(job.started_at + span, job.started_at + span * (index + 1) / count)
                starts = job.started_at + span * index / count
                seen = min(now, settles)
                if now < starts:
                    status, message, seen = "queued", None, job.started_at
                elif now < settles:
                    status, message = "running", None
            views.append(ItemView(index, keys[index], status, message, seen, created))
        return views

    # -- rendering -------------------------------------------------------------------------------

    def _source_id(self, inst: Instance) -> str:
        return "builtin" if inst.type is None or not inst.source else f"{inst.type}:{inst.source}"

    def _item_json(self, inst: Instance, view: ItemView) -> dict[str, Any]:
        digest = hashlib.sha256(f"{inst.namespace}/{inst.id}/{view.key}".encode()).hexdigest()
        settled = view.status not in ("queued", "running")
        return {
            "id": f"{digest[:8]}-{digest[8:12]}-{digest[12:16]}-{digest[16:20]}-{digest[20:32]}",
            "checksum": digest[32:],
            "chunks_count": (3 + view.index % 7) if view.status == "completed" else None,
            "created_at": self._ts(view.created_at),
            "file_size": float(1024 * (1 + view.index % 50)),
            "key": view.key,
            "last_seen_at": self._ts(view.last_seen_at),
            "metadata": {"folder": view.key.rsplit("/", 1)[0] + "/"},
            "namespace": inst.namespace,
            "next_action": None if settled else "INDEX",
            "source_id": self._source_id(inst),
            "status": view.status,
            "error": view.error,
        }

    def _stats_json(self, inst: Instance) -> dict[str, Any]:
        views = self._item_views(inst)
        last = max((v.last_seen_at for v in views if v.status not in ("queued", "running")), default=None)
        if not inst.jobs:
            last = None
        shape = self._setting(inst, "stats_fields") or StatsFields()
        if self._setting(inst, "degraded"):
            return shape.apply({"degraded": True, "last_activity": self._ts(last)})
        counts = dict.fromkeys(ITEM_STATUSES, 0)
        embed_errors: dict[str, int] = {}
        for view in views:
            counts[view.status] += 1
            if view.error is not None:
                embed_errors[view.error] = embed_errors.get(view.error, 0) + 1
        return shape.apply(
            {
                "completed": counts["completed"],
                "queued": counts["queued"],
                "running": counts["running"],
                "error": counts["error"],
                "skipped": counts["skipped"],
                "outdated": counts["outdated"],
                "last_activity": self._ts(last),
                "file_embed_errors": embed_errors,
                "index_source_errors": {},
            }
        )


def _share(name: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 1:
        raise ValueError(f"{name} must be a number from 0 to 1, got {value!r}")
    return float(value)
