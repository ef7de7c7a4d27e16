"""The item quality gate: after a job ended successfully, did its documents get indexed?

A job's ``end_reason`` says whether the sync finished, not whether the files were indexed. The
sensor and the create operator (``wait_for_completion``) can therefore read the instance's item
stats (``GET .../instances/{id}/stats``) once the job has ended successfully, put them in the XCom
under ``"items"`` (:meth:`InstanceStats.to_dict`), and judge them with an :class:`ItemGate`:

- ``max_item_errors``: an ``int`` is a count (fail when more than that many items are ``error``);
  a ``float`` in (0, 1) is a fraction of the *processed* items, where processed =
  ``completed + error + skipped`` (``queued``, ``running`` and ``outdated`` items are not processed).
  A failed gate raises :class:`~airflow_provider_aisearch.exceptions.AISearchIndexQualityError`
  after the task log lists up to :data:`FAILED_ITEMS_LOGGED` failed items (key and error).
- An absent or ``null`` count is 0; an answer without any count is ``degraded``
  (:class:`~airflow_provider_aisearch.models.instances.InstanceStats`).
- ``degraded`` stats (the API could not count) never pass silently: a warning always, and a failure
  when ``max_item_errors`` is set, unless ``allow_degraded_stats=True``.
- ``wait_for_items``: read the stats until nothing is ``queued`` or ``running`` (whether items can
  still be in flight after a job ends is not documented), at the task's poll interval and within
  its timeout (without one, :data:`~airflow_provider_aisearch.waiting.item_stats.DEFAULT_ITEMS_TIMEOUT`).
  Degraded stats end that wait (they have no counts to wait on); stats that break the schema (a
  negative count, a wrong type) fail it at their first read.

The stats are the instance's, not the job's: the API has no per-job counts.

:func:`~airflow_provider_aisearch.waiting.item_stats.read_item_stats` is the one stats wait (a plan, so the
worker drives it with the hook and the trigger with the async client, in the triggerer when deferred;
in :mod:`~airflow_provider_aisearch.waiting.item_stats`, re-exported here); :func:`check_items` is the one
verdict, used by the poke path and by ``execute_complete`` alike.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from itertools import islice
from typing import TYPE_CHECKING, Any

from airflow_provider_aisearch.api import _Unset
from airflow_provider_aisearch.exceptions import AISearchError, AISearchIndexQualityError, AISearchJobFailedError
from airflow_provider_aisearch.models.instances import InstanceStats, Item, redact_url
from airflow_provider_aisearch.models.jobs import Job, JobStatus
from airflow_provider_aisearch.waiting.item_stats import (
    items_deadline,
    items_pending,
    items_timeout_message,
    read_item_stats,
)

if TYPE_CHECKING:
    from airflow_provider_aisearch.hooks import AISearchHook

__all__ = [
    "FAILED_ITEMS_LOGGED",
    "OUTCOME_ERRORS",
    "ItemCheck",
    "ItemGate",
    "check_items",
    "ended_well",
    "items_pending",
    "items_timeout_message",
    "read_item_stats",
]

#: Most failed items (key and error) a failed gate writes to the task log (one page of the items list).
FAILED_ITEMS_LOGGED = 20
#: At most this many entries of ``file_embed_errors`` / ``index_source_errors`` reach the task log,
#: each key and value cut to :data:`ERROR_TEXT_LOGGED` characters.
ERROR_BREAKDOWN_LOGGED = 20
ERROR_TEXT_LOGGED = 200
#: Errors that say the job's outcome was bad (not that the API failed): ``soft_fail`` skips on them.
OUTCOME_ERRORS: tuple[type[AISearchError], ...] = (AISearchJobFailedError, AISearchIndexQualityError)


def ended_well(status: JobStatus, on_superseded: str) -> bool:
    """Whether an ended job counts as a success (then, and only then, the item stats are read)."""
    return status is JobStatus.SUCCEEDED or (status is JobStatus.SUPERSEDED and on_superseded == "succeed")


def _validate_max_item_errors(value: object) -> int | float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(
            f"max_item_errors must be an int >= 0 (a count), a float in (0, 1) (a fraction) or None, got {value!r}"
        )
    if isinstance(value, int):
        if value < 0:
            raise ValueError(f"max_item_errors must be an int >= 0 (a count), got {value!r}")
        return value
    if not math.isfinite(value) or not 0 < value < 1:
        raise ValueError(
            f"max_item_errors as a float is a fraction of the processed items and must be in (0, 1), "
            f"got {value!r} (use an int for a count, e.g. 0 for none)"
        )
    return value


def _validate_flag(name: str, value: object) -> bool:
    if not isinstance(value, bool):
        raise ValueError(f"{name} must be True or False, got {value!r}")
    return value


@dataclass(frozen=True)
class ItemGate:
    """
    What to do with the item stats once a job has ended successfully (validated at DAG parse time).

    Build it with :meth:`build`. The default gate reads nothing (no request).

    :param max_item_errors: ``None`` (no gate), an ``int`` >= 0 (most items in ``error``), or a
        ``float`` in (0, 1) (largest share of ``error`` among the processed items,
        ``completed + error + skipped``).
    :param allow_degraded_stats: Pass a gate whose stats are ``degraded`` (still with a warning).
    :param wait_for_items: Read the stats until nothing is ``queued`` or ``running``.
    :param read_item_stats: Whether the stats are read at all (resolved by :meth:`build`).
    """

    max_item_errors: int | float | None = None
    allow_degraded_stats: bool = False
    wait_for_items: bool = False
    read_item_stats: bool = False

    @classmethod
    def build(
        cls,
        *,
        max_item_errors: int | float | None = None,
        allow_degraded_stats: bool = False,
        wait_for_items: bool = False,
        read_item_stats: bool | None = None,
    ) -> ItemGate:
        """
        Validate the operator's parameters.

        :param read_item_stats: ``None`` (default): read the stats only when ``max_item_errors`` or
            ``wait_for_items`` is set. ``True``: also read them (one request) for the XCom alone.
        :raises ValueError: naming the parameter: a bool, negative or non-number ``max_item_errors``,
            a float outside (0, 1) (1.0, NaN, inf included), a non-bool flag, or
            ``read_item_stats=False`` with a gate or ``wait_for_items``.
        """
        threshold = _validate_max_item_errors(max_item_errors)
        allow = _validate_flag("allow_degraded_stats", allow_degraded_stats)
        wait = _validate_flag("wait_for_items", wait_for_items)
        needed = threshold is not None or wait
        if read_item_stats is None:
            read = needed
        else:
            read = _validate_flag("read_item_stats", read_item_stats)
            if needed and not read:
                raise ValueError(
                    "read_item_stats=False, but max_item_errors and wait_for_items need the item stats "
                    "(leave read_item_stats unset)"
                )
        return cls(threshold, allow, wait, read)

    def describe(self) -> str:
        """The threshold in words, for log lines and errors."""
        if self.max_item_errors is None:
            return "no gate"
        if isinstance(self.max_item_errors, int):
            return f"max_item_errors={self.max_item_errors}"
        return f"max_item_errors={self.max_item_errors:g}, a share of completed + error + skipped"

    def exceeded(self, stats: InstanceStats) -> str | None:
        """Why ``stats`` (with counts) fail the gate, or ``None`` when they pass (or there is no gate)."""
        limit, errors = self.max_item_errors, stats.error or 0
        if limit is None:
            return None
        if isinstance(limit, int):
            return f"{errors} item(s) in error > {limit}" if errors > limit else None
        processed = stats.processed or 0
        share = errors / processed if processed else 0.0
        if share > limit:
            return f"{errors} of {processed} processed item(s) in error ({share:.1%}) > {limit:.1%}"
        return None


def _summary(stats: InstanceStats) -> str:
    counts = ("completed", "error", "skipped", "queued", "running", "outdated")
    return ", ".join(f"{name}={getattr(stats, name)}" for name in counts)


def check_items(
    gate: ItemGate,
    stats: InstanceStats,
    *,
    where: str,
    failed_items: Callable[[int], Iterable[Item]],
    log: Any,
) -> dict[str, Any]:
    """
    The verdict on the item stats (every path: poke, worker wait, ``execute_complete``).

    :param gate: The task's gate.
    :param stats: The stats read after the job ended successfully.
    :param where: Names the job and instance in the messages.
    :param failed_items: Items in ``error`` (``items?status=error``), given how many are wanted;
        read lazily, so only the first page is requested.
    :param log: The task log.
    :return: The XCom value under ``"items"`` (:meth:`InstanceStats.to_dict`).
    :raises AISearchIndexQualityError: ``max_item_errors`` exceeded, or degraded stats with a gate
        and ``allow_degraded_stats=False``.
    """
    data = stats.to_dict()
    if stats.degraded:  # (an answer without any count is read as degraded: InstanceStats.from_api)
        log.warning(
            "%s: the item stats are degraded (Cloudflare returned no counts): the index may be incomplete "
            "and nothing here can tell",
            where,
        )
        if gate.max_item_errors is not None and not gate.allow_degraded_stats:
            raise AISearchIndexQualityError(
                f"{where}: the item stats are degraded (no counts), so {gate.describe()} cannot be checked; "
                "allow_degraded_stats=True lets such a run pass",
                stats=stats,
                max_item_errors=gate.max_item_errors,
            )
        return data
    log.info("%s: items %s (last activity %s)", where, _summary(stats), data["last_activity"] or "-")
    reason = gate.exceeded(stats)
    if reason is None:
        if gate.max_item_errors is not None:
            log.info("%s: item quality gate passed (%s)", where, gate.describe())
        return data
    _log_failed_items(stats, failed_items, log)
    raise AISearchIndexQualityError(
        f"{where}: the item quality gate failed: {reason} ({gate.describe()})",
        stats=stats,
        max_item_errors=gate.max_item_errors,
    )


def _cut(value: object) -> str:
    text = str(value)
    return text if len(text) <= ERROR_TEXT_LOGGED else text[:ERROR_TEXT_LOGGED] + f"... ({len(text)} chars)"


def _capped(breakdown: Mapping[str, Any]) -> str:
    """An error breakdown for the log: its first :data:`ERROR_BREAKDOWN_LOGGED` entries, each cut short."""
    shown = ", ".join(f"{_cut(k)}: {_cut(v)}" for k, v in islice(breakdown.items(), ERROR_BREAKDOWN_LOGGED))
    more = len(breakdown) - ERROR_BREAKDOWN_LOGGED
    return "{" + shown + "}" + (f" and {more} more" if more > 0 else "")


def _log_failed_items(stats: InstanceStats, failed_items: Callable[[int], Iterable[Item]], log: Any) -> None:
    """Up to :data:`FAILED_ITEMS_LOGGED` failed items to the task log; a listing failure is only a warning."""
    for name in ("file_embed_errors", "index_source_errors"):
        value = getattr(stats, name)
        if value:
            log.error("%s: %s", name, _capped(value))
    try:
        items = list(islice(failed_items(FAILED_ITEMS_LOGGED), FAILED_ITEMS_LOGGED))
    except (AISearchError, ValueError) as exc:
        log.warning("Could not list the failed items: %s", exc)
        return
    log.error("Failed items (%d of %s):", len(items), stats.error)
    for item in items:
        log.error("  %s: %s", redact_url(item.key), item.error or "(no error message)")


class ItemCheck:
    """
    One task's gate on its instance, in the worker: read the stats with the task's hook, give the verdict.

    :param gate: The task's gate.
    :param hook: The task's hook (its retries, session and rate-limit budget).
    :param instance_id: AI Search instance id (rendered).
    :param namespace: Namespace (``UNSET``: the connection's; ``None``: legacy paths).
    :param log: The task log.
    """

    def __init__(
        self, gate: ItemGate, hook: AISearchHook, instance_id: str, namespace: str | _Unset | None, log: Any
    ) -> None:
        self.gate = gate
        self.hook = hook
        self.instance_id = instance_id
        self.namespace = namespace
        self.log = log

    def read(self, interval: float, deadline: float | None, *, once: bool = False) -> InstanceStats | None:
        """
        :func:`read_item_stats` over the hook (``once``: one read, with the hook's own retries; a
        ``None`` deadline: :func:`~airflow_provider_aisearch.waiting.item_stats.items_deadline`).
        """
        deadline = time.time() if once else items_deadline(deadline)
        api = self.hook.api if once else self.hook.api.with_deadline(deadline)
        plan = read_item_stats(
            api,
            self.instance_id,
            namespace=self.namespace,
            wait=self.gate.wait_for_items,
            interval=interval,
            deadline=deadline,
            log=self.log,
        )
        return self.hook.run(plan)

    def poke(self, job: Job, value: dict[str, Any]) -> dict[str, Any] | None:
        """
        A poke after ``job`` ended successfully: ``value`` with ``"items"``, or ``None`` while the
        stats are unread (a transient failure) or, with ``wait_for_items``, items are in flight.
        """
        if not self.gate.read_item_stats:
            return value
        stats = self.read(0.0, None, once=True)
        if stats is None or items_pending(stats, self.gate.wait_for_items):
            return None
        return self.verdict(job, value, stats)

    def finish(
        self,
        job: Job,
        value: dict[str, Any],
        *,
        event: Mapping[str, Any] | None,
        timeout_error: Callable[[str], BaseException],
        interval: float = 0.0,
        deadline: float | None = 0.0,
    ) -> dict[str, Any]:
        """
        After ``job`` ended successfully: ``value`` with ``"items"`` from the trigger's ``event``,
        else read here (waiting until ``deadline`` with ``wait_for_items``; a past ``deadline``: one read).

        :param event: The trigger's event, if the wait was deferred.
        :param timeout_error: Builds the task's timeout error when the items were still in flight.
        :param interval: Seconds between stats reads.
        :param deadline: Epoch seconds (``None``: :data:`~.item_stats.DEFAULT_ITEMS_TIMEOUT`
            from now; default: one read).
        """
        if not self.gate.read_item_stats:
            return value
        raw = None if event is None else event.get("items")
        unbounded = deadline is None
        if isinstance(raw, Mapping):
            try:
                stats: InstanceStats | None = InstanceStats.from_dict(raw)
            except ValueError as exc:
                raise AISearchError(f"AISearchJobTrigger sent invalid item stats: {exc}") from None
        else:  # no stats in the event (a trigger serialized before the gate existed): read them here
            stats = self.read(interval, deadline, once=deadline is not None and deadline <= time.time())
        if stats is None or items_pending(stats, self.gate.wait_for_items):
            raise timeout_error(items_timeout_message(self.where(job), stats, unbounded=unbounded))
        return self.verdict(job, value, stats)

    def where(self, job: Job) -> str:
        """Names the job and the instance in messages."""
        return f"AI Search job {job.id!r} on instance {self.instance_id!r}"

    def verdict(self, job: Job, value: dict[str, Any], stats: InstanceStats) -> dict[str, Any]:
        """:func:`check_items`, then ``value`` with the stats under ``"items"``."""
        try:
            items = check_items(self.gate, stats, where=self.where(job), failed_items=self._failed_items, log=self.log)
        except AISearchIndexQualityError as exc:
            exc.job = {**value, "items": stats.to_dict()}  # the OpenLineage FAIL event's job facet
            raise
        return {**value, "items": items}

    def _failed_items(self, limit: int) -> Iterable[Item]:
        return self.hook.iter_items(self.instance_id, status="error", per_page=limit, namespace=self.namespace)
