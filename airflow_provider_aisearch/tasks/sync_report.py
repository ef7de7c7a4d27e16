"""A folder sync's report: each file's outcome from its item, the failed items' log lines, the gate's counts.

:func:`file_outcomes` sorts the files a sync uploaded or found unchanged by their item's status
(``error`` into ``failed`` with its message, ``skipped``, ``completed``); :func:`log_item_errors`
writes the last :data:`ITEM_LOG_LINES` processing-log lines of up to
:data:`~airflow_provider_aisearch.waiting.quality.FAILED_ITEMS_LOGGED` failed items to the task log;
:func:`sync_counts` is this sync's files as the counts the item gate
(:class:`~airflow_provider_aisearch.waiting.quality.ItemGate`) judges.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from airflow_provider_aisearch.api import _Unset
from airflow_provider_aisearch.exceptions import AISearchError
from airflow_provider_aisearch.models.instances import InstanceStats, Item
from airflow_provider_aisearch.waiting.quality import FAILED_ITEMS_LOGGED

if TYPE_CHECKING:
    from airflow_provider_aisearch.hooks import AISearchHook

__all__ = ["ITEM_LOG_LINES", "FileOutcomes", "file_outcomes", "log_item_errors"]

#: The last log lines of each failed item written to the task log.
ITEM_LOG_LINES = 5


@dataclass
class FileOutcomes:
    """The files of a sync by their item's outcome (``failed`` starts with the read, upload and delete failures)."""

    failed: list[dict[str, str]] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    completed: int = 0
    errored: list[Item] = field(default_factory=list)

    def counts(self) -> InstanceStats:
        """The sync's files as the counts the item gate judges (every failure counts as an error)."""
        return InstanceStats(
            completed=self.completed, error=len(self.failed), skipped=len(self.skipped), queued=0, running=0
        )


def file_outcomes(partial: Mapping[str, Any], known: Mapping[str, Item]) -> FileOutcomes:
    """
    Sort the uploaded and unchanged files by their item's status.

    :param partial: The sync so far: ``uploaded``, ``unchanged`` and ``failed``.
    :param known: The last item seen of each key.
    """
    out = FileOutcomes(failed=list(partial["failed"]))
    for key in [*partial["uploaded"], *partial["unchanged"]]:
        item = known.get(key)
        if item is None:
            continue
        if item.status == "error":
            out.failed.append({"key": key, "error": item.error or "error (no message)"})
            out.errored.append(item)
        elif item.status == "skipped":
            out.skipped.append(key)
        elif item.status == "completed":
            out.completed += 1
    return out


def log_item_errors(
    hook: AISearchHook, instance_id: str, namespace: str | _Unset | None, errored: list[Item], log: Any
) -> None:
    """The error and last :data:`ITEM_LOG_LINES` log lines of up to ``FAILED_ITEMS_LOGGED`` failed items."""
    for item in errored[:FAILED_ITEMS_LOGGED]:
        log.error("Item %r failed: %s", item.key, item.error or "(no message)")
        try:
            lines = deque(hook.iter_item_logs(instance_id, item.id, namespace=namespace), ITEM_LOG_LINES)
        except (AISearchError, ValueError) as exc:
            log.warning("Could not read the logs of item %r: %s", item.key, exc)
            continue
        for entry in lines:
            log.error("  %s: %s", item.key, entry.line())
    if len(errored) > FAILED_ITEMS_LOGGED:
        log.error("... and %d more failed item(s)", len(errored) - FAILED_ITEMS_LOGGED)
