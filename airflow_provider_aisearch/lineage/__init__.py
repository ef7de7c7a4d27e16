"""Lineage of indexing jobs: the public path of the OpenLineage asset converters and the operators' lineage mixin.

The provider info names :func:`asset_to_openlineage` and :func:`r2_asset_to_openlineage` by this path, so they
(and everything :mod:`.job_lineage` exports) are re-exported here. The modules inside are internal and may move:
:mod:`.job_lineage` (operator lineage for OpenLineage, hook lineage for Airflow's collector), :mod:`.names`
(the dataset names and the asset converters) and :mod:`.emission` (whether OpenLineage wants a task's lineage).
"""

from __future__ import annotations

from airflow_provider_aisearch.lineage.job_lineage import (
    DEFAULT_R2_NAMESPACE,
    R2_NAMESPACE_EXTRA,
    R2_NAMESPACES,
    AISearchLineageMixin,
    DatasetName,
    asset_to_openlineage,
    instance_dataset,
    job_run_facets,
    jobs_run_facets,
    openlineage_enabled,
    r2_asset_to_openlineage,
    record_job_output,
    record_source_input,
    source_dataset,
    validate_r2_namespace,
)

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
