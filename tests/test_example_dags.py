"""The example DAGs import cleanly and run end to end (dag.test()) against the emulator."""

from __future__ import annotations

from collections.abc import AsyncGenerator, Callable
from pathlib import Path
from typing import Any, cast

import pytest

from airflow_provider_aisearch.emulator import AISearchEmulator

EXAMPLE_DAGS = Path(__file__).resolve().parents[1] / "example_dags"
AIRFLOW_2 = __import__("airflow").__version__.startswith("2.")


@pytest.fixture(scope="module")
def airflow_db() -> None:
    from airflow.utils import db

    db.resetdb()


def _dagbag() -> Any:
    try:
        from airflow.dag_processing.dagbag import DagBag  # Airflow 3.1+
    except ImportError:
        from airflow.models.dagbag import DagBag  # type: ignore[no-redef]
    return DagBag(dag_folder=str(EXAMPLE_DAGS))


def test_example_dags_import_without_errors() -> None:
    bag = _dagbag()
    assert bag.import_errors == {}
    assert "example_aisearch_hook" in bag.dag_ids


def test_example_hook_dag_runs_against_emulator(
    airflow_db: None, make_emulator: Callable[..., AISearchEmulator], connect: Callable[..., None]
) -> None:
    emu = make_emulator(job_duration=0.5)
    emu.seed_jobs("docs", 12)
    connect(emu)
    dag = _dagbag().get_dag("example_aisearch_hook")
    run = dag.test()
    assert str(run.state) in ("success", "DagRunState.SUCCESS")
    posts = emu.requests_to(method="POST")
    assert len(posts) == 1
    assert posts[0].body["description"].startswith("airflow:example_aisearch_hook:")
    created = emu.jobs("docs")[0]
    assert created["end_reason"] == "completed"
    assert [r.route for r in emu.requests][0] == "account_verify"


def test_example_sensor_dag_runs_deferrable_and_mapped(
    airflow_db: None, make_emulator: Callable[..., AISearchEmulator], connect: Callable[..., None]
) -> None:
    import threading
    import time

    emu = make_emulator(job_duration=3600.0)
    emu.seed_jobs("docs", 4)
    connect(emu)

    def end_the_created_job_once_the_trigger_lists() -> None:
        # The created job runs until the deferred sensor's trigger has listed the jobs (a fixed duration raced
        # with how long Airflow takes to start the sensor: 3.1's dag.test() is slower).
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            requests = list(emu.requests)
            if any(r.method == "POST" for r in requests):
                created = emu.jobs("docs")[0]["id"]  # the newest: the one the DAG started
                checks = [i for i, r in enumerate(requests) if r.segments[3:] == (created,)]
                if checks and any(r.route == "jobs" and len(r.segments) == 3 for r in requests[checks[0] :]):
                    emu.finish_job("docs", created)
                    return
            time.sleep(0.05)

    ender = threading.Thread(target=end_the_created_job_once_the_trigger_lists, daemon=True)
    ender.start()
    dag = _dagbag().get_dag("example_aisearch_sensor")
    run = dag.test()
    ender.join(5)
    assert str(run.state) in ("success", "DagRunState.SUCCESS")
    assert len(emu.requests_to(method="POST")) == 1
    created = emu.jobs("docs")[0]
    assert created["end_reason"] == "completed"
    job_paths = [r.segments[3] for r in emu.requests if r.route == "jobs" and len(r.segments) == 4]
    assert job_paths.count(created["id"]) >= 1  # the sensor's check; the trigger then polls with listings
    first_check = next(i for i, r in enumerate(emu.requests) if r.segments[3:] == (created["id"],))
    assert any(r.route == "jobs" and len(r.segments) == 3 for r in emu.requests[first_check:])
    # the mapped sensors each waited on one of the three newest jobs
    assert {j["id"] for j in emu.jobs("docs")[:3]} <= set(job_paths)


