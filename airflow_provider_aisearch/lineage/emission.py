"""Whether OpenLineage will ask a task for its lineage: the listener's own questions, asked before any request.

The operators' lineage needs one ``GET`` of the instance (its source), sent from the task process
before the OpenLineage listener runs (:class:`~airflow_provider_aisearch.lineage.job_lineage.AISearchLineageMixin`).
That request is worth sending only when the listener will call the task's
``get_openlineage_facets_on_complete`` / ``_on_failure``: OpenLineage is configured (the mixin asks
``conf.is_disabled()`` first), and the task may emit and have its operator metadata extracted.
:func:`task_lineage_wanted` asks the OpenLineage provider's own functions, imported lazily, never
reimplementing its configuration:

- provider 2.20+: ``utils.emission_policy.resolve_task_emission_policy``, the listener's one entry
  point, which folds ``selective_enable`` (``is_task_lineage_enabled``), ``disabled_for_operators``
  and ``emission_policy`` into one verdict: wanted when it says ``emit`` and ``extract_operator_metadata``;
- older providers: ``utils.utils.is_operator_disabled`` and ``is_selective_lineage_enabled``, the
  checks their listeners make.

When a question cannot be asked (a provider too old to have these functions, or one fails), lineage
is wanted, as before: one ``GET``, whose failure is logged and never fails the task.
"""

from __future__ import annotations

import logging
import warnings
from typing import Any

__all__ = ["task_lineage_wanted"]

log = logging.getLogger(__name__)


def task_lineage_wanted(task: Any) -> bool:
    """
    Whether the OpenLineage listener will ask ``task`` for its facets (call only when OpenLineage is enabled).

    :param task: The operator (as the listener sees it: its class, ``dag_id``, ``task_id`` and ``params``).
    """
    try:
        return _ask(task)
    except Exception as exc:  # a question that fails is the listener's to report; keep the lineage
        log.debug("Could not tell whether OpenLineage emits for task %s: %s", getattr(task, "task_id", "?"), exc)
        return True


def _ask(task: Any) -> bool:
    try:
        from airflow.providers.openlineage.utils.emission_policy import resolve_task_emission_policy
    except ImportError:  # a provider older than 2.20: its listener's checks
        try:
            from airflow.providers.openlineage.utils.utils import is_operator_disabled, is_selective_lineage_enabled
        except ImportError:  # older still (or no provider: then the mixin never asks)
            return True
        return not is_operator_disabled(task) and bool(is_selective_lineage_enabled(task))
    with warnings.catch_warnings():
        # It warns about legacy options (selective_enable, disabled_for_operators); the listener warns the user.
        warnings.simplefilter("ignore", DeprecationWarning)
        controls = resolve_task_emission_policy(operator=task, dag_id=task.dag_id, task_id=task.task_id)
    return bool(controls.emit and controls.extract_operator_metadata)
