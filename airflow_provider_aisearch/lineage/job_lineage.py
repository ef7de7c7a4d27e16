"""Lineage of an indexing job: the instance's source flows into the AI Search instance.

Two paths report it, both built on the dataset names of :mod:`~airflow_provider_aisearch.lineage.names`:

* **Operator lineage** (OpenLineage): :class:`AISearchLineageMixin` gives the create operator, the
  sensor and the list operator ``get_openlineage_facets_on_complete``, which the OpenLineage provider
  calls when the task ends. Input: the instance's source; output: the instance; run facets: the job
  id (``externalQuery``), its status and end reason and, when the quality gate read them, the item
  counts (``aisearchJob``; the list operator: ``aisearchJobs``). ``get_openlineage_facets_on_failure``
  gives the same for a failed job or a failed quality gate (the counts the verdict was made on).
* **Hook lineage** (Airflow's hook lineage collector): :func:`record_job_output` (from
  ``AISearchHook.create_job``) and :func:`record_source_input` (from ``AISearchHook.get_instance``),
  so a ``@task`` that calls the hook gets lineage too. No extra request: they use what the call
  already returned or the connection holds.

Dataset names (the instance, an R2 bucket by the connection extra ``lineage_r2_namespace``, a web
crawler's site) and the asset converters the provider info names are in
:mod:`~airflow_provider_aisearch.lineage.names`, re-exported here (``lineage`` is their public path).

The OpenLineage provider is optional: everything from it is imported inside the functions, and any
failure (it is missing, the instance cannot be read, a bad setting) is logged and gives empty
lineage; lineage never fails a task or a hook call.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Mapping
from functools import cache
from typing import TYPE_CHECKING, Any

from airflow_provider_aisearch.api import UNSET, _Unset
from airflow_provider_aisearch.exceptions import AISearchIndexQualityError, AISearchJobFailedError
from airflow_provider_aisearch.lineage.emission import task_lineage_wanted
from airflow_provider_aisearch.lineage.names import (
    DEFAULT_R2_NAMESPACE,
    R2_NAMESPACE_EXTRA,
    R2_NAMESPACES,
    DatasetName,
    asset_to_openlineage,
    instance_dataset,
    r2_asset_to_openlineage,
    source_dataset,
    validate_r2_namespace,
)

if TYPE_CHECKING:
    from airflow_provider_aisearch.hooks import AISearchHook
    from airflow_provider_aisearch.models.instances import Instance

__all__ = [
    "DEFAULT_R2_NAMESPACE",
    "R2_NAMESPACES",
    "R2_NAMESPACE_EXTRA",
    "AISearchLineageMixin",
    "DatasetName",
    "asset_to_openlineage",
    "instance_dataset",
    "job_run_facets",
    "jobs_run_facets",
    "openlineage_enabled",
    "r2_asset_to_openlineage",
    "record_job_output",
    "record_source_input",
    "source_dataset",
    "validate_r2_namespace",
]

log = logging.getLogger("airflow_provider_aisearch.lineage")  # the public path's name, as before lineage/ (issue 22)


# -- hook lineage ------------------------------------------------------------------------------------


def _collector() -> Any:
    """Airflow's hook lineage collector, or ``None`` when it is the no-op one (no reader registered)."""
    from airflow.providers.common.compat.lineage.hook import get_hook_lineage_collector

    collector = get_hook_lineage_collector()
    # Both Airflow 3 (airflow.sdk.lineage) and 2.11 (airflow.lineage.hook) name it NoOpCollector.
    return None if type(collector).__name__ == "NoOpCollector" else collector


def record_job_output(hook: AISearchHook, instance_id: str, namespace: str | _Unset | None = UNSET) -> None:
    """
    Hook lineage of a started job: the instance is an output (``AISearchHook.create_job``). Never raises.

    :param hook: The hook that started it (the lineage context; its connection gives the account).
    :param instance_id: AI Search instance id.
    :param namespace: As passed to the hook method.
    """
    try:
        collector = _collector()
        if collector is None:
            return
        dataset = instance_dataset(
            hook.conn_info.require_account_id(), hook.api.resolve_namespace(namespace), instance_id
        )
        collector.add_output_asset(context=hook, uri=dataset.uri)
    except Exception as exc:  # lineage never fails the call
        log.warning("No hook lineage for instance %s: %s", instance_id, exc)


def record_source_input(hook: AISearchHook, instance: Instance) -> None:
    """
    Hook lineage of a read instance: its source is an input (``AISearchHook.get_instance``). Never raises.

    :param hook: The hook that read it.
    :param instance: The instance read.
    """
    try:
        collector = _collector()
        if collector is None:
            return
        info = hook.conn_info
        dataset = source_dataset(instance, info.require_account_id(), info.r2_namespace())
        if dataset is not None:
            collector.add_input_asset(context=hook, uri=dataset.uri)
    except Exception as exc:  # lineage never fails the call
        log.warning("No hook lineage for the source of instance %s: %s", instance.id, exc)