def _asset_event_extras() -> list[dict[str, Any]]:
    from airflow.utils.session import create_session

    try:
        from airflow.models.asset import AssetEvent as Event  # Airflow 3
    except ImportError:
        from airflow.models.dataset import DatasetEvent as Event  # type: ignore[no-redef,import-not-found]
    with create_session() as session:
        return [dict(e.extra or {}) for e in session.query(Event).order_by(Event.id).all()]


def test_example_operators_dag_runs(
    airflow_db: None, make_emulator: Callable[..., AISearchEmulator], connect: Callable[..., None]
) -> None:
    emu = make_emulator(job_duration=0.5)
    emu.seed_jobs("docs", 6)
    connect(emu)
    run = _dagbag().get_dag("example_aisearch_operators").test()
    assert str(run.state) in ("success", "DagRunState.SUCCESS")
    jobs = emu.jobs("docs")
    assert len(emu.requests_to(method="POST")) == 1
    assert jobs[0]["description"].startswith("airflow:example_aisearch_operators:reindex:")
    assert jobs[0]["end_reason"] == "completed"
    confirmed = [r.segments[3] for r in emu.requests if r.route == "jobs" and len(r.segments) == 4]
    assert {j["id"] for j in jobs[:3]} <= set(confirmed)  # the mapped sensors checked the 3 newest


def test_example_asset_producer_and_consumer_run(
    airflow_db: None, make_emulator: Callable[..., AISearchEmulator], connect: Callable[..., None]
) -> None:
    emu = make_emulator()
    emu.seed_jobs("docs", 3)
    connect(emu)
    before = len(_asset_event_extras())
    bag = _dagbag()
    import airflow

    if airflow.__version__.startswith("2."):
        bag.sync_to_db()  # 2.11's dag.test() records dataset events only for datasets already in the DB
    run = bag.get_dag("example_aisearch_asset_producer").test()
    assert str(run.state) in ("success", "DagRunState.SUCCESS")
    extras = _asset_event_extras()[before:]
    assert extras == [{"job_ids": [j["id"] for j in emu.jobs("docs")], "instance_id": "docs", "namespace": "default"}]
    run = bag.get_dag("example_aisearch_asset_consumer").test()
    assert str(run.state) in ("success", "DagRunState.SUCCESS")


@pytest.mark.timeout(600)
def test_make_demo_runs_every_example_dag_with_airflow_dags_test(tmp_path: Path) -> None:
    """The demo script: `airflow db migrate`, then `airflow dags test` per example DAG, against the emulator."""
    import os
    import subprocess
    import sys

    script = EXAMPLE_DAGS.parent / "scripts" / "demo.py"
    env = {**os.environ, "AISEARCH_DEMO_HOME": str(tmp_path / "home")}
    env.pop("AIRFLOW_CONN_AISEARCH_DEFAULT", None)
    result = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, env=env, timeout=600)
    summary = result.stdout[result.stdout.rfind("=== demo summary ===") :]
    assert result.returncode == 0, summary or result.stdout[-3000:] + result.stderr[-3000:]
    dag_ids = set(_dagbag().dag_ids)
    event_driven = "example_aisearch_event_driven"
    assert len(dag_ids) == (8 if AIRFLOW_2 else 9)  # the event-driven example needs Airflow 3
    for dag_id in dag_ids - {event_driven}:  # every example DAG ran, and passed
        assert f"ok     {dag_id}:" in summary
    # the retrieval check ran twice: the second run had the first's metrics as its baseline
    assert f"ok     {RETRIEVAL_DAG} (run 2, against run 1's baseline):" in summary
    assert "12 golden queries at k=5: hit rate 1.00, recall 1.00" in result.stdout
    assert "(baseline: {'hit_rate': 1.0, 'recall': 1.0" in result.stdout
    # the sync-folder example ran twice: the corpus uploaded once, then found unchanged (asserted from the XCom)
    documents = len(_corpus())
    assert f"ok     {SYNC_DAG} (run 2, nothing changed: nothing uploaded):" in summary
    assert f"sync: {documents} uploaded, 0 unchanged, 0 deleted, 0 failed" in result.stdout
    assert f"sync: 0 uploaded, {documents} unchanged, 0 deleted, 0 failed" in result.stdout
    assert f"nothing to upload: all {documents} documents are unchanged since the last sync" in result.stdout
    if not AIRFLOW_2:  # its trigger saw the user's job and the scheduled sync end; the DAG ran for each
        assert f"ok     {event_driven} trigger:" in summary
        assert f"ok     {event_driven} (user job):" in summary
        assert f"ok     {event_driven} (schedule job):" in summary
        assert "ALERT: indexing job" in result.stdout  # the failed scheduled sync took the alert branch
    assert "FAILED" not in summary


