"""Operators: turn job lists into downstream work, start indexing safely, check retrieval (the public import path).

:class:`AISearchListJobsOperator` lives in :mod:`~airflow_provider_aisearch.tasks.list_operator` (its
filter in :mod:`~airflow_provider_aisearch.waiting.job_filter`), :class:`AISearchCreateJobOperator` in
:mod:`~airflow_provider_aisearch.tasks.create_operator` (with :mod:`~airflow_provider_aisearch.tasks.task_tries`
and :mod:`~airflow_provider_aisearch.tasks.safe_create`), :class:`AISearchRetrievalCheckOperator` in
:mod:`~airflow_provider_aisearch.tasks.retrieval_check`, :class:`AISearchSyncItemsOperator` (a folder
synced through the Items API) in :mod:`~airflow_provider_aisearch.tasks.sync_items_operator`; this module
re-exports them.
"""

from __future__ import annotations

from airflow_provider_aisearch.tasks.create_operator import IF_RUNNING, AISearchCreateJobOperator
from airflow_provider_aisearch.tasks.list_operator import AISearchListJobsOperator
from airflow_provider_aisearch.tasks.retrieval_check import AISearchRetrievalCheckOperator
from airflow_provider_aisearch.tasks.safe_create import CLOCK_SKEW as CLOCK_SKEW
from airflow_provider_aisearch.tasks.safe_create import COOLDOWN_WAIT as COOLDOWN_WAIT
from airflow_provider_aisearch.tasks.safe_create import MIN_COOLDOWN_WAIT as MIN_COOLDOWN_WAIT
from airflow_provider_aisearch.tasks.sync_items_operator import AISearchSyncItemsOperator
from airflow_provider_aisearch.tasks.task_tries import STATE_STORE_KEY as STATE_STORE_KEY
from airflow_provider_aisearch.tasks.task_tries import default_description as default_description
from airflow_provider_aisearch.waiting.job_filter import JobFilter
from airflow_provider_aisearch.waiting.job_filter import parse_bound as parse_bound

__all__ = [
    "IF_RUNNING",
    "AISearchCreateJobOperator",
    "AISearchListJobsOperator",
    "AISearchRetrievalCheckOperator",
    "AISearchSyncItemsOperator",
    "JobFilter",
]