# -- run facets --------------------------------------------------------------------------------------


@cache
def _facet_classes() -> tuple[type[Any], type[Any]]:
    """The custom run facets (built on first use: they subclass the OpenLineage client's ``RunFacet``)."""
    import attr
    from airflow.providers.common.compat.openlineage.facet import RunFacet

    # OpenLineage facet fields are camelCase.
    @attr.define
    class AISearchJobRunFacet(RunFacet):
        """One AI Search indexing job: id, status, end reason, and the instance's item counts when read."""

        jobId: str
        status: str | None = None
        endReason: str | None = None
        instance: str | None = None
        items: dict[str, Any] | None = None

    @attr.define
    class AISearchJobsRunFacet(RunFacet):
        """The jobs a list task returned: id, status and end reason of each (ids only with ``ids_only``)."""

        jobs: list[dict[str, Any]]
        instance: str | None = None

    return AISearchJobRunFacet, AISearchJobsRunFacet


def job_run_facets(job: Mapping[str, Any], instance: DatasetName) -> dict[str, Any]:
    """
    The run facets of one job's XCom value: ``externalQuery`` (the job id) and ``aisearchJob``.

    :param job: The job dict (the create operator's or the sensor's return value).
    :param instance: The instance dataset.
    """
    from airflow.providers.common.compat.openlineage.facet import ExternalQueryRunFacet

    job_facet, _ = _facet_classes()
    items = job.get("items")
    return {
        "externalQuery": ExternalQueryRunFacet(externalQueryId=str(job["id"]), source=instance.namespace),
        "aisearchJob": job_facet(
            jobId=str(job["id"]),
            status=job.get("status"),
            endReason=job.get("end_reason"),
            instance=instance.uri,
            items=dict(items) if isinstance(items, Mapping) else None,
        ),
    }


def jobs_run_facets(jobs: list[Any], instance: DatasetName) -> dict[str, Any]:
    """
    The run facet of a list task's XCom value (job dicts, or ids with ``ids_only``): ``aisearchJobs``.

    :param jobs: The returned jobs.
    :param instance: The instance dataset.
    """
    _, jobs_facet = _facet_classes()
    listed = [
        {"jobId": str(j["id"]), "status": j.get("status"), "endReason": j.get("end_reason")}
        if isinstance(j, Mapping)
        else {"jobId": str(j)}
        for j in jobs
    ]
    return {"aisearchJobs": jobs_facet(jobs=listed, instance=instance.uri)}


# -- operator lineage --------------------------------------------------------------------------------


#: The host methods whose return value is the task's result (wrapped by :class:`AISearchLineageMixin`).
_RESULT_METHODS = ("execute", "execute_complete")
_KEEPS_RESULT = "_aisearch_keeps_lineage_result"


def openlineage_enabled() -> bool:
    """Whether the OpenLineage provider is installed and configured (it disables itself without a transport)."""
    try:
        from airflow.providers.openlineage import conf
    except ImportError:
        return False
    try:
        return not conf.is_disabled()
    except Exception:  # a broken OpenLineage configuration is OpenLineage's to report
        return False