def _xcom_value(dag_id: str, task_id: str, key: str) -> Any:
    import json

    from airflow.utils.session import create_session

    try:
        from airflow.models.xcom import XComModel as Model  # type: ignore[attr-defined,unused-ignore]  # Airflow 3
    except ImportError:
        from airflow.models.xcom import XCom as Model  # type: ignore[attr-defined,no-redef,unused-ignore]
    with create_session() as session:
        row = (
            session.query(Model)
            .filter(Model.dag_id == dag_id, Model.task_id == task_id, Model.key == key)
            .order_by(Model.timestamp.desc())
            .first()
        )
        assert row is not None, f"no XCom {key!r} for {dag_id}.{task_id}"
        value = row.value
    if isinstance(value, bytes):
        value = value.decode()
    if isinstance(value, str):
        try:
            return json.loads(value)  # stored JSON-encoded
        except ValueError:
            return value  # stored as the value itself
    return value


def test_create_operator_extra_link_points_at_the_dashboard(
    airflow_db: None, make_emulator: Callable[..., AISearchEmulator], connect: Callable[..., None]
) -> None:
    from airflow_provider_aisearch.links import DASHBOARD_URL_XCOM_KEY, AISearchJobsLink
    from airflow_provider_aisearch.operators import AISearchCreateJobOperator

    emu = make_emulator(job_duration=0.3)
    connect(emu)
    dag = _dagbag().get_dag("example_aisearch_operators")
    reindex = dag.get_task("reindex")
    assert isinstance(reindex, AISearchCreateJobOperator)
    assert [type(link) for link in reindex.operator_extra_links] == [AISearchJobsLink]
    assert AISearchJobsLink.name == "Cloudflare AI Search"
    run = dag.test()
    assert str(run.state) in ("success", "DagRunState.SUCCESS")
    url = _xcom_value("example_aisearch_operators", "reindex", DASHBOARD_URL_XCOM_KEY)
    assert url == f"https://dash.cloudflare.com/{emu.account_id}/ai/ai-search/instance/docs/jobs"
    assert _xcom_value("example_aisearch_operators", "reindex", "job_id") == emu.jobs("docs")[0]["id"]


# ---------------------------------------------------------------------------------------------
# The quality gate example (issue 15): create, wait in the triggerer, gate, print the counts
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("share", "passes"), [(0.02, True), (0.10, False)], ids=["2pc-passes", "10pc-fails"])
def test_example_quality_gate_dag_gates_on_the_item_errors(
    airflow_db: None,
    make_emulator: Callable[..., AISearchEmulator],
    connect: Callable[..., None],
    capsys: pytest.CaptureFixture[str],
    share: float,
    passes: bool,
) -> None:
    emu = make_emulator(instances=[], job_duration=1.0)
    emu.add_instance("docs", items=100)
    emu.set_item_errors(share)
    connect(emu)
    run = _dagbag().get_dag("example_aisearch_quality_gate").test()  # deferred: dag.test() runs the trigger
    states = {ti.task_id: str(ti.state) for ti in run.get_task_instances()}
    assert len(emu.requests_to(method="POST")) == 1
    assert len(emu.requests_to(route="instance_stats")) == 1  # read once, after the job ended
    if passes:
        assert str(run.state) in ("success", "DagRunState.SUCCESS")
        items = _xcom_value("example_aisearch_quality_gate", "report_items", "return_value")
        assert (items["completed"], items["error"], items["queued"], items["running"]) == (98, 2, 0, 0)
        assert "98 completed, 2 error, 0 skipped" in capsys.readouterr().out
        assert emu.requests_to(route="items") == []
    else:
        assert str(run.state) in ("failed", "DagRunState.FAILED")
        assert states["reindex_checked"].endswith("failed")
        assert states["report_items"].endswith("upstream_failed")
        (listing,) = emu.requests_to(route="items")  # the failed items, for the task log
        assert listing.query["status"] == "error"


