"""Can it answer? Re-index, gate on the item errors, then check that the index still finds what it must.

The quality gate says whether the files were indexed, not whether the index finds them: a changed
chunking setting or a half-run sync can leave an index with no failed item that answers worse. So a
re-indexing pipeline ends with a regression gate on retrieval:

- ``AISearchCreateJobOperator`` starts a job (or reuses a running one), waits for it in the triggerer,
  and fails past 5 % of items in ``error`` (the quality gate, as in ``example_aisearch_quality_gate``).
- ``AISearchRetrievalCheckOperator`` then asks every golden question of ``data/golden.yaml`` (with
  ``cache`` and ``query_rewrite`` off, so neither can hide a regression) and scores the item keys it
  gets back: the rank of the first expected key in the top ``k``, recall@k and the reciprocal rank,
  averaged into ``hit_rate``, ``recall`` and ``mrr``. It fails the task with
  ``AISearchRetrievalCheckError`` when a threshold is missed, or when a metric fell by more than
  ``max_drop`` since the last successful run of this task (its XCom is the baseline), after logging
  every missed query with the keys, scores and scoring details it got.
- Retrieval can lag indexing: with ``consistency_window``, failing questions are asked again every
  ``poll_interval`` until they pass or the window ends (questions that passed are not asked again).
- A downstream task prints the per-query ranks from the XCom.

The corpus (``data/corpus/``, 32 short documents of a fictional company's handbook, product docs and
support pages) and the golden set use the same keys: a document's path relative to ``data/corpus/``.
``make demo`` serves that folder on the instance ``kestrel-docs`` of the local emulator, whose search
is lexical (BM25) for every ``retrieval_type``.
"""

from __future__ import annotations

import os
from datetime import datetime
from typing import Any

from airflow.providers.common.compat.sdk import dag, task

from airflow_provider_aisearch.operators import AISearchCreateJobOperator, AISearchRetrievalCheckOperator

#: The instance that indexes ``data/corpus/`` (``make demo``: the emulator serves the folder there).
CORPUS_INSTANCE_ID = os.environ.get("AISEARCH_CORPUS_INSTANCE_ID", "kestrel-docs")


@dag(
    dag_id="example_aisearch_retrieval_check",
    schedule=None,
    start_date=datetime(2026, 1, 1),
    catchup=False,
    tags=["example", "cloudflare", "aisearch"],
)
def example_aisearch_retrieval_check() -> None:
    # [START howto_retrieval_check]
    reindex = AISearchCreateJobOperator(
        task_id="reindex",
        instance_id=CORPUS_INSTANCE_ID,
        wait_for_completion=True,
        deferrable=True,
        poll_interval=2,
        timeout=3600,
        max_item_errors=0.05,  # the quality gate: were the files indexed?
    )
    check = AISearchRetrievalCheckOperator(
        task_id="retrieval_check",  # can the index answer?
        instance_id=CORPUS_INSTANCE_ID,
        golden="data/golden.yaml",  # beside this file; or a list of {"query": ..., "expected_keys": [...]}
        k=5,
        min_hit_rate=0.9,  # at least 90 % of the questions find an expected document in the top 5
        min_mrr=0.6,
        max_drop=0.1,  # and no metric falls by more than 0.1 since the last successful run
        consistency_window=120,  # retrieval may lag indexing: ask failing questions again for up to 2 minutes
        poll_interval=5,
    )
    reindex >> check
    # [END howto_retrieval_check]

    @task
    def report(metrics: dict[str, Any]) -> None:
        print(
            f"{metrics['queries']} golden queries at k={metrics['k']}: hit rate {metrics['hit_rate']:.2f}, "
            f"recall {metrics['recall']:.2f}, MRR {metrics['mrr']:.2f} (baseline: {metrics['baseline']})"
        )
        for query in metrics["per_query"]:
            top = ", ".join(query["top_keys"][:3])
            print(f"  rank {query['rank']}, recall {query['recall']:.2f}: {query['query']!r} -> {top}")

    report(check.output)  # type: ignore[arg-type]  # an XComArg resolves to the metrics dict


example_aisearch_retrieval_check()
