"""The public import paths stay as they were when the modules behind them were split (issue 12)."""

from __future__ import annotations

import importlib

import pytest

#: Each public module, and the names DAG code, tests and scripts import from it (beyond ``__all__``).
PUBLIC = {
    "airflow_provider_aisearch.hooks": ["AISearchHook", "AISearchAsyncClient", "load_connection_info"],
    "airflow_provider_aisearch.operators": [
        "AISearchCreateJobOperator",
        "AISearchListJobsOperator",
        "JobFilter",
        "IF_RUNNING",
        "STATE_STORE_KEY",
        "COOLDOWN_WAIT",
        "MIN_COOLDOWN_WAIT",
        "CLOCK_SKEW",
        "default_description",
        "parse_bound",
    ],
    "airflow_provider_aisearch.sensors": ["AISearchJobSensor"],
    "airflow_provider_aisearch.triggers": ["AISearchJobTrigger"],
    "airflow_provider_aisearch.jobs": ["Job", "JobLog", "JobPage", "JobStatus", "EndReasonPolicy"],
    "airflow_provider_aisearch.instances": ["Instance", "InstanceStats", "Item", "ItemChunk", "ItemLog", "ItemStatus"],
    "airflow_provider_aisearch.exceptions": ["AISearchError", "AISearchJobFailedError", "AISearchIndexQualityError"],
    "airflow_provider_aisearch.quality": ["ItemGate", "check_items", "read_item_stats"],
    # The provider info names the converters by these paths (asset-uris "to_openlineage_converter").
    "airflow_provider_aisearch.lineage": ["asset_to_openlineage", "r2_asset_to_openlineage", "AISearchLineageMixin"],
    "airflow_provider_aisearch.links": ["AISearchJobsLink", "DASHBOARD_URL_XCOM_KEY", "dashboard_url"],
    "airflow_provider_aisearch.emulator": [
        "AISearchEmulator",
        "Fault",
        "Chaos",
        "CHAOS_KINDS",
        "RateLimit",
        "EmulatedJob",
        "RequestRecord",
    ],
}


@pytest.mark.parametrize("module", sorted(PUBLIC))
def test_every_public_name_imports_from_its_public_path(module: str) -> None:
    mod = importlib.import_module(module)
    missing = [name for name in [*getattr(mod, "__all__", ()), *PUBLIC[module]] if not hasattr(mod, name)]
    assert missing == []


def test_re_exports_are_the_same_objects() -> None:
    from airflow_provider_aisearch import create_operator, hooks, operators
    from airflow_provider_aisearch.clients import async_client
    from airflow_provider_aisearch.tasks import list_operator
    from airflow_provider_aisearch.waiting import job_filter

    assert hooks.AISearchAsyncClient is async_client.AISearchAsyncClient
    assert hooks.load_connection_info is async_client.load_connection_info
    assert operators.AISearchCreateJobOperator is create_operator.AISearchCreateJobOperator
    assert operators.AISearchListJobsOperator is list_operator.AISearchListJobsOperator
    assert operators.JobFilter is job_filter.JobFilter


def test_the_paths_airflow_stores_import_the_classes() -> None:
    # Airflow and OpenLineage know a class by its module (task logs, the serialized DAG's task module,
    # ``[openlineage] disabled_for_operators``) and a trigger by the classpath ``serialize`` returns (stored
    # with the trigger, hashed into an asset watcher's identity): those paths survive the move to subpackages.
    from airflow_provider_aisearch.hooks import AISearchHook
    from airflow_provider_aisearch.operators import AISearchCreateJobOperator
    from airflow_provider_aisearch.sensors import AISearchJobSensor
    from airflow_provider_aisearch.triggers import AISearchJobEventTrigger, AISearchJobTrigger

    known_as = {
        cls: f"{cls.__module__}.{cls.__qualname__}"
        for cls in (AISearchHook, AISearchCreateJobOperator, AISearchJobSensor, AISearchJobTrigger)
    }
    assert known_as == {
        AISearchHook: "airflow_provider_aisearch.hooks.AISearchHook",
        AISearchCreateJobOperator: "airflow_provider_aisearch.create_operator.AISearchCreateJobOperator",
        AISearchJobSensor: "airflow_provider_aisearch.sensors.AISearchJobSensor",
        AISearchJobTrigger: "airflow_provider_aisearch.triggers.AISearchJobTrigger",
    }
    serialized = [
        AISearchJobTrigger(instance_id="docs", job_id="j1").serialize()[0],
        AISearchJobEventTrigger(instance_id="docs").serialize()[0],
    ]
    assert serialized == [
        "airflow_provider_aisearch.triggers.AISearchJobTrigger",
        "airflow_provider_aisearch.event_trigger.AISearchJobEventTrigger",
    ]
    for path in [*known_as.values(), *serialized]:
        module, _, name = path.rpartition(".")
        assert getattr(importlib.import_module(module), name).__name__ == name