# ---------------------------------------------------------------------------------------------
# The retrieval check example (issue 23): create, wait, gate, then the golden questions over the demo corpus
# ---------------------------------------------------------------------------------------------

DATA = EXAMPLE_DAGS / "data"
CORPUS_INSTANCE = "kestrel-docs"
RETRIEVAL_DAG = "example_aisearch_retrieval_check"


def _corpus() -> dict[str, str]:
    from airflow_provider_aisearch.emulator.documents import load_documents

    return load_documents(DATA / "corpus")


def _golden() -> list[dict[str, Any]]:
    from airflow_provider_aisearch.tasks.golden import load_golden

    return [{"query": g.query, "expected_keys": list(g.expected_keys)} for g in load_golden(DATA / "golden.yaml")]


def _corpus_emulator(make_emulator: Callable[..., AISearchEmulator], **kwargs: Any) -> AISearchEmulator:
    emu = make_emulator(instances=[], **kwargs)
    emu.add_instance(CORPUS_INSTANCE, documents=_corpus())
    return emu


def _answer_keys(emu: AISearchEmulator, body: dict[str, Any]) -> list[str]:
    """The distinct item keys of the emulator's answer to a search body (plain HTTP), each at its best chunk's rank."""
    import requests

    url = f"{emu.url}/accounts/{emu.account_id}/ai-search/namespaces/default/instances/{CORPUS_INSTANCE}/search"
    answer = requests.post(url, json=body, headers={"Authorization": f"Bearer {emu.token}"}, timeout=30)
    assert answer.status_code == 200, answer.text
    keys: list[str] = []
    for chunk in answer.json()["result"]["chunks"]:
        if chunk["item"]["key"] not in keys:
            keys.append(chunk["item"]["key"])
    return keys


def test_demo_corpus_finds_every_golden_document_in_the_top_5(make_emulator: Callable[..., AISearchEmulator]) -> None:
    """The corpus and the golden set fit: each expected document ranks in the top 5, some only through their text."""
    from airflow_provider_aisearch.emulator.search_index import tokenize

    corpus, golden = _corpus(), _golden()
    assert 20 <= len(corpus) <= 40
    assert {key: len(text.split()) for key, text in corpus.items() if not 80 <= len(text.split()) <= 250} == {}
    assert 10 <= len(golden) <= 12
    assert [k for entry in golden for k in entry["expected_keys"] if k not in corpus] == []
    emu = _corpus_emulator(make_emulator)
    ranks = {}
    for entry in golden:
        keys = _answer_keys(emu, {"query": entry["query"], "ai_search_options": {"retrieval": {"max_num_results": 50}}})
        ranks[entry["query"]] = [keys.index(k) + 1 if k in keys else None for k in entry["expected_keys"]]
    assert {q: r for q, r in ranks.items() if not all(rank is not None and rank <= 5 for rank in r)} == {}
    # Found through the text: no word of the question is in its document's title (heading and file name).
    title_free = [
        entry["query"]
        for entry in golden
        for key in entry["expected_keys"][:1]
        if not set(tokenize(entry["query"])) & set(tokenize(corpus[key].splitlines()[0] + " " + key))
    ]
    assert len(title_free) >= 2, title_free


