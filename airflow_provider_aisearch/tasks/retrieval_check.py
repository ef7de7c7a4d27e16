"""AISearchRetrievalCheckOperator: ask golden queries, score the answers by item key, fail on a regression.

The golden set is :mod:`~airflow_provider_aisearch.tasks.golden`; the metrics and thresholds are
:mod:`~airflow_provider_aisearch.models.retrieval`; the search is ``AISearchHook.search``; the log of a
check is :mod:`~airflow_provider_aisearch.tasks.retrieval_report`; its lineage
:mod:`~airflow_provider_aisearch.lineage.retrieval_lineage`.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping, Sequence
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from airflow.providers.common.compat.sdk import BaseOperator

from airflow_provider_aisearch.api import UNSET, _Unset, validate_instance_id
from airflow_provider_aisearch.api.paths import validate_choice
from airflow_provider_aisearch.api.search_operations import RETRIEVAL_TYPES, SEARCH_MAX_NUM_RESULTS
from airflow_provider_aisearch.exceptions import AISearchRetrievalCheckError
from airflow_provider_aisearch.hooks import AISearchHook
from airflow_provider_aisearch.lineage.names import instance_dataset
from airflow_provider_aisearch.lineage.retrieval_lineage import retrieval_lineage
from airflow_provider_aisearch.models.retrieval import (
    METRICS,
    Assertion,
    QueryScore,
    RetrievalMetrics,
    RetrievalThresholds,
    score_query,
)
from airflow_provider_aisearch.models.search import SearchResult
from airflow_provider_aisearch.tasks.golden import (
    GoldenQuery,
    check_golden_path,
    golden_is_path,
    load_golden,
    parse_golden,
)
from airflow_provider_aisearch.tasks.job_wait import validate_hook_params
from airflow_provider_aisearch.tasks.retrieval_report import log_metrics, log_missed
from airflow_provider_aisearch.waiting.watch import validate_interval

if TYPE_CHECKING:
    from airflow.providers.common.compat.sdk import Context

__all__ = ["BASELINE_XCOM_KEY", "AISearchRetrievalCheckOperator"]

#: The XCom key of a passed check's metrics and run id: the next run's baseline (the return value holds
#: the same metrics, but not the run id the baseline must name).
BASELINE_XCOM_KEY = "retrieval_check_baseline"


def _templated(value: object) -> bool:
    """Whether a literal still holds Jinja (or is an XComArg), so that it is checked at render time."""
    return (isinstance(value, str) and "{{" in value) or hasattr(value, "resolve")


def _validate_k(k: object) -> int:
    if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= SEARCH_MAX_NUM_RESULTS:
        raise ValueError(f"k must be an integer from 1 to {SEARCH_MAX_NUM_RESULTS}, got {k!r}")
    return k


def _validate_window(value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
        raise ValueError(f"consistency_window must be a number of seconds >= 0, got {value!r}")
    return float(value)


class AISearchRetrievalCheckOperator(BaseOperator):
    """
    Ask an instance a golden set of queries and fail when the answers regressed.

    Each golden query is sent to ``AISearchHook.search`` with ``rewrite_query=False`` and
    ``cache=False`` (a rewritten query or a cached answer could hide a regression), its own
    ``filters``, ``retrieval_type`` and ``max_num_results``. The answer's chunks are folded into item
    keys (an item counts once, at the rank of its best chunk) and the top ``k`` keys are scored:
    the rank of the first expected key, recall@k and the reciprocal rank; over the queries,
    ``hit_rate``, ``recall`` (mean recall@k) and ``mrr``. A threshold missed, or a metric fallen by
    more than ``max_drop`` against the last successful run of this task (its baseline), raises
    :class:`~airflow_provider_aisearch.exceptions.AISearchRetrievalCheckError` after the task log has
    listed every missed query (expected keys, the top keys got, their scores and ``scoring_details``)
    and then the metrics.

    With ``consistency_window > 0``, queries that miss (do not find every expected key, or ``k`` of
    them) are asked again every ``poll_interval`` seconds until they pass or the window ends (right
    after indexing, retrieval may lag); the queries that passed are not sent again.

    Returns (XCom ``return_value``) ``{"k", "queries", "hit_rate", "recall", "mrr", "per_query":
    [{"query", "rank", "recall", "top_keys"}], "baseline": {"hit_rate", "recall", "mrr", "run_id"} or
    None}``. A passed check also pushes its metrics and run id under :data:`BASELINE_XCOM_KEY`, which
    the next run pulls with ``include_prior_dates=True`` as its baseline.

    :param instance_id: AI Search instance id (templated).
    :param golden: A list of ``{"query": str, "expected_keys": [str, ...], "filters": {...}}`` (``filters``
        optional), or the path of a ``.json``/``.yaml``/``.yml`` file holding one, relative to the DAG
        file's folder (templated; the file is read when the task runs).
    :param namespace: Namespace (templated); default: the connection's. The search has no legacy path.
    :param aisearch_conn_id: The Airflow connection id.
    :param k: How many item keys of each answer count (1-50).
    :param min_hit_rate: ``None`` or the lowest allowed ``hit_rate``, in [0, 1].
    :param min_recall: ``None`` or the lowest allowed ``recall``, in [0, 1].
    :param min_mrr: ``None`` or the lowest allowed ``mrr``, in [0, 1].
    :param max_drop: ``None`` or, in [0, 1], the largest allowed fall of any metric against the baseline
        (not checked on a first run, which has none).
    :param consistency_window: Seconds during which missed queries are asked again (0: asked once).
    :param poll_interval: Seconds between those rounds (> 0).
    :param retrieval_type: ``"vector"``, ``"keyword"`` or ``"hybrid"``; ``None``: the instance's setting.
    :param max_num_results: Chunks asked for per query (``k``-50); ``None``: 50, Cloudflare's most, so that
        an item whose chunks crowd the top cannot push other items out of the top ``k`` keys.
    :param hook_params: ``timeout``, ``max_retries`` and ``retry_backoff`` for the hook.
    """

    template_fields: Sequence[str] = ("instance_id", "namespace", "golden")
    template_fields_renderers: ClassVar[dict[str, str]] = {"golden": "json"}
    ui_color = "#f6821f"

    def __init__(
        self,
        *,
        instance_id: str,
        golden: Sequence[Mapping[str, Any]] | str,
        namespace: str | _Unset | None = UNSET,
        aisearch_conn_id: str = AISearchHook.default_conn_name,
        k: int = 5,
        min_hit_rate: float | None = None,
        min_recall: float | None = None,
        min_mrr: float | None = None,
        max_drop: float | None = None,
        consistency_window: float = 0,
        poll_interval: float = 10,
        retrieval_type: str | None = None,
        max_num_results: int | None = None,
        hook_params: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.k = _validate_k(k)
        self.thresholds = RetrievalThresholds.build(
            min_hit_rate=min_hit_rate, min_recall=min_recall, min_mrr=min_mrr, max_drop=max_drop
        )
        self.min_hit_rate, self.min_recall, self.min_mrr, self.max_drop = (
            self.thresholds.min_hit_rate,
            self.thresholds.min_recall,
            self.thresholds.min_mrr,
            self.thresholds.max_drop,
        )
        self.consistency_window = _validate_window(consistency_window)
        self.poll_interval = validate_interval("poll_interval", poll_interval)
        if retrieval_type is not None:
            validate_choice("retrieval_type", retrieval_type, RETRIEVAL_TYPES)
        self.retrieval_type = retrieval_type
        if max_num_results is not None and (
            isinstance(max_num_results, bool)
            or not isinstance(max_num_results, int)
            or not self.k <= max_num_results <= SEARCH_MAX_NUM_RESULTS
        ):
            raise ValueError(
                f"max_num_results must be None or an integer from k={self.k} to {SEARCH_MAX_NUM_RESULTS} "
                f"(fewer chunks cannot fill the top k), got {max_num_results!r}"
            )
        self.max_num_results = max_num_results
        self.hook_params = validate_hook_params(hook_params)
        self.aisearch_conn_id = aisearch_conn_id
        self.instance_id = instance_id
        self.namespace = namespace
        if not _templated(instance_id):
            validate_instance_id(instance_id)
        self.golden = golden
        if golden_is_path(golden):
            if not _templated(golden):
                check_golden_path(golden)
        elif not _templated(golden):
            parse_golden(golden)

    @cached_property
    def hook(self) -> AISearchHook:
        """The hook."""
        return AISearchHook(self.aisearch_conn_id, **self.hook_params)

    # -- rendering ------------------------------------------------------------------------------

    def render_template_fields(self, context: Any, jinja_env: Any = None) -> None:
        """Render the templated fields, then check them (a bad rendered value fails before any request)."""
        super().render_template_fields(context, jinja_env)
        self._checked_golden()

    def _checked_golden(self) -> list[GoldenQuery]:
        validate_instance_id(self.instance_id)
        return load_golden(self.golden, folder=self._dag_folder())

    def _dag_folder(self) -> str | None:
        """The DAG file's folder (a relative ``golden`` path is read from there)."""
        dag = getattr(self, "dag", None) if self.has_dag() else None
        fileloc = getattr(dag, "fileloc", None)
        return str(Path(fileloc).parent) if fileloc else None

    # -- the check ------------------------------------------------------------------------------

    def execute(self, context: Context) -> dict[str, Any]:
        """Ask every golden query, score the answers, compare with the baseline and the thresholds."""
        queries = self._checked_golden()
        ti = context["ti"]
        baseline = self._baseline(ti)
        scores, results = self._ask(queries)
        metrics = RetrievalMetrics(self.k, tuple(scores))
        assertions = self.thresholds.assertions(metrics, baseline)
        value = metrics.to_dict(baseline)
        self._keep_lineage(value, assertions)
        failed = [a for a in assertions if not a.success]
        log_missed(self.log, metrics, results, failed=bool(failed))
        log_metrics(self.log, metrics, baseline, assertions)
        if failed:
            reasons = [a.describe() for a in failed]
            raise AISearchRetrievalCheckError(
                f"Retrieval check of instance {self.instance_id!r} failed: {'; '.join(reasons)}",
                result=value,
                failed=reasons,
            )
        ti.xcom_push(
            key=BASELINE_XCOM_KEY,
            value={**metrics.values(), "run_id": ti.run_id, "baseline": baseline},
        )
        return value

    def _ask(self, queries: list[GoldenQuery]) -> tuple[list[QueryScore], list[SearchResult]]:
        """Each query once, then the missed ones again every ``poll_interval`` within ``consistency_window``."""
        scores: list[QueryScore | None] = [None] * len(queries)
        results: list[SearchResult | None] = [None] * len(queries)
        deadline = time.monotonic() + self.consistency_window
        pending = list(range(len(queries)))
        while True:
            for index in pending:
                golden = queries[index]
                result = self.hook.search(
                    self.instance_id,
                    golden.query,
                    namespace=self.namespace,
                    max_num_results=self.max_num_results or SEARCH_MAX_NUM_RESULTS,
                    retrieval_type=self.retrieval_type,
                    filters=golden.filters,
                    rewrite_query=False,
                    cache=False,
                )
                results[index] = result
                scores[index] = score_query(golden.query, golden.expected_keys, result.item_keys(), self.k)
            pending = [index for index in pending if not _passed(scores[index])]
            remaining = deadline - time.monotonic()
            if not pending or remaining <= 0:
                break
            self.log.info(
                "%d of %d golden queries missed; asking them again in %.1f s (%.1f s of the consistency window left)",
                len(pending),
                len(queries),
                min(self.poll_interval, remaining),
                remaining,
            )
            time.sleep(min(self.poll_interval, remaining))
        return [s for s in scores if s is not None], [r for r in results if r is not None]

    def _baseline(self, ti: Any) -> dict[str, Any] | None:
        """
        The last successful run's metrics and run id (``None`` on a first run).

        Pulled with ``include_prior_dates=True`` (runs whose logical date, or on Airflow 3 without one
        its ``run_after``, is not later than this run's, newest first). A value this run pushed itself
        (a passed try whose XCom Airflow kept) is not its own baseline: the baseline it had is used.
        """
        try:
            pulled = ti.xcom_pull(
                task_ids=self.task_id,
                key=BASELINE_XCOM_KEY,
                include_prior_dates=True,
                map_indexes=getattr(ti, "map_index", -1),
            )
        except Exception as exc:
            if self.max_drop is not None:
                raise
            self.log.warning("Could not read the baseline of an earlier run: %s", exc)
            return None
        if isinstance(pulled, Mapping) and pulled.get("run_id") == ti.run_id:
            pulled = pulled.get("baseline")
        if pulled is None:
            self.log.info("No earlier successful run of this task: no baseline")
            return None
        if not isinstance(pulled, Mapping) or not all(
            isinstance(pulled.get(m), (int, float)) and not isinstance(pulled.get(m), bool) for m in METRICS
        ):
            self.log.warning("Ignoring a baseline that is not this operator's: %r", pulled)
            return None
        return {**{m: float(pulled[m]) for m in METRICS}, "run_id": pulled.get("run_id")}

    # -- lineage --------------------------------------------------------------------------------

    def _keep_lineage(self, value: dict[str, Any], assertions: list[Assertion]) -> None:
        """Name the instance dataset now, in the task process (the listener's process must not read the connection)."""
        try:
            hook = self.hook
            dataset = instance_dataset(
                hook.conn_info.require_account_id(), hook.api.resolve_namespace(self.namespace), self.instance_id
            )
        except Exception as exc:  # lineage never fails the task
            self.log.warning("No OpenLineage lineage for instance %s: %s", self.instance_id, exc)
            return
        self.__dict__["_lineage_check"] = (dataset, value, assertions)

    def get_openlineage_facets_on_complete(self, task_instance: Any) -> Any:
        """
        The check's OpenLineage lineage: the instance as input, with its data-quality assertions; the metrics.

        :param task_instance: The ended task instance (unused: the check's outcome is kept on the operator).
        :return: An ``OperatorLineage`` (empty when the check did not run), or ``None`` without the provider.
        """
        try:
            from airflow.providers.openlineage.extractors import OperatorLineage
        except ImportError:
            self.log.debug("The OpenLineage provider is not installed: no lineage")
            return None
        kept = self.__dict__.get("_lineage_check")
        if kept is None:
            return OperatorLineage()
        try:
            return OperatorLineage(**retrieval_lineage(*kept))
        except Exception as exc:  # lineage never fails the task
            self.log.warning("No OpenLineage lineage for instance %s: %s", self.instance_id, exc)
            return OperatorLineage()

    def get_openlineage_facets_on_failure(self, task_instance: Any) -> Any:
        """
        The same lineage for a failed check (its failed assertions say why); empty when the check never ran.

        :param task_instance: The failed task instance (unused).
        """
        return self.get_openlineage_facets_on_complete(task_instance)


def _passed(score: QueryScore | None) -> bool:
    return score is not None and score.passed
