"""Push a folder into a built-in-storage instance, know what became of each file, then check retrieval.

Instances on built-in storage (no R2 bucket, no website) have no sync jobs: files are pushed through the
Items API and indexed one by one. ``AISearchSyncItemsOperator`` makes "sync this folder, and tell me per
file what happened" one deferrable task:

- It lists the instance's items once and compares each matching file with the item under its key by the
  SHA-256 the sync stores in the item's metadata (``airflow_sha256``; Cloudflare does not document the
  algorithm of its own ``checksum``). New and changed files are uploaded, unchanged ones are not sent
  again, so a second run of this DAG on the same folder uploads nothing. On Cloudflare, declare
  ``airflow_sha256`` and ``section`` (text) in the instance's ``custom_metadata`` schema (up to 5 fields):
  its docs extract the fields the schema declares, and an upload with another field gets a
  ``custom_metadata_field_not_filterable`` warning.
- It waits in the triggerer (``deferrable=True``) until every uploaded item is ``completed``, ``error``
  or ``skipped``, with one items-list request per ``poll_interval`` for all of them.
- ``max_item_errors`` is the quality gate over this sync's files: past 5 % in ``error`` the task fails,
  after logging the last log lines of each failed item.
- Its XCom is ``{"uploaded", "unchanged", "deleted", "failed", "skipped", "items"}``: lists of keys (and
  of ``{"key", "error"}``), ready for ``.expand()``; a downstream task prints them.
- ``AISearchRetrievalCheckOperator`` then asks the golden questions of ``data/golden.yaml`` and fails on a
  missed threshold, as in ``example_aisearch_retrieval_check``.

**The pattern.** ``source`` is the demo corpus folder, ``data/corpus/``, and ``pattern="**/*.md"`` takes
its Markdown files at any depth (``*.md`` would take the top level only). The item key is ``key_prefix``
plus the path relative to ``source`` (``handbook/annual-leave.md``): the keys the golden set names. The
golden set, ``data/golden.yaml``, sits beside the corpus, outside ``source``, so no pattern can pick it up
and it is never indexed as a document; had it lived inside the folder, ``**/*.md`` would still leave it
out. ``delete_removed=True`` removes the items of files deleted from the folder (only keys that match
the pattern and start with ``key_prefix``).

``make demo`` runs this DAG twice against the emulator's built-in-storage instance ``kestrel-builtin``:
the first run uploads the 32 documents, the second finds them unchanged and uploads nothing (its run
conf ``{"expect_unchanged": true}`` makes the report task assert that from the XCom).
"""

from __future__ import annotations

import os
from datetime import datetime
from pathlib import Path
from typing import Any

from airflow.providers.common.compat.sdk import dag, task

from airflow_provider_aisearch.operators import AISearchRetrievalCheckOperator, AISearchSyncItemsOperator

#: A built-in-storage instance (``make demo``: the emulator's ``kestrel-builtin``, ``type`` absent).
BUILTIN_INSTANCE_ID = os.environ.get("AISEARCH_BUILTIN_INSTANCE_ID", "kestrel-builtin")
#: The folder synced: the demo corpus beside this file (an ``ObjectStoragePath`` URI such as
#: ``s3://aws_default@bucket/docs/`` works too).
CORPUS = Path(__file__).resolve().parent / "data" / "corpus"
#: The documents of the corpus: Markdown files at any depth.
PATTERN = "**/*.md"


@dag(
    dag_id="example_aisearch_sync_folder",
    schedule=None,
    start_date=datetime(2026, 1, 1),
    catchup=False,
    tags=["example", "cloudflare", "aisearch"],
)
def example_aisearch_sync_folder() -> None:
    # [START howto_sync_folder]
    sync = AISearchSyncItemsOperator(
        task_id="sync_corpus",
        instance_id=BUILTIN_INSTANCE_ID,
        source=str(CORPUS),  # templated; a local folder or an ObjectStoragePath URI
        pattern=PATTERN,  # only the corpus documents (data/golden.yaml is outside the folder)
        metadata=lambda path: {"section": path.parent.name},  # per file (declared in the schema)
        delete_removed=True,  # a file deleted from the folder loses its item
        deferrable=True,  # the triggerer waits for the uploaded items
        poll_interval=1,
        timeout=1800,
        max_item_errors=0.05,  # the gate: at most 5 % of this sync's files in error
    )
    check = AISearchRetrievalCheckOperator(
        task_id="retrieval_check",  # can the index answer?
        instance_id=BUILTIN_INSTANCE_ID,
        golden="data/golden.yaml",
        k=5,
        min_hit_rate=0.9,
        min_mrr=0.6,
        consistency_window=120,  # search may lag indexing: ask failing questions again for up to 2 minutes
        poll_interval=5,
    )
    sync >> check
    # [END howto_sync_folder]

    @task
    def report(outcome: dict[str, Any], dag_run: Any = None) -> None:  # dag_run: from the task's context
        uploaded, unchanged = outcome["uploaded"], outcome["unchanged"]
        print(
            f"sync: {len(uploaded)} uploaded, {len(unchanged)} unchanged, {len(outcome['deleted'])} deleted, "
            f"{len(outcome['failed'])} failed, {len(outcome['skipped'])} skipped; instance counts {outcome['items']}"
        )
        for failure in outcome["failed"]:
            print(f"  failed: {failure['key']}: {failure['error']}")
        if not uploaded:
            print(f"nothing to upload: all {len(unchanged)} documents are unchanged since the last sync")
        conf = (dag_run.conf if dag_run is not None else None) or {}
        if conf.get("expect_unchanged"):  # make demo's second run: the folder did not change
            documents = sorted(p.relative_to(CORPUS).as_posix() for p in CORPUS.rglob("*.md"))
            if uploaded or sorted(unchanged) != documents:
                raise ValueError(
                    f"expected nothing uploaded and all {len(documents)} documents unchanged, got "
                    f"uploaded={uploaded} and {len(unchanged)} unchanged"
                )

    report(sync.output) >> check  # type: ignore[arg-type]  # an XComArg resolves to the sync's outcome dict


example_aisearch_sync_folder()