def _expected_metrics(emu: AISearchEmulator, searches: list[Any], k: int) -> dict[str, Any]:
    """The metrics, recomputed here from the emulator's answers to the very requests the check sent."""
    expected = {entry["query"]: entry["expected_keys"] for entry in _golden()}
    per_query = []
    for search in searches:
        query = search.body["query"]
        top = _answer_keys(emu, search.body)[:k]
        found = [top.index(key) + 1 for key in expected[query] if key in top]
        rank = min(found) if found else None
        per_query.append({"query": query, "rank": rank, "recall": len(found) / len(expected[query]), "top_keys": top})
    n = len(per_query)
    return {
        "k": k,
        "queries": n,
        "hit_rate": sum(q["rank"] is not None for q in per_query) / n,
        "recall": sum(q["recall"] for q in per_query) / n,
        "mrr": sum(1 / q["rank"] for q in per_query if q["rank"]) / n,
        "per_query": per_query,
    }


def test_example_retrieval_check_dag_scores_the_golden_questions_and_keeps_a_baseline(
    airflow_db: None,
    make_emulator: Callable[..., AISearchEmulator],
    connect: Callable[..., None],
    capsys: pytest.CaptureFixture[str],
) -> None:
    emu = _corpus_emulator(make_emulator, job_duration=1.0)
    connect(emu)
    dag = _dagbag().get_dag(RETRIEVAL_DAG)
    golden_queries = sorted(entry["query"] for entry in _golden())
    runs, metrics = [], []
    for _ in range(2):  # the second run checks against the first one's metrics
        before = len(emu.requests)
        run = dag.test()
        assert str(run.state) in ("success", "DagRunState.SUCCESS")
        runs.append(run)
        metrics.append(_xcom_value(RETRIEVAL_DAG, "retrieval_check", "return_value"))
        new = emu.requests[before:]
        assert len([r for r in new if r.method == "POST" and r.route == "jobs"]) == 1  # re-indexed once
        searches = [r for r in new if r.route == "search"]
        # every golden question asked once (the documents completed with the job: no consistency retry), with
        # neither a cached answer nor a rewritten query
        assert sorted(r.body["query"] for r in searches) == golden_queries
        for search in searches:
            options = search.body["ai_search_options"]
            assert (options["cache"]["enabled"], options["query_rewrite"]["enabled"]) == (False, False)
        expected = _expected_metrics(emu, searches, k=5)
        got = metrics[-1]
        assert {key: got[key] for key in ("k", "queries")} == {"k": 5, "queries": len(golden_queries)}
        assert [got["hit_rate"], got["recall"], got["mrr"]] == pytest.approx(
            [expected["hit_rate"], expected["recall"], expected["mrr"]]
        )
        by_query = {q["query"]: q for q in got["per_query"]}
        for want in expected["per_query"]:
            have = by_query[want["query"]]
            assert (have["rank"], have["top_keys"][:5]) == (want["rank"], want["top_keys"])
            assert have["recall"] == pytest.approx(want["recall"])
    # hand-checked on the corpus: every expected document is in the top 5 (the test above), so
    assert (metrics[0]["hit_rate"], metrics[0]["recall"]) == (1.0, 1.0)
    assert metrics[0]["baseline"] is None  # the first run has none
    baseline = metrics[1]["baseline"]
    assert baseline["run_id"] == runs[0].run_id
    assert [baseline["hit_rate"], baseline["recall"], baseline["mrr"]] == pytest.approx(
        [metrics[0]["hit_rate"], metrics[0]["recall"], metrics[0]["mrr"]]
    )
    out = capsys.readouterr().out
    assert f"{len(golden_queries)} golden queries at k=5: hit rate 1.00, recall 1.00" in out  # the report task


# ---------------------------------------------------------------------------------------------
# The sync-folder example (issue 24): the corpus pushed into built-in storage, twice; then the retrieval check
# ---------------------------------------------------------------------------------------------

SYNC_DAG = "example_aisearch_sync_folder"
BUILTIN_INSTANCE = "kestrel-builtin"