def _keeping_result(method: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(method)
    def wrapper(self: AISearchLineageMixin, *args: Any, **kwargs: Any) -> Any:
        try:
            result = method(self, *args, **kwargs)
        except (AISearchJobFailedError, AISearchIndexQualityError) as exc:
            self._keep_lineage_failure(exc)
            raise
        self._keep_lineage_result(result)
        return result

    setattr(wrapper, _KEEPS_RESULT, True)
    return wrapper


class AISearchLineageMixin:
    """
    ``get_openlineage_facets_on_complete`` for the create operator, the sensor and the list operator.

    The host class has ``instance_id``, ``namespace``, ``hook`` and ``log``. The task's result (the
    return value of ``execute`` or ``execute_complete``, which the mixin wraps in every subclass) gives
    the job, its status and item counts. The instance's source needs one ``GET`` of the instance
    (``AISearchHook.get_instance``), made once per task, when it succeeds and only when OpenLineage will
    ask for the task's lineage (it is enabled, and its listener emits for this task: ``selective_enable``,
    ``disabled_for_operators``, ``emission_policy``; :mod:`~airflow_provider_aisearch.lineage.emission`),
    in the task process, before the OpenLineage listener runs (the listener runs in a forked
    process, which must not talk to Airflow's supervisor, so it only reads what is cached here). A
    task whose job failed or whose items failed the quality gate gets the same datasets and job facet
    from ``get_openlineage_facets_on_failure`` (the error carries the job); any other failure gets
    empty lineage. A failure of any kind is logged and gives empty
    lineage; it never fails the task.
    """

    instance_id: str
    namespace: str | _Unset | None
    log: Any

    if TYPE_CHECKING:

        @property
        def hook(self) -> AISearchHook:
            """The host's hook."""

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        for name in _RESULT_METHODS:
            method = getattr(cls, name, None)
            if callable(method) and not getattr(method, _KEEPS_RESULT, False):
                setattr(cls, name, _keeping_result(method))

    def _lineage_wanted(self) -> bool:
        """Whether OpenLineage will ask this task for its lineage (no request is sent to find out)."""
        return openlineage_enabled() and task_lineage_wanted(self)

    def _keep_lineage_result(self, result: Any) -> None:
        """Keep the task's result; when OpenLineage will ask for it, read what its lineage needs now."""
        self.__dict__["_lineage_result"] = result
        if result == [] or not self._lineage_wanted():
            return
        try:
            self._lineage_datasets()
        except Exception as exc:  # lineage never fails the task
            self.__dict__["_lineage_error"] = exc
            self.log.warning("No OpenLineage lineage for instance %s: %s", self.instance_id, exc)

    def _keep_lineage_failure(self, error: AISearchJobFailedError | AISearchIndexQualityError) -> None:
        """Keep a failed job's or a failed gate's job dict; when OpenLineage will ask, read the datasets now."""
        self.__dict__["_lineage_failure"] = error.job if isinstance(error.job, Mapping) else {}
        if not self._lineage_wanted():
            return
        try:
            self._lineage_datasets()
        except Exception as exc:  # lineage never fails (nor changes the error of) the task
            self.__dict__["_lineage_error"] = exc
            self.log.warning("No OpenLineage lineage for instance %s: %s", self.instance_id, exc)

    def get_openlineage_facets_on_failure(self, task_instance: Any) -> Any:
        """
        The OpenLineage datasets and run facets of a task whose job failed or whose items failed the gate.

        The job facet carries the job id, status and, for a failed gate, the item counts the verdict was
        made on. Other failures (a bad request, a timeout) get empty lineage.

        :param task_instance: The failed task instance (unused: the error's job is kept on the operator).
        :return: An ``OperatorLineage``, or ``None`` without the OpenLineage provider.
        """
        try:
            from airflow.providers.openlineage.extractors import OperatorLineage
        except ImportError:
            self.log.debug("The OpenLineage provider is not installed: no lineage")
            return None
        job = self.__dict__.get("_lineage_failure")
        if job is None or "_lineage_error" in self.__dict__:
            return OperatorLineage()
        try:
            return OperatorLineage(**self._openlineage(job))
        except Exception as exc:  # lineage never fails the task
            self.log.warning("No OpenLineage lineage for instance %s: %s", self.instance_id, exc)
            return OperatorLineage()

    def get_openlineage_facets_on_complete(self, task_instance: Any) -> Any:
        """
        The task's OpenLineage datasets and run facets (empty when they cannot be built).

        :param task_instance: The ended task instance (unused: the result is kept on the operator).
        :return: An ``OperatorLineage``, or ``None`` without the OpenLineage provider.
        """
        try:
            from airflow.providers.openlineage.extractors import OperatorLineage
        except ImportError:
            self.log.debug("The OpenLineage provider is not installed: no lineage")
            return None
        result = self.__dict__.get("_lineage_result", _KEEPS_RESULT)
        if result is _KEEPS_RESULT or "_lineage_error" in self.__dict__ or result == []:
            return OperatorLineage()  # did not succeed, failed to read (logged), or no job matched
        try:
            return OperatorLineage(**self._openlineage(result))
        except Exception as exc:  # lineage never fails the task
            self.log.warning("No OpenLineage lineage for instance %s: %s", self.instance_id, exc)
            return OperatorLineage()

    def _openlineage(self, result: Any) -> dict[str, Any]:
        instance, source = self._lineage_datasets()
        if isinstance(result, list):  # the list operator
            run_facets = jobs_run_facets(result, instance)
        elif isinstance(result, Mapping) and result.get("id"):
            run_facets = job_run_facets(result, instance)
        else:
            run_facets = {}
        return {
            "inputs": [] if source is None else [source.to_openlineage()],
            "outputs": [instance.to_openlineage()],
            "run_facets": run_facets,
        }

    def _lineage_datasets(self) -> tuple[DatasetName, DatasetName | None]:
        """The instance and its source, from one ``get_instance`` per operator (cached on it)."""
        cached: tuple[DatasetName, DatasetName | None] | None = self.__dict__.get("_lineage_read")
        if cached is None:
            hook = self.hook
            account_id = hook.conn_info.require_account_id()
            instance = instance_dataset(account_id, hook.api.resolve_namespace(self.namespace), self.instance_id)
            # Not hook.get_instance: the operator reports this lineage itself, not through the hook collector.
            read = hook.run(hook.api.get_instance(self.instance_id, namespace=self.namespace))
            cached = (instance, source_dataset(read, account_id, hook.conn_info.r2_namespace()))
            self.__dict__["_lineage_read"] = cached
        return cached
