"""AISearchRetrievalCheckOperator in Airflow itself: the baseline across real dag.test() runs, and its lineage.

Each run's baseline is pulled from Airflow's XCom table (``include_prior_dates=True``): run 1 passes and
has none; run 2, after the index lost a document, falls by more than ``max_drop`` and fails; run 3's
baseline is run 1 (the last run that passed), not run 2. On Airflow 3, run 3 has no logical date.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_aisearch.emulator import AISearchEmulator
from airflow_provider_aisearch.models.retrieval import Assertion
from airflow_provider_aisearch.tasks.retrieval_check import BASELINE_XCOM_KEY
from tests.test_retrieval_check import CORPUS, GOLDEN, HIT_RATE, MRR, RECALL, TI, check, run

AIRFLOW_2 = __import__("airflow").__version__.startswith("2.")

DAG_FILE = """
import datetime as dt
from airflow.providers.common.compat.sdk import DAG
from airflow_provider_aisearch.operators import AISearchRetrievalCheckOperator

with DAG("aisearch_retrieval", schedule=None, start_date=dt.datetime(2026, 1, 1), catchup=False):
    AISearchRetrievalCheckOperator(
        task_id="check", instance_id="kb", golden="golden.json", k=2, max_drop={max_drop},
        hook_params={{"retry_backoff": 0.001}},
    )
"""


def _xcom(dag_id: str, run_id: str, key: str) -> Any:
    """A task's XCom value, read from Airflow's metadata database."""
    if AIRFLOW_2:
        from airflow.models.xcom import XCom

        return XCom.get_one(run_id=run_id, key=key, task_id="check", dag_id=dag_id)
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session

    with create_session() as session:
        row = session.scalars(XComModel.get_many(run_id=run_id, key=key, task_ids="check", dag_ids=dag_id)).first()
        return None if row is None else XComModel.deserialize_value(row)


def _dag(folder: Path, max_drop: float) -> Any:
    try:
        from airflow.dag_processing.dagbag import DagBag  # Airflow 3.1+
    except ImportError:
        from airflow.models.dagbag import DagBag  # type: ignore[no-redef]
    (folder / "retrieval_dag.py").write_text(DAG_FILE.format(max_drop=max_drop))
    bag = DagBag(dag_folder=str(folder))
    assert bag.import_errors == {}
    return bag.get_dag("aisearch_retrieval")


@pytest.mark.timeout(600)
def test_max_drop_against_the_last_passed_run_over_real_dag_runs(
    make_emulator: Callable[..., AISearchEmulator],
    connect: Callable[..., None],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import airflow.settings
    from airflow.utils import db

    monkeypatch.setattr(airflow.settings, "DAGS_FOLDER", str(tmp_path))  # dag.test() syncs this folder on 3.x
    db.resetdb()
    emu = make_emulator()
    connect(emu)
    emu.add_instance("kb", documents=CORPUS)
    (tmp_path / "golden.json").write_text(json.dumps(GOLDEN))  # relative to the DAG file's folder

    first = _dag(tmp_path, 0.1).test()
    assert str(first.state) in ("success", "DagRunState.SUCCESS")
    value = _xcom("aisearch_retrieval", first.run_id, "return_value")
    assert (value["hit_rate"], value["recall"], value["mrr"]) == pytest.approx((HIT_RATE, RECALL, MRR))
    assert value["baseline"] is None and value["queries"] == 3 and value["k"] == 2
    assert set(value) == {"k", "queries", "hit_rate", "recall", "mrr", "per_query", "baseline"}

    # The index loses c.md's "zebra": query 1 misses, hit_rate 2/3 -> 1/3, a drop of 1/3 > 0.1.
    emu.add_documents("kb", {"c.md": "okapi one two three four five six seven eight nine"})
    second = _dag(tmp_path, 0.1).test()
    assert str(second.state) in ("failed", "DagRunState.FAILED")
    assert _xcom("aisearch_retrieval", second.run_id, "return_value") is None
    assert _xcom("aisearch_retrieval", second.run_id, BASELINE_XCOM_KEY) is None

    # A looser max_drop passes; its baseline is run 1, the last run that passed (not the failed run 2).
    third_dag = _dag(tmp_path, 0.5)
    third = third_dag.test() if AIRFLOW_2 else third_dag.test(logical_date=None)
    assert str(third.state) in ("success", "DagRunState.SUCCESS")
    if not AIRFLOW_2:
        assert third.logical_date is None  # include_prior_dates orders such a run by its run_after
    value = _xcom("aisearch_retrieval", third.run_id, "return_value")
    assert value["baseline"] == {
        "hit_rate": pytest.approx(HIT_RATE),
        "recall": pytest.approx(RECALL),
        "mrr": pytest.approx(MRR),
        "run_id": first.run_id,
    }
    assert value["hit_rate"] == pytest.approx(1 / 3)
    assert len(emu.requests_to(route="search", method="POST")) == 9  # three queries, once each, per run


# -- lineage --------------------------------------------------------------------------------------


def _has_openlineage() -> bool:
    try:
        import airflow.providers.openlineage.extractors  # noqa: F401
    except ImportError:
        return False
    return True


@pytest.mark.skipif(not _has_openlineage(), reason="the OpenLineage provider is installed in the Airflow 3 venv only")
def test_lineage_carries_the_metrics_and_one_assertion_per_threshold_passed_or_not(
    emu: AISearchEmulator,
) -> None:
    from airflow.providers.openlineage.extractors import OperatorLineage
    from openlineage.client.serde import Serde

    from airflow_provider_aisearch.exceptions import AISearchRetrievalCheckError

    emu.add_instance("kb", documents=CORPUS)
    op = check(min_hit_rate=0.5, min_recall=0.9, max_drop=0.1)
    assert op.get_openlineage_facets_on_failure(None) == OperatorLineage()  # it never ran: empty
    store = {"run-1": {BASELINE_XCOM_KEY: {"hit_rate": 1.0, "recall": 0.5, "mrr": 0.3, "run_id": "run-1"}}}
    with pytest.raises(AISearchRetrievalCheckError):
        run(op, TI("run-2", store))
    lineage = op.get_openlineage_facets_on_failure(None)
    assert lineage.outputs == []
    (dataset,) = lineage.inputs
    assert (dataset.namespace, dataset.name) == (f"cloudflare-aisearch://{emu.account_id}", "default/kb")
    facet = json.loads(Serde.to_json(dataset.inputFacets["dataQualityAssertions"]))
    assert [(a["assertion"], a["success"]) for a in facet["assertions"]] == [
        ("min_hit_rate", True),
        ("min_recall", False),
        ("max_drop:hit_rate", False),  # 1.0 -> 2/3
        ("max_drop:recall", True),  # 0.5 -> 0.5
        ("max_drop:mrr", True),  # 0.3 -> 1/3: a rise
    ]
    assert facet["assertions"][1]["expected"] == "0.9" and facet["assertions"][1]["actual"] == "0.5"
    facets = json.loads(Serde.to_json(lineage.run_facets["aisearchRetrieval"]))
    assert (facets["hitRate"], facets["recall"], facets["mrr"]) == pytest.approx((HIT_RATE, RECALL, MRR))
    assert (facets["k"], facets["queries"], facets["baseline"]["run_id"]) == (2, 3, "run-1")
    assert op.get_openlineage_facets_on_complete(None) == lineage  # the same on either path

    passed = check(min_hit_rate=0.5)
    run(passed)
    (dataset,) = passed.get_openlineage_facets_on_complete(None).inputs
    assertions = dataset.inputFacets["dataQualityAssertions"].assertions
    assert [(a.assertion, a.success) for a in assertions] == [("min_hit_rate", True)]


def test_assertions_describe_themselves() -> None:
    assert Assertion("min_mrr", "mrr", 0.5, 0.25, False).describe() == "mrr=0.2500 (min_mrr=0.5)"
    assert Assertion("max_drop:mrr", "mrr", 0.1, 0.2, False).describe() == "mrr fell by 0.2000 (max_drop=0.1)"


CHECK_DAG = """
import datetime as dt
from airflow.providers.common.compat.sdk import DAG
from airflow_provider_aisearch.operators import AISearchRetrievalCheckOperator