def test_example_sync_folder_dag_uploads_the_corpus_once_then_finds_it_unchanged(
    airflow_db: None,
    make_emulator: Callable[..., AISearchEmulator],
    connect: Callable[..., None],
    capsys: pytest.CaptureFixture[str],
) -> None:
    emu = make_emulator(instances=[])
    emu.add_instance(BUILTIN_INSTANCE, type=None, items=0)  # built-in storage: no sync jobs, uploads only
    emu.set_upload_duration(0.5)  # uploads are queued, then running: the deferred wait has something to wait on
    connect(emu)
    documents = sorted(_corpus())
    dag = _dagbag().get_dag(SYNC_DAG)

    run = dag.test()
    assert str(run.state) in ("success", "DagRunState.SUCCESS")
    first = _xcom_value(SYNC_DAG, "sync_corpus", "return_value")
    assert (sorted(first["uploaded"]), first["unchanged"], first["deleted"]) == (documents, [], [])
    assert (first["failed"], first["skipped"]) == ([], [])
    assert (first["items"]["completed"], first["items"]["error"]) == (len(documents), 0)
    uploads = emu.requests_to("items", "POST")
    assert sorted(str(next(p.filename for p in r.form or [] if p.name == "file")) for r in uploads) == documents
    stored = {item["key"]: item for item in emu.items(BUILTIN_INSTANCE)}
    assert sorted(stored) == documents  # the golden set (data/golden.yaml) was never indexed
    assert stored["handbook/annual-leave.md"]["metadata"]["section"] == "handbook"
    assert all(len(item["metadata"]["airflow_sha256"]) == 64 for item in stored.values())
    assert emu.requests_to("jobs", "POST") == []  # built-in storage: no sync job was asked for
    last_upload = max(i for i, r in enumerate(emu.requests) if r.route == "items" and r.method == "POST")
    assert any(r.route == "items" and r.method == "GET" for r in emu.requests[last_upload:])  # the wait listed
    check = _xcom_value(SYNC_DAG, "retrieval_check", "return_value")
    assert (check["hit_rate"], check["recall"]) == (1.0, 1.0)  # the uploaded corpus answers the golden questions
    assert f"sync: {len(documents)} uploaded, 0 unchanged" in capsys.readouterr().out

    before = len(emu.requests)
    run = dag.test(run_conf={"expect_unchanged": True})  # the report task asserts it from the XCom too
    assert str(run.state) in ("success", "DagRunState.SUCCESS")
    second = _xcom_value(SYNC_DAG, "sync_corpus", "return_value")
    assert (second["uploaded"], sorted(second["unchanged"]), second["failed"]) == ([], documents, [])
    assert [r for r in emu.requests[before:] if r.route == "items" and r.method != "GET"] == []  # nothing sent
    out = capsys.readouterr().out
    assert f"nothing to upload: all {len(documents)} documents are unchanged since the last sync" in out


def test_example_sync_folder_report_fails_a_run_that_expected_nothing_to_upload(
    airflow_db: None, make_emulator: Callable[..., AISearchEmulator], connect: Callable[..., None]
) -> None:
    """The second run's assertion is real: on an empty instance, a run that expects everything unchanged fails."""
    emu = make_emulator(instances=[])
    emu.add_instance(BUILTIN_INSTANCE, type=None, items=0)
    emu.set_upload_duration(0)
    connect(emu)
    run = _dagbag().get_dag(SYNC_DAG).test(run_conf={"expect_unchanged": True})
    states = {ti.task_id: str(ti.state) for ti in run.get_task_instances()}
    assert str(run.state) in ("failed", "DagRunState.FAILED")
    assert states["sync_corpus"].endswith("success") and states["report"].endswith("failed")
    assert states["retrieval_check"].endswith("upstream_failed")


# ---------------------------------------------------------------------------------------------
# Runs with no logical date (Airflow 3: `airflow dags trigger`, REST API runs)
# ---------------------------------------------------------------------------------------------

