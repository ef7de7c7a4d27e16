"""The Cloudflare AI Search jobs API without a transport (the core), one concept per module.

Everything here is shared by the sync :class:`~airflow_provider_aisearch.hooks.AISearchHook` and
the async :class:`~airflow_provider_aisearch.clients.async_client.AISearchAsyncClient`, so each rule lives
in exactly one place:

* :mod:`.ratelimit`: the rate-limit budget per credential (:class:`~.ratelimit.RateBudget`), read from the
  answers' headers and consulted by the retry loop and the pollers (no transport: shared state only);
* :mod:`.paths`: the ``validate_*`` helpers, :func:`instance_path` and :func:`jobs_path` (input checked
  before any request);
* :mod:`.connection`: :class:`ConnectionInfo` reads an Airflow connection (base URL, account,
  namespace, auth headers);
* :mod:`.errors`: :func:`evaluate` turns one HTTP answer, or one transport failure, into a payload
  or an error, and says whether it may be retried;
* :mod:`.plans`: :class:`Call`, :class:`Answer`, :class:`Backoff`, and the drivers :func:`run_sync`
  and :func:`run_async`;
* :mod:`.retry`: :class:`RetryPolicy` and the retry loop :func:`with_retries` (with the rate-limit
  budget gate);
* :mod:`.parse`: envelopes into the :mod:`~airflow_provider_aisearch.models` (jobs, job pages, job logs,
  instances, items);
* :mod:`.paging`: the end of a paged list, its order (:class:`ListOrder`), each job once;
* :mod:`.instance_operations`: the instance, stats and items endpoints, mixed into :class:`JobsAPI`;
* :mod:`.search_operations`: the search endpoint and its body (:func:`search_body`), mixed into :class:`JobsAPI`;
* :mod:`.operations`: :class:`JobsAPI`, every endpoint as a plan.

The names below are re-exported so that ``from airflow_provider_aisearch.api import ...`` keeps
working for every importer; the modules import each other in the order listed above, never back.
"""

from __future__ import annotations

from airflow_provider_aisearch import CONN_TYPE
from airflow_provider_aisearch.api.connection import DEFAULT_BASE_URL, DEFAULT_NAMESPACE, USER_AGENT, ConnectionInfo
from airflow_provider_aisearch.api.errors import (
    TransportFailure,
    Verdict,
    describe_errors,
    evaluate,
    is_already_ended,
    parse_retry_after,
)
from airflow_provider_aisearch.api.operations import JobsAPI
from airflow_provider_aisearch.api.paging import ORDER_EVIDENCE, ListOrder, UniqueJobs, is_last_page
from airflow_provider_aisearch.api.parse import (
    parse_instance,
    parse_instance_stats,
    parse_item_page,
    parse_job,
    parse_job_page,
    parse_log_page,
    parse_search_result,
    result_of,
)
from airflow_provider_aisearch.api.paths import (
    DESCRIPTION_MAX_LENGTH,
    ITEMS_MAX_PER_PAGE,
    JOBS_MAX_PER_PAGE,
    LOGS_MAX_PER_PAGE,
    UNSET,
    _Unset,
    check_path_form,
    instance_path,
    jobs_path,
    path_segment,
    validate_choice,
    validate_description,
    validate_instance_id,
    validate_namespace,
    validate_page,
    validate_per_page,
)
from airflow_provider_aisearch.api.plans import Answer, Backoff, Call, Plan, run_async, run_sync
from airflow_provider_aisearch.api.retry import RetryPolicy, with_retries
from airflow_provider_aisearch.api.search_operations import SEARCH_MAX_NUM_RESULTS, search_body

__all__ = [
    "CONN_TYPE",
    "DEFAULT_BASE_URL",
    "DEFAULT_NAMESPACE",
    "DESCRIPTION_MAX_LENGTH",
    "ITEMS_MAX_PER_PAGE",
    "JOBS_MAX_PER_PAGE",
    "LOGS_MAX_PER_PAGE",
    "ORDER_EVIDENCE",
    "SEARCH_MAX_NUM_RESULTS",
    "UNSET",
    "USER_AGENT",
    "Answer",
    "Backoff",
    "Call",
    "ConnectionInfo",
    "JobsAPI",
    "ListOrder",
    "Plan",
    "RetryPolicy",
    "TransportFailure",
    "UniqueJobs",
    "Verdict",
    "_Unset",
    "check_path_form",
    "describe_errors",
    "evaluate",
    "is_already_ended",
    "instance_path",
    "is_last_page",
    "jobs_path",
    "parse_instance",
    "parse_instance_stats",
    "parse_item_page",
    "parse_job",
    "parse_job_page",
    "parse_log_page",
    "parse_retry_after",
    "parse_search_result",
    "path_segment",
    "result_of",
    "run_async",
    "run_sync",
    "search_body",
    "validate_choice",
    "validate_description",
    "validate_instance_id",
    "validate_namespace",
    "validate_page",
    "validate_per_page",
    "with_retries",
]