GOLDEN = {golden!r}
with DAG("aisearch_lineage", schedule=None, start_date=dt.datetime(2026, 1, 1), catchup=False):
    AISearchRetrievalCheckOperator(
        task_id="check_ok", instance_id="kb", golden=GOLDEN, k=2, min_hit_rate=0.6,
        hook_params={{"retry_backoff": 0.001}},
    )
    AISearchRetrievalCheckOperator(
        task_id="check_bad", instance_id="kb", golden=GOLDEN, k=2, min_recall=0.9,
        hook_params={{"retry_backoff": 0.001}},
    )
"""


@pytest.mark.skipif(not _has_openlineage(), reason="the OpenLineage provider is installed in the Airflow 3 venv only")
@pytest.mark.timeout(600)
def test_dag_test_emits_the_assertions_on_complete_and_on_fail(
    make_emulator: Callable[..., AISearchEmulator], tmp_path: Path
) -> None:
    from tests.test_lineage import _complete_events, _run_dag

    emu = make_emulator()
    emu.add_instance("kb", documents=CORPUS)
    events_file = tmp_path / "openlineage.jsonl"
    result = _run_dag(
        emu,
        tmp_path,
        hide_openlineage=False,
        transport={"type": "file", "log_file_path": str(events_file), "append": True},
        dag_source=CHECK_DAG.format(golden=GOLDEN),
    )
    assert result["state"] in ("failed", "DagRunState.FAILED"), result["output"][-5000:]
    assert "AISearchRetrievalCheckError" in result["output"]
    ok = _complete_events(events_file, ["check_ok"])["check_ok"]
    bad = _complete_events(events_file, ["check_bad"], event_type="FAIL")["check_bad"]
    for event, assertion in ((ok, ("min_hit_rate", True)), (bad, ("min_recall", False))):
        (dataset,) = event["inputs"]
        assert (dataset["namespace"], dataset["name"]) == (f"cloudflare-aisearch://{emu.account_id}", "default/kb")
        checked = dataset["inputFacets"]["dataQualityAssertions"]["assertions"]
        assert [(a["assertion"], a["success"]) for a in checked] == [assertion]
        facet = event["run"]["facets"]["aisearchRetrieval"]
        assert (facet["hitRate"], facet["recall"], facet["mrr"]) == pytest.approx((HIT_RATE, RECALL, MRR))
        assert event["outputs"] == []
    assert len(emu.requests_to(route="search", method="POST")) == 6  # no request for the lineage
    assert emu.token not in events_file.read_text()