needs_airflow3 = pytest.mark.skipif(
    __import__("airflow").__version__.startswith("2."),
    reason="Airflow 2.11 gives every run a logical date (ds and data_interval_* are always defined)",
)


@needs_airflow3
@pytest.mark.parametrize(
    "dag_id",
    [
        "example_aisearch_hook",
        "example_aisearch_sensor",
        "example_aisearch_operators",
        "example_aisearch_quality_gate",
        "example_aisearch_asset_producer",
        "example_aisearch_asset_consumer",
    ],
)
def test_example_dags_run_with_no_logical_date(
    airflow_db: None, make_emulator: Callable[..., AISearchEmulator], connect: Callable[..., None], dag_id: str
) -> None:
    """As `airflow dags trigger` runs them on Airflow 3: no logical date, so no ds or data interval."""
    emu = make_emulator(job_duration=0.5)
    emu.seed_jobs("docs", 6)
    emu.add_job("docs", duration=0)  # ended just now: inside every example's window
    connect(emu)
    run = _dagbag().get_dag(dag_id).test(logical_date=None)
    assert run.logical_date is None
    assert str(run.state) in ("success", "DagRunState.SUCCESS")
    listed = [r for r in emu.requests if r.route == "jobs" and len(r.segments) == 3 and r.method == "GET"]
    if dag_id in ("example_aisearch_operators", "example_aisearch_asset_producer"):
        assert listed  # the templated list tasks ran


@needs_airflow3
def test_example_retrieval_check_dag_finds_its_baseline_in_a_run_with_no_logical_date(
    airflow_db: None, make_emulator: Callable[..., AISearchEmulator], connect: Callable[..., None]
) -> None:
    """A scheduled run, then one triggered as the deploy check and the REST API do (no logical date): its baseline.

    (Two dag.test() runs without a logical date cannot show it: dag.test() deletes the DAG's run with the same
    logical date first, and `logical_date == None` matches every run that has none.)
    """
    emu = _corpus_emulator(make_emulator, job_duration=0.5)
    connect(emu)
    dag = _dagbag().get_dag(RETRIEVAL_DAG)
    runs, metrics = [], []
    for logical_date in ({}, {"logical_date": None}):
        run = dag.test(**logical_date)
        assert str(run.state) in ("success", "DagRunState.SUCCESS")
        runs.append(run)
        metrics.append(_xcom_value(RETRIEVAL_DAG, "retrieval_check", "return_value"))
    assert runs[1].logical_date is None
    assert metrics[1]["baseline"]["run_id"] == runs[0].run_id
    assert metrics[1]["baseline"]["hit_rate"] == metrics[0]["hit_rate"] == 1.0


def _readme_templates() -> list[str]:
    import re

    pages = [EXAMPLE_DAGS.parent / "README.md", *sorted((EXAMPLE_DAGS.parent / "docs").glob("*.md"))]
    blocks = [b for page in pages for b in re.findall(r"```python\n(.*?)```", page.read_text(), re.S)]
    return [t for block in blocks for t in re.findall(r"\"(\{\{.*?\}\})\"", block)]


@pytest.mark.parametrize("logical_date", [True, False], ids=["with_logical_date", "no_logical_date"])
def test_readme_templates_render_with_and_without_a_logical_date(logical_date: bool) -> None:
    """Every template in the examples of the README and docs/ renders (strictly) in both kinds of run."""
    from datetime import datetime, timedelta, timezone
    from types import SimpleNamespace

    import jinja2

    from airflow_provider_aisearch.operators import parse_bound

    now = datetime(2026, 11, 29, 12, 0, tzinfo=timezone.utc)
    context: dict[str, Any] = {
        "macros": SimpleNamespace(timedelta=timedelta),
        "ti": SimpleNamespace(xcom_pull=lambda **kwargs: "job-1"),
    }
    if logical_date:  # Airflow 2.11, or a scheduled/dags-test run: dag_run.run_after may not exist (2.11)
        context.update(
            dag_run=SimpleNamespace(),
            ds=f"{now - timedelta(days=1):%Y-%m-%d}",
            logical_date=now - timedelta(days=1),
            data_interval_start=now - timedelta(days=1),
            data_interval_end=now,
        )
    else:  # Airflow 3, `airflow dags trigger` / REST API: none of ds, logical_date, data_interval_*
        context.update(dag_run=SimpleNamespace(run_after=now))
    env = jinja2.Environment(undefined=jinja2.StrictUndefined)
    templates = _readme_templates()
    assert any("data_interval" in t for t in templates)
    for template in templates:
        rendered = env.from_string(template).render(context)
        if "xcom_pull" not in template:
            bound = parse_bound("bound", rendered)
            assert bound is not None and now - timedelta(days=1) <= bound <= now


