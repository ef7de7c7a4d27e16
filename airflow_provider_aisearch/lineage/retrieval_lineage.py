"""Lineage of a retrieval check: the instance it searched, with one data-quality assertion per threshold.

``AISearchRetrievalCheckOperator`` reads the instance (it searches its index), so the instance is
the check's input dataset (named by :func:`~airflow_provider_aisearch.lineage.names.instance_dataset`),
and it carries OpenLineage's ``dataQualityAssertions`` input facet: one assertion per ``min_*``
threshold and, against a baseline, one per metric for ``max_drop`` (``assertion`` is the threshold's
name, ``success`` whether it held, ``expected``/``actual`` the threshold and the value where the
client has those fields). The run facet ``aisearchRetrieval`` carries the three metrics, ``k``, the
number of queries and the baseline. The same lineage is given on success and on failure.

The OpenLineage client is optional: it is imported inside the functions.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from functools import cache
from typing import Any

from airflow_provider_aisearch.lineage.names import DatasetName
from airflow_provider_aisearch.models.retrieval import Assertion

__all__ = ["retrieval_lineage"]


@cache
def _run_facet_class() -> type[Any]:
    """The custom run facet (built on first use: it subclasses the OpenLineage client's ``RunFacet``)."""
    import attr
    from airflow.providers.common.compat.openlineage.facet import RunFacet

    # OpenLineage facet fields are camelCase.
    @attr.define
    class AISearchRetrievalRunFacet(RunFacet):
        """A retrieval check's metrics (by item key, over the top ``k``) and its baseline."""

        hitRate: float
        recall: float
        mrr: float
        k: int
        queries: int
        instance: str | None = None
        baseline: dict[str, Any] | None = None

    return AISearchRetrievalRunFacet


def _assertion_facet(assertions: Sequence[Assertion]) -> Any:
    import attr
    from openlineage.client.generated.data_quality_assertions_dataset import (
        Assertion as OLAssertion,
    )
    from openlineage.client.generated.data_quality_assertions_dataset import (
        DataQualityAssertionsDatasetFacet,
    )

    known = attr.fields_dict(OLAssertion)  # name/expected/actual/severity: openlineage-python 1.47+

    def build(checked: Assertion) -> Any:
        fields: dict[str, Any] = {
            "assertion": checked.name,
            "success": checked.success,
            "name": checked.name,
            "severity": "error",
            "description": checked.describe(),
            "expected": f"{checked.expected:g}",
            "actual": f"{checked.actual:.6g}",
        }
        return OLAssertion(**{key: value for key, value in fields.items() if key in known})

    return DataQualityAssertionsDatasetFacet(assertions=[build(checked) for checked in assertions])


def retrieval_lineage(
    instance: DatasetName, result: Mapping[str, Any], assertions: Sequence[Assertion]
) -> dict[str, Any]:
    """
    The check's lineage, as ``OperatorLineage`` keyword arguments (needs the OpenLineage client).

    :param instance: The searched instance.
    :param result: The check's value (``k``, ``queries``, ``hit_rate``, ``recall``, ``mrr``, ``baseline``).
    :param assertions: Every threshold checked, passed or not.
    """
    from airflow.providers.common.compat.openlineage.facet import InputDataset

    facet = _run_facet_class()(
        hitRate=float(result["hit_rate"]),
        recall=float(result["recall"]),
        mrr=float(result["mrr"]),
        k=int(result["k"]),
        queries=int(result["queries"]),
        instance=instance.uri,
        baseline=None if result.get("baseline") is None else dict(result["baseline"]),
    )
    input_facets = {"dataQualityAssertions": _assertion_facet(assertions)} if assertions else {}
    dataset = InputDataset(namespace=instance.namespace, name=instance.name, inputFacets=input_facets)
    return {"inputs": [dataset], "outputs": [], "run_facets": {"aisearchRetrieval": facet}}
