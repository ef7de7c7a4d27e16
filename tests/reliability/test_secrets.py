"""Secret hygiene: run every example DAG with a recognisable API token, then with a recognisable Global
API Key, and search task logs, XCom, rendered template fields, the metadata DB, log files, exception
messages and the emulator's access log for them."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_aisearch.emulator import AISearchEmulator
from airflow_provider_aisearch.exceptions import AISearchAuthError
from airflow_provider_aisearch.hooks import AISearchHook
from tests.test_example_dags import BUILTIN_INSTANCE, CORPUS_INSTANCE, _corpus, _dagbag

SECRET_TOKEN = "tok-FINDME-7c1d9e3a55"
SECRET_KEY = "gkey-FINDME-0b8f2a6c44"
EMAIL = "ops@example.com"


@pytest.fixture(scope="module")
def airflow_db() -> None:
    from airflow.utils import db

    db.resetdb()


def _db_rows_text() -> str:
    """Every XCom value and rendered template field in the metadata DB, as text."""
    from airflow.utils.session import create_session

    try:
        from airflow.models.xcom import XComModel as XComRow  # type: ignore[attr-defined,unused-ignore]
    except ImportError:
        from airflow.models.xcom import XCom as XComRow  # type: ignore[attr-defined,no-redef,unused-ignore]
    from airflow.models.renderedtifields import RenderedTaskInstanceFields

    with create_session() as session:
        xcoms = [repr(row.value) for row in session.query(XComRow).all()]
        rendered = [
            json.dumps(row.rendered_fields, default=str) for row in session.query(RenderedTaskInstanceFields).all()
        ]
    assert xcoms
    assert rendered
    return "\n".join(xcoms + rendered)


def _files_text(root: Path) -> str:
    chunks = []
    for path in root.rglob("*"):
        if path.is_file():
            chunks.append(path.read_bytes().decode("utf-8", "replace"))
    return "\n".join(chunks)


@pytest.mark.timeout(600)
@pytest.mark.parametrize("scheme", ["token", "global_key"])
def test_example_dags_leak_no_secret(
    airflow_db: None,
    make_emulator: Callable[..., AISearchEmulator],
    connect: Callable[..., None],
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
    scheme: str,
    figures: dict[str, dict[str, Any]],
) -> None:
    emu = make_emulator(token=SECRET_TOKEN, email=EMAIL, global_key=SECRET_KEY, job_duration=0.3, cooldown=0)
    emu.seed_jobs("docs", 4)
    emu.add_instance(CORPUS_INSTANCE, documents=_corpus())  # the retrieval check example's
    emu.add_instance(BUILTIN_INSTANCE, type=None, items=0)  # the sync-folder example's (built-in storage)
    connect(emu, global_key=scheme == "global_key")
    secret = SECRET_KEY if scheme == "global_key" else SECRET_TOKEN
    bag = _dagbag()
    import airflow

    if airflow.__version__.startswith("2."):
        bag.sync_to_db()
    for dag_id in sorted(bag.dag_ids):
        run = bag.get_dag(dag_id).test()
        assert str(run.state) in ("success", "DagRunState.SUCCESS"), dag_id
    assert {r.auth for r in emu.requests} == {"global_key" if scheme == "global_key" else "bearer"}

    # A failing call, so that exception messages are searched too.
    connect(emu, global_key=scheme == "global_key", password=secret[::-1])
    with pytest.raises(AISearchAuthError) as info:
        AISearchHook().list_jobs("docs")

    captured = capsys.readouterr()
    places = {
        "task logs (stdout/stderr/logging)": captured.out + captured.err + caplog.text,
        "xcom and rendered fields": _db_rows_text(),
        "airflow home (db, log files)": _files_text(Path(os.environ["AIRFLOW_HOME"])),
        "exception message": str(info.value) + repr(info.value.args),
        "emulator access log": repr(emu.requests),
    }
    hits = {where: text.count(secret) + text.count(secret[::-1]) for where, text in places.items()}
    figures.setdefault("secrets", {})[f"{scheme}_hits"] = sum(hits.values())
    figures["secrets"][f"{scheme}_places_searched"] = len(places)
    assert hits == dict.fromkeys(places, 0)
    assert len(places["task logs (stdout/stderr/logging)"]) > 10_000  # the logs really were captured