# ---------------------------------------------------------------------------------------------
# The event-driven example (issue 14)
# ---------------------------------------------------------------------------------------------


def test_event_driven_example_is_skipped_on_airflow_2_and_watches_the_instance_asset_on_3() -> None:
    bag = _dagbag()
    assert bag.import_errors == {}
    if AIRFLOW_2:  # no AssetWatcher: the file defines no DAG
        assert "example_aisearch_event_driven" not in bag.dag_ids
        return
    from airflow_provider_aisearch.triggers import AISearchJobEventTrigger

    assert "example_aisearch_event_driven" in bag.dag_ids
    import importlib.util

    spec = importlib.util.spec_from_file_location("event_example", EXAMPLE_DAGS / "example_aisearch_event_driven.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.JOBS_ENDED.uri == "cloudflare-aisearch://0123456789abcdef0123456789abcdef/default/handbook"
    (watcher,) = module.JOBS_ENDED.watchers
    assert isinstance(watcher.trigger, AISearchJobEventTrigger)
    assert watcher.trigger.instance_id == "handbook"


@pytest.mark.skipif(AIRFLOW_2, reason="event-driven scheduling needs Airflow 3.0+")
def test_event_driven_example_logs_each_job_and_branches_on_its_status(
    airflow_db: None, make_emulator: Callable[..., AISearchEmulator], connect: Callable[..., None]
) -> None:
    """Its tasks, with the payloads the trigger yields for a succeeded and a failed job (as `make demo` runs them)."""
    import asyncio

    from airflow_provider_aisearch.events import event_trigger
    from airflow_provider_aisearch.triggers import AISearchJobEventTrigger

    emu = make_emulator(instances=["handbook"])
    connect(emu)
    ok, bad = emu.add_job("handbook", duration=3600), emu.add_job("handbook", duration=3600, source="user")
    event_trigger._MEMORY.clear()

    async def two_events() -> list[dict[str, Any]]:
        run = cast(
            "AsyncGenerator[Any, None]", AISearchJobEventTrigger(instance_id="handbook", poll_interval=0.05).run()
        )
        first = asyncio.ensure_future(run.__anext__())
        while not emu.requests:
            await asyncio.sleep(0.01)
        emu.finish_job("handbook", ok.id, "completed")
        emu.finish_job("handbook", bad.id, "error_source_unreachable")
        events = [(await first).payload, (await run.__anext__()).payload]
        await run.aclose()
        return events

    events = asyncio.run(asyncio.wait_for(two_events(), 30))
    event_trigger._MEMORY.clear()
    dag = _dagbag().get_dag("example_aisearch_event_driven")
    states = {}
    for job in events:
        run = dag.test(run_conf={"jobs": [job]})
        assert str(run.state) in ("success", "DagRunState.SUCCESS")
        states[job["status"]] = {ti.task_id: str(ti.state) for ti in run.get_task_instances()}
    assert states["succeeded"]["refresh_downstream"].endswith("success")
    assert states["succeeded"]["alert"].endswith("skipped")
    assert states["failed"]["alert"].endswith("success")
    assert states["failed"]["refresh_downstream"].endswith("skipped")
    assert _xcom_value("example_aisearch_event_driven", "ended_jobs", "return_value") == [events[-1]]
