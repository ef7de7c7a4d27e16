"""The README's first DAG (create, wait, gate, check) runs as printed, end to end against the emulator."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_aisearch.emulator import AISearchEmulator

README = Path(__file__).resolve().parents[1] / "README.md"


def _first_dag() -> str:
    blocks = [b for b in re.findall(r"```python\n(.*?)```", README.read_text(), re.S) if "@dag" in b]
    assert len(blocks) == 1, "the README holds one complete DAG"
    return blocks[0]


@pytest.fixture(scope="module")
def airflow_db() -> None:
    from airflow.utils import db

    db.resetdb()


def test_the_readme_dag_creates_waits_gates_and_checks_retrieval(
    airflow_db: None,
    make_emulator: Callable[..., AISearchEmulator],
    connect: Callable[..., None],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    try:
        from airflow.dag_processing.dagbag import DagBag  # Airflow 3.1+
    except ImportError:
        from airflow.models.dagbag import DagBag  # type: ignore[no-redef]

    source = _first_dag()
    (tmp_path / "readme_dag.py").write_text(source)
    import airflow.settings

    # dag.test() (Airflow 3) serializes the DAG by parsing the dags folder
    monkeypatch.setenv("AIRFLOW__CORE__DAGS_FOLDER", str(tmp_path))
    monkeypatch.setattr(airflow.settings, "DAGS_FOLDER", str(tmp_path))
    from tests.test_example_dags import _corpus, _xcom_value

    emu = make_emulator(instances=[], job_duration=0.0)  # the job has ended by the time the sensor first looks
    emu.add_instance("docs", documents=_corpus())  # the demo corpus, which the README's golden questions ask about
    connect(emu)
    bag: Any = DagBag(dag_folder=str(tmp_path))
    assert bag.import_errors == {}
    (dag_id,) = bag.dag_ids
    run = bag.get_dag(dag_id).test()
    assert str(run.state) in ("success", "DagRunState.SUCCESS")
    assert len(emu.requests_to(route="jobs", method="POST")) == 1  # create: one job
    assert [r.route for r in emu.requests if r.route in ("instance_stats", "legacy_instance_stats")] == [
        "instance_stats"
    ]  # gate: the item counts read once, after the job ended
    # check: each golden question asked once, after the gate, and both found in the top 5 (at rank 1)
    searches = [i for i, r in enumerate(emu.requests) if r.route == "search"]
    assert len(searches) == 2
    assert searches[0] > next(i for i, r in enumerate(emu.requests) if r.route == "instance_stats")
    metrics = _xcom_value(dag_id, "can_it_answer", "return_value")
    assert (metrics["queries"], metrics["hit_rate"], metrics["mrr"]) == (2, 1.0, 1.0)
