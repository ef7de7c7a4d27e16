"""Lineage: dataset names, the operators' OpenLineage facets, hook lineage, and real events from dag.test().

The OpenLineage provider is installed in the Airflow 3 test venv only (the ``lineage`` extra); the
Airflow 2.11 suite runs without it, and a subprocess with the packages hidden shows the same there.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_aisearch.emulator import AISearchEmulator, Fault
from airflow_provider_aisearch.hooks import AISearchHook
from airflow_provider_aisearch.lineage import job_lineage as lineage
from airflow_provider_aisearch.lineage.job_lineage import (
    DatasetName,
    instance_dataset,
    source_dataset,
    validate_r2_namespace,
)
from airflow_provider_aisearch.models.instances import Instance
from tests.conftest import TOKEN, Connect
from tests.operator_helpers import FakeTI, create_op, ctx, list_op

ACCOUNT = "0123456789abcdef0123456789abcdef"
REPO = Path(__file__).resolve().parents[1]


def _has_openlineage() -> bool:
    try:
        import airflow.providers.openlineage.extractors  # noqa: F401
    except ImportError:
        return False
    return True


needs_openlineage = pytest.mark.skipif(
    not _has_openlineage(), reason="the OpenLineage provider is installed in the Airflow 3 test venv only"
)


def instance(type_: str | None, source: str | None, instance_id: str = "docs") -> Instance:
    return Instance(
        id=instance_id, type=type_, source=source, namespace="default", paused=False, status=None, sync_interval=None
    )


# ---------------------------------------------------------------------------------------------
# Naming
# ---------------------------------------------------------------------------------------------


def test_the_instance_is_the_asset_uri_split_after_the_authority() -> None:
    from airflow_provider_aisearch.assets import instance_uri

    ds = instance_dataset(ACCOUNT.upper(), "team-a", "docs")
    assert ds == DatasetName(f"cloudflare-aisearch://{ACCOUNT}", "team-a/docs", instance_uri(ACCOUNT, "team-a", "docs"))
    assert ds.namespace + "/" + ds.name == ds.uri
    # The legacy un-namespaced paths address the default namespace.
    assert instance_dataset(ACCOUNT, None, "docs").name == "default/docs"
    with pytest.raises(ValueError, match="instance"):
        instance_dataset(ACCOUNT, "default", "Not An Id")


def test_an_r2_bucket_is_named_by_account_by_default_or_as_s3_on_request() -> None:
    r2 = instance("r2", "docs-bucket")
    assert source_dataset(r2, ACCOUNT) == DatasetName(f"r2://{ACCOUNT}", "docs-bucket", f"r2://{ACCOUNT}/docs-bucket")
    assert source_dataset(r2, ACCOUNT, "r2") == source_dataset(r2, ACCOUNT)
    assert source_dataset(r2, ACCOUNT.upper(), "s3") == DatasetName("s3://docs-bucket", "/", "s3://docs-bucket")
    with pytest.raises(ValueError, match="lineage_r2_namespace"):
        source_dataset(r2, ACCOUNT, "gcs")
    with pytest.raises(ValueError, match="bucket"):
        source_dataset(instance("r2", "bucket/with/path"), ACCOUNT)
    assert validate_r2_namespace(None) == validate_r2_namespace("") == "r2"


def test_a_web_crawler_is_its_site_without_credentials_query_or_fragment() -> None:
    site = instance("web-crawler", "https://user:s3cret@Docs.Example.com:8443/guide/?token=abc#top")
    assert source_dataset(site, ACCOUNT) == DatasetName(
        "https://docs.example.com:8443", "/guide/", "https://docs.example.com:8443/guide/"
    )
    assert source_dataset(instance("web-crawler", "https://example.com"), ACCOUNT) == DatasetName(
        "https://example.com", "/", "https://example.com/"
    )
    with pytest.raises(ValueError, match="http"):
        source_dataset(instance("web-crawler", "ftp://example.com/x"), ACCOUNT)


@pytest.mark.parametrize(
    ("url", "namespace"),
    [
        ("https://Docs.Example.com:443/guide/", "https://docs.example.com"),
        ("https://docs.example.com/guide/", "https://docs.example.com"),
        ("http://docs.example.com:80/guide/", "http://docs.example.com"),
        ("http://docs.example.com:443/guide/", "http://docs.example.com:443"),  # not http's default
        ("https://docs.example.com:80/guide/", "https://docs.example.com:80"),
    ],
)
def test_a_sites_default_port_is_left_out(url: str, namespace: str) -> None:
    assert source_dataset(instance("web-crawler", url), ACCOUNT) == DatasetName(
        namespace, "/guide/", namespace + "/guide/"
    )


def test_managed_storage_has_no_input() -> None:
    assert source_dataset(instance(None, None), ACCOUNT) is None
    assert source_dataset(instance("r2", None), ACCOUNT) is None  # no source known: nothing to name


@needs_openlineage
def test_the_asset_converters_give_the_same_names() -> None:
    from airflow.providers.common.compat.sdk import Asset

    out = lineage.asset_to_openlineage(Asset(f"cloudflare-aisearch://{ACCOUNT}/default/docs"))
    assert (out.namespace, out.name) == (f"cloudflare-aisearch://{ACCOUNT}", "default/docs")
    src = lineage.r2_asset_to_openlineage(Asset(f"r2://{ACCOUNT}/docs-bucket"))
    assert (src.namespace, src.name) == (f"r2://{ACCOUNT}", "docs-bucket")
    with pytest.raises(ValueError, match="r2://"):
        lineage.r2_asset_to_openlineage(Asset(f"r2://{ACCOUNT}"))


def test_the_converters_are_registered_for_their_schemes() -> None:
    from airflow_provider_aisearch import get_provider_info

    info = get_provider_info()
    for key in ("asset-uris", "dataset-uris"):
        converters = {s: e.get("to_openlineage_converter") for e in info[key] for s in e["schemes"]}
        assert converters == {
            "cloudflare-aisearch": "airflow_provider_aisearch.lineage.asset_to_openlineage",
            "r2": "airflow_provider_aisearch.lineage.r2_asset_to_openlineage",
        }


# ---------------------------------------------------------------------------------------------
# The operators' get_openlineage_facets_on_complete, called directly
# ---------------------------------------------------------------------------------------------


def _names(datasets: list[Any]) -> list[tuple[str, str]]:
    return [(d.namespace, d.name) for d in datasets]


def _empty(got: Any) -> bool:
    return (got.inputs, got.outputs, got.run_facets) == ([], [], {})


@needs_openlineage
@pytest.mark.parametrize("enabled", [True, False], ids=["openlineage enabled", "openlineage disabled"])
def test_create_operator_facets_from_its_result_and_one_instance_read(
    emu: AISearchEmulator, monkeypatch: pytest.MonkeyPatch, enabled: bool
) -> None:
    monkeypatch.setattr(lineage, "openlineage_enabled", lambda: enabled)
    emu.add_instance("docs", type="r2", source="docs-bucket")
    op = create_op()
    value = op.execute(ctx(ti=FakeTI()))
    # Enabled: the instance is read in the task process (the listener's forked process must not make calls
    # through Airflow's supervisor). Disabled: no request at all for lineage.
    assert len(emu.requests_to(route="instance")) == (1 if enabled else 0)
    if enabled:  # what the listener calls reads only what the task kept: no request, no connection lookup

        def no_lookup(*args: Any, **kwargs: Any) -> Any:
            raise AssertionError("a connection lookup from the OpenLineage listener")

        monkeypatch.setattr(AISearchHook, "get_connection", no_lookup)
    got = op.get_openlineage_facets_on_complete(None)
    assert _names(got.inputs) == [(f"r2://{emu.account_id}", "docs-bucket")]
    assert _names(got.outputs) == [(f"cloudflare-aisearch://{emu.account_id}", "default/docs")]
    assert got.run_facets["externalQuery"].externalQueryId == value["id"]
    assert got.run_facets["externalQuery"].source == f"cloudflare-aisearch://{emu.account_id}"
    facet = got.run_facets["aisearchJob"]
    assert (facet.jobId, facet.status, facet.endReason, facet.items) == (value["id"], "running", None, None)
    assert facet.instance == f"cloudflare-aisearch://{emu.account_id}/default/docs"
    op.get_openlineage_facets_on_complete(None)  # again: the instance is cached on the operator
    assert len(emu.requests_to(route="instance")) == 1


@needs_openlineage
def test_the_item_counts_of_the_result_are_a_run_facet() -> None:
    items = {"completed": 18, "queued": 0, "running": 0, "error": 2, "skipped": 0, "outdated": 0}
    job = {"id": "j1", "status": "succeeded", "end_reason": "completed", "items": items}
    facets = lineage.job_run_facets(job, instance_dataset(ACCOUNT, "default", "docs"))
    assert facets["aisearchJob"].items == items
    assert (
        lineage.job_run_facets({"id": "j1"}, instance_dataset(ACCOUNT, "default", "docs"))["aisearchJob"].items is None
    )


@needs_openlineage
def test_a_task_that_did_not_succeed_gets_empty_lineage_without_a_request(emu: AISearchEmulator) -> None:
    assert _empty(create_op().get_openlineage_facets_on_complete(None))
    assert emu.requests == []


@needs_openlineage
def test_list_operator_facets_name_every_returned_job_and_follow_the_connection_setting(
    emulator: AISearchEmulator, connect: Connect, monkeypatch: pytest.MonkeyPatch
) -> None:
    connect(emulator)
    conn = json.loads(os.environ["AIRFLOW_CONN_AISEARCH_DEFAULT"])
    conn["extra"]["lineage_r2_namespace"] = "s3"
    monkeypatch.setenv("AIRFLOW_CONN_AISEARCH_DEFAULT", json.dumps(conn))
    emulator.add_instance("docs", type="r2", source="docs-bucket")
    jobs = [emulator.add_job("docs", duration=0).id for _ in range(2)]
    op = list_op()
    op.execute(ctx(ti=FakeTI()))
    got = op.get_openlineage_facets_on_complete(None)
    assert _names(got.inputs) == [("s3://docs-bucket", "/")]
    assert _names(got.outputs) == [(f"cloudflare-aisearch://{emulator.account_id}", "default/docs")]
    listed = got.run_facets["aisearchJobs"].jobs
    assert sorted(j["jobId"] for j in listed) == sorted(jobs)
    assert {(j["status"], j["endReason"]) for j in listed} == {("succeeded", "completed")}
    ids_only = list_op(ids_only=True)
    ids_only.execute(ctx(ti=FakeTI()))
    assert sorted(ids_only.get_openlineage_facets_on_complete(None).run_facets["aisearchJobs"].jobs, key=str) == sorted(
        ({"jobId": j} for j in jobs), key=str
    )
    nothing = list_op(statuses=["failed"])
    assert nothing.execute(ctx(ti=FakeTI())) == []
    before = len(emulator.requests_to(route="instance"))
    assert _empty(nothing.get_openlineage_facets_on_complete(None))  # no job: nothing flowed
    assert len(emulator.requests_to(route="instance")) == before


@needs_openlineage
@pytest.mark.parametrize("break_it", ["instance answers 500", "bad connection setting"])
def test_a_lineage_failure_never_fails_the_task_it_gives_empty_lineage(
    emulator: AISearchEmulator,
    connect: Connect,
    monkeypatch: pytest.MonkeyPatch,
    break_it: str,
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setattr(lineage, "openlineage_enabled", lambda: True)
    connect(emulator)
    if break_it == "instance answers 500":
        emulator.inject(Fault.http(500), method="GET", path="/instances/docs$", times=10)
    else:
        conn = json.loads(os.environ["AIRFLOW_CONN_AISEARCH_DEFAULT"])
        conn["extra"]["lineage_r2_namespace"] = "gcs"
        monkeypatch.setenv("AIRFLOW_CONN_AISEARCH_DEFAULT", json.dumps(conn))
    op = create_op(hook_params={"retry_backoff": 0.001, "max_retries": 0})
    assert op.execute(ctx(ti=FakeTI()))["id"]  # the task itself succeeds
    assert _empty(op.get_openlineage_facets_on_complete(None))
    out = caplog.text + capsys.readouterr().out
    assert "No OpenLineage lineage for instance docs" in out
    assert ("HTTP 500" if break_it == "instance answers 500" else "lineage_r2_namespace") in out
    assert TOKEN not in out


# ---------------------------------------------------------------------------------------------
# Hook lineage: a @task that calls the hook
# ---------------------------------------------------------------------------------------------

HOOK_DAG = """
import datetime as dt
from airflow.providers.common.compat.sdk import DAG, task
from airflow_provider_aisearch.hooks import AISearchHook

with DAG("aisearch_hook_lineage", schedule=None, start_date=dt.datetime(2026, 1, 1), catchup=False):

    @task
    def reindex() -> str:
        hook = AISearchHook(retry_backoff=0.001)
        hook.get_instance("docs")
        return hook.create_job("docs").id

    reindex()
"""


def _dagbag(folder: Path) -> Any:
    try:
        from airflow.dag_processing.dagbag import DagBag  # Airflow 3.1+
    except ImportError:
        from airflow.models.dagbag import DagBag  # type: ignore[no-redef]
    return DagBag(dag_folder=str(folder))


def test_a_task_calling_the_hook_reports_source_and_instance_to_the_collector(
    emulator: AISearchEmulator, connect: Connect, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import airflow.providers.common.compat.sdk as compat_sdk
    import airflow.settings
    from airflow.providers.common.compat.sdk import HookLineageCollector
    from airflow.utils import db

    collector = HookLineageCollector()  # a real one: without a reader Airflow hands out a no-op collector
    monkeypatch.setattr(compat_sdk, "get_hook_lineage_collector", lambda: collector, raising=False)
    connect(emulator)
    emulator.add_instance("docs", type="r2", source="docs-bucket")
    (tmp_path / "hook_lineage.py").write_text(HOOK_DAG)
    monkeypatch.setattr(airflow.settings, "DAGS_FOLDER", str(tmp_path))
    db.resetdb()
    run = _dagbag(tmp_path).get_dag("aisearch_hook_lineage").test()
    assert str(run.state) in ("success", "DagRunState.SUCCESS")
    from airflow.providers.common.compat.lineage.hook import get_hook_lineage_collector

    collected = get_hook_lineage_collector().collected_assets
    assert [i.asset.uri for i in collected.inputs] == [f"r2://{emulator.account_id}/docs-bucket"]
    assert [o.asset.uri for o in collected.outputs] == [f"cloudflare-aisearch://{emulator.account_id}/default/docs"]
    assert all(isinstance(i.context, AISearchHook) for i in [*collected.inputs, *collected.outputs])
    # No request for lineage: one instance GET (the task's own), one POST.
    assert len(emulator.requests_to(route="instance")) == 1
    assert len(emulator.requests_to(method="POST")) == 1


def test_hook_lineage_never_fails_the_hook_call(
    hook: AISearchHook,
    emulator: AISearchEmulator,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
) -> None:
    def broken() -> Any:
        raise RuntimeError("collector exploded")

    monkeypatch.setattr(lineage, "_collector", broken)
    emulator.add_instance("docs", type="r2", source="docs-bucket")
    assert hook.get_instance("docs").source == "docs-bucket"
    assert hook.create_job("docs").id
    assert "collector exploded" in caplog.text + capsys.readouterr().out


# ---------------------------------------------------------------------------------------------
# Real OpenLineage events from dag.test() (a subprocess: the provider reads its config once per process)
# ---------------------------------------------------------------------------------------------

LINEAGE_DAG = """
import datetime as dt
import inspect
from airflow.providers.common.compat.sdk import DAG, task
from airflow_provider_aisearch.hooks import AISearchHook
from airflow_provider_aisearch.operators import AISearchCreateJobOperator, AISearchListJobsOperator
from airflow_provider_aisearch.sensors import AISearchJobSensor

FAST = {{"retry_backoff": 0.001}}
# The item counts in the result (the quality gate's "items"), where the operators can read them.
STATS = (
    {{"read_item_stats": True}}
    if "read_item_stats" in inspect.signature(AISearchCreateJobOperator.__init__).parameters
    else {{}}
)

with DAG("aisearch_lineage", schedule=None, start_date=dt.datetime(2026, 1, 1), catchup=False):
    create = AISearchCreateJobOperator(
        task_id="create", instance_id="docs", wait_for_completion=True, deferrable=True, poll_interval=0.2,
        hook_params=FAST, **STATS,
    )
    sensor = AISearchJobSensor(
        task_id="sensor", instance_id="site", job_id={site_job!r}, poke_interval=0.2, hook_params=FAST, **STATS
    )
    listed = AISearchListJobsOperator(
        task_id="list", instance_id="docs", aisearch_conn_id="aisearch_s3", hook_params=FAST
    )

    @task
    def hook_task() -> str:
        hook = AISearchHook(retry_backoff=0.001)
        hook.get_instance("docs2")
        return hook.create_job("docs2").id

    create >> sensor >> listed >> hook_task()
"""

RUNNER = """
import json, os, sys

if os.environ.get("HIDE_OPENLINEAGE") == "1":
    # As if uninstalled: its modules cannot be imported, its distributions (entry points) are not found.
    import importlib.abc
    import importlib.metadata

    def hidden(name):
        name = (name or "").lower().replace("_", "-").replace(".", "-")
        return name.startswith(("openlineage", "airflow-providers-openlineage", "apache-airflow-providers-openlineage"))

    class HideOpenLineage(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if hidden(name.split(".")[0]) or hidden(name.replace("airflow.providers.", "airflow-providers-")):
                raise ModuleNotFoundError(f"No module named {name!r} (hidden by the test)", name=name)
            return None

    sys.meta_path.insert(0, HideOpenLineage())
    modules = [importlib.metadata]
    try:
        import importlib_metadata

        modules.append(importlib_metadata)
    except ImportError:
        pass
    for md in modules:
        def distributions(_original=md.distributions, **kwargs):
            return (d for d in _original(**kwargs) if not hidden(d.metadata["Name"]))

        def distribution(name, _original=md.distribution, _md=md):
            if hidden(name):
                raise _md.PackageNotFoundError(name)
            return _original(name)

        md.distributions, md.distribution = distributions, distribution

from airflow.utils import db

db.resetdb()
try:
    from airflow.dag_processing.dagbag import DagBag
except ImportError:
    from airflow.models.dagbag import DagBag

dag = DagBag(dag_folder=os.environ["AIRFLOW__CORE__DAGS_FOLDER"]).get_dag("aisearch_lineage")
run = dag.test()


class TI:
    task_id = "t"
    map_index = -1

    def xcom_pull(self, **kwargs):
        return {"id": "j1", "status": "succeeded"}


facets = {t.task_id: repr(t.get_openlineage_facets_on_complete(TI())) for t in dag.tasks if t.task_id != "hook_task"}
hidden = "openlineage" not in sys.modules and "airflow.providers.openlineage" not in sys.modules
print("RESULT " + json.dumps({"state": str(run.state), "facets": facets, "hidden": hidden}))
"""


def _run_dag(
    emu: AISearchEmulator,
    tmp_path: Path,
    *,
    hide_openlineage: bool,
    transport: dict[str, Any] | None,
    dag_source: str | None = None,
) -> dict[str, Any]:
    dags = tmp_path / "dags"
    dags.mkdir()
    if dag_source is None:
        dag_source = LINEAGE_DAG.format(site_job=emu.add_job("site", duration=0).id)
    (dags / "lineage_dag.py").write_text(dag_source)
    s3_conn = json.loads(emu.connection_json())
    s3_conn["extra"]["lineage_r2_namespace"] = "s3"
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("AIRFLOW", "OPENLINEAGE")) and k not in ("PYTHONPATH", "HIDE_OPENLINEAGE")
    }
    env.update(
        AIRFLOW_HOME=str(tmp_path / "home"),
        AIRFLOW__CORE__DAGS_FOLDER=str(dags),
        AIRFLOW__CORE__LOAD_EXAMPLES="False",
        AIRFLOW__CORE__UNIT_TEST_MODE="False",
        AIRFLOW_CONN_AISEARCH_DEFAULT=emu.connection_json(),
        AIRFLOW_CONN_AISEARCH_S3=json.dumps(s3_conn),
        PYTHONPATH=str(REPO),
        HIDE_OPENLINEAGE="1" if hide_openlineage else "0",
    )
    if transport is not None:
        env["AIRFLOW__OPENLINEAGE__TRANSPORT"] = json.dumps(transport)
        env["AIRFLOW__OPENLINEAGE__NAMESPACE"] = "lineage-test"
    proc = subprocess.run(
        [sys.executable, "-c", RUNNER], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=400
    )
    (tmp_path / "run.log").write_text(proc.stdout + proc.stderr)  # for a failing test's reader
    lines = [line for line in proc.stdout.splitlines() if line.startswith("RESULT ")]
    assert proc.returncode == 0 and lines, proc.stdout[-3000:] + proc.stderr[-5000:]
    result: dict[str, Any] = json.loads(lines[-1][len("RESULT ") :])
    result["output"] = proc.stdout + proc.stderr
    return result


def _reads_item_stats() -> bool:
    import inspect

    from airflow_provider_aisearch.operators import AISearchCreateJobOperator

    return "read_item_stats" in inspect.signature(AISearchCreateJobOperator.__init__).parameters


def _setup_instances(emu: AISearchEmulator) -> None:
    emu.add_instance("docs", type="r2", source="docs-bucket")
    emu.add_instance("docs2", type="r2", source="other-bucket")
    # Credentials in a crawled URL (user info, query) must never reach an event.
    emu.add_instance("site", type="web-crawler", source=f"https://crawler:{TOKEN}@Docs.Example.com/guide/?key={TOKEN}")


def _complete_events(
    path: Path, tasks: list[str], timeout: float = 120.0, event_type: str = "COMPLETE"
) -> dict[str, dict[str, Any]]:
    """The COMPLETE (or ``event_type``) event of each task (the listener may emit after the run returns)."""
    deadline = time.monotonic() + timeout
    while True:
        events: dict[str, dict[str, Any]] = {}
        if path.exists():
            for line in path.read_text().splitlines():
                event = json.loads(line)
                if event.get("eventType") == event_type:
                    events[event["job"]["name"]] = event
        wanted = {t: events.get(f"aisearch_lineage.{t}") for t in tasks}
        if all(wanted.values()) or time.monotonic() > deadline:
            assert all(wanted.values()), f"missing {event_type} events: {sorted(events)}"
            return {t: e for t, e in wanted.items() if e is not None}
        time.sleep(0.5)


@needs_openlineage
@pytest.mark.timeout(600)
def test_dag_test_emits_openlineage_events_with_source_and_instance(
    make_emulator: Callable[..., AISearchEmulator], tmp_path: Path
) -> None:
    emu = make_emulator(job_duration=1.0)
    _setup_instances(emu)
    events_file = tmp_path / "openlineage.jsonl"
    result = _run_dag(
        emu,
        tmp_path,
        hide_openlineage=False,
        transport={"type": "file", "log_file_path": str(events_file), "append": True},
    )
    assert result["state"] in ("success", "DagRunState.SUCCESS"), result["output"][-5000:]
    events = _complete_events(events_file, ["create", "sensor", "list", "hook_task"])
    account = emu.account_id
    instance = (f"cloudflare-aisearch://{account}", "default/docs")

    def names(event: dict[str, Any], key: str) -> list[tuple[str, str]]:
        return [(d["namespace"], d["name"]) for d in event[key]]

    create = events["create"]
    assert names(create, "inputs") == [(f"r2://{account}", "docs-bucket")]
    assert names(create, "outputs") == [instance]
    created = emu.jobs("docs")[0]
    facets = create["run"]["facets"]
    assert facets["externalQuery"]["externalQueryId"] == created["id"]
    assert facets["aisearchJob"]["jobId"] == created["id"]
    assert (facets["aisearchJob"]["status"], facets["aisearchJob"]["endReason"]) == ("succeeded", "completed")
    if _reads_item_stats():  # the deferred path's result carries the counts the triggerer read
        items = facets["aisearchJob"]["items"]
        assert items["completed"] + items["error"] + items["skipped"] == 20 and items["degraded"] is False

    sensor = events["sensor"]
    assert names(sensor, "inputs") == [("https://docs.example.com", "/guide/")]
    assert names(sensor, "outputs") == [(f"cloudflare-aisearch://{account}", "default/site")]
    assert sensor["run"]["facets"]["aisearchJob"]["jobId"] == emu.jobs("site")[0]["id"]
    if _reads_item_stats():  # the poke path's too
        assert sensor["run"]["facets"]["aisearchJob"]["items"]["queued"] == 0

    listed = events["list"]
    assert names(listed, "inputs") == [("s3://docs-bucket", "/")]  # aisearch_s3: lineage_r2_namespace="s3"
    assert names(listed, "outputs") == [instance]
    assert [j["jobId"] for j in listed["run"]["facets"]["aisearchJobs"]["jobs"]] == [created["id"]]

    # Hook lineage of a @task, through the provider's asset converters.
    # (dag.test() runs every task in one process, whose collector also holds the create operator's create_job:
    # a worker runs each task in a process of its own.)
    hook_task = events["hook_task"]
    assert names(hook_task, "inputs") == [(f"r2://{account}", "other-bucket")]
    assert (f"cloudflare-aisearch://{account}", "default/docs2") in names(hook_task, "outputs")

    # One instance GET per operator for its source (the @task made its own), none from the hook lineage.
    assert len(emu.requests_to(route="instance")) == 4
    text = events_file.read_text()
    assert TOKEN not in text and emu.token not in text


@pytest.mark.timeout(600)
def test_without_the_openlineage_provider_nothing_breaks(
    make_emulator: Callable[..., AISearchEmulator], tmp_path: Path
) -> None:
    emu = make_emulator(job_duration=1.0)
    _setup_instances(emu)
    result = _run_dag(emu, tmp_path, hide_openlineage=True, transport=None)
    assert result["state"] in ("success", "DagRunState.SUCCESS"), result["output"][-5000:]
    assert result["hidden"] is True
    assert result["facets"] == {"create": "None", "sensor": "None", "list": "None"}
    assert len(emu.requests_to(method="POST")) == 2  # the create operator's and the @task's
    assert emu.requests_to(route="instance") and len(emu.requests_to(route="instance")) == 1  # the @task's only


FAILING_GATE_DAG = """
import datetime as dt
from airflow.providers.common.compat.sdk import DAG
from airflow_provider_aisearch.operators import AISearchCreateJobOperator
from airflow_provider_aisearch.sensors import AISearchJobSensor

FAST = {{"retry_backoff": 0.001}}
with DAG("aisearch_lineage", schedule=None, start_date=dt.datetime(2026, 1, 1), catchup=False):
    AISearchCreateJobOperator(
        task_id="create", instance_id="docs", wait_for_completion=True, deferrable=True, poll_interval=0.2,
        max_item_errors=0.05, hook_params=FAST,
    )
    AISearchJobSensor(task_id="sensor", instance_id="site", job_id={site_job!r}, poke_interval=0.2, hook_params=FAST)
"""


@needs_openlineage
@pytest.mark.timeout(600)
def test_a_failed_gate_or_job_emits_the_datasets_and_the_job_facet_on_fail(
    make_emulator: Callable[..., AISearchEmulator], tmp_path: Path
) -> None:
    if not _reads_item_stats():
        pytest.skip("no quality gate in this version")
    emu = make_emulator(job_duration=1.0)
    _setup_instances(emu)
    emu.set_item_errors(0.1, instance_id="docs")  # 10 % of the files fail; the gate allows 5 %
    site_job = emu.add_job("site", duration=0, end_reason="failed").id
    events_file = tmp_path / "openlineage.jsonl"
    result = _run_dag(
        emu,
        tmp_path,
        hide_openlineage=False,
        transport={"type": "file", "log_file_path": str(events_file), "append": True},
        dag_source=FAILING_GATE_DAG.format(site_job=site_job),
    )
    assert result["state"] in ("failed", "DagRunState.FAILED"), result["output"][-5000:]
    assert "AISearchIndexQualityError" in result["output"]
    events = _complete_events(events_file, ["create", "sensor"], event_type="FAIL")
    account = emu.account_id

    def names(event: dict[str, Any], key: str) -> list[tuple[str, str]]:
        return [(d["namespace"], d["name"]) for d in event[key]]

    create = events["create"]
    assert names(create, "inputs") == [(f"r2://{account}", "docs-bucket")]
    assert names(create, "outputs") == [(f"cloudflare-aisearch://{account}", "default/docs")]
    created = emu.jobs("docs")[0]
    job = create["run"]["facets"]["aisearchJob"]
    assert (job["jobId"], job["status"], job["endReason"]) == (created["id"], "succeeded", "completed")
    items = job["items"]
    assert (items["error"], items["completed"] + items["error"] + items["skipped"]) == (2, 20)
    assert create["run"]["facets"]["externalQuery"]["externalQueryId"] == created["id"]

    sensor = events["sensor"]  # a failed job: its datasets and its job facet, without counts
    assert names(sensor, "inputs") == [("https://docs.example.com", "/guide/")]
    assert names(sensor, "outputs") == [(f"cloudflare-aisearch://{account}", "default/site")]
    job = sensor["run"]["facets"]["aisearchJob"]
    assert (job["jobId"], job["endReason"], job.get("items")) == (site_job, "failed", None)

    # One instance GET per operator (the one the lineage needs), no other extra request.
    assert len(emu.requests_to(route="instance")) == 2
    text = events_file.read_text()
    assert TOKEN not in text and emu.token not in text


def test_a_crawled_urls_credentials_are_masked_in_task_logs_and_redacted_in_the_repr(
    emu: AISearchEmulator, hook: AISearchHook
) -> None:
    from airflow.providers.common.compat.sdk import redact  # the masker Airflow's task logs go through

    password, key = "crawl-pass-7Qx9", "qkey-4Lm2zzT"  # not the API token (the hook masks that anyway)
    emu.add_instance("site", type="web-crawler", source=f"https://crawler:{password}@Docs.Example.com/?key={key}&p=1")
    emu.add_job("site", duration=0)
    instance = hook.get_instance("site")
    assert instance.source is not None and password in instance.source  # the value itself is Cloudflare's
    for secret in (password, key):
        assert secret not in repr(instance) and secret not in str(instance)
        logged = f"read {instance.source} ({instance.to_dict()})"
        assert secret in logged and secret not in str(redact(logged))  # get_instance masked it for task logs
    assert "https://***@Docs.Example.com/?key=***&p=***" in repr(instance)
    items = list(hook.iter_items("site"))
    assert items and any(item.source_id and password in item.source_id for item in items)
    assert all(password not in repr(item) and key not in repr(item) for item in items)
    assert len(emu.requests_to(route="instance")) == 1


@pytest.mark.parametrize("collector", ["no-op", "real"])
def test_hook_lineage_needs_no_second_connection_lookup(
    emulator: AISearchEmulator, connect: Connect, monkeypatch: pytest.MonkeyPatch, collector: str
) -> None:
    import airflow.providers.common.compat.sdk as compat_sdk
    from airflow.providers.common.compat.sdk import HookLineageCollector

    if collector == "real":
        real = HookLineageCollector()
        monkeypatch.setattr(compat_sdk, "get_hook_lineage_collector", lambda: real, raising=False)
    connect(emulator)
    emulator.add_instance("docs", type="r2", source="docs-bucket")
    lookups: list[str] = []
    original = AISearchHook.get_connection.__func__  # type: ignore[attr-defined]

    def spy(cls: type[AISearchHook], conn_id: str) -> Any:
        lookups.append(conn_id)
        return original(cls, conn_id)

    monkeypatch.setattr(AISearchHook, "get_connection", classmethod(spy))
    hook = AISearchHook(retry_backoff=0.001)
    assert hook.get_instance("docs").source == "docs-bucket"
    assert hook.create_job("docs").id
    assert lookups == ["aisearch_default"]  # in Airflow 3 each lookup is a round trip to the API server
    if collector == "real":
        collected = real.collected_assets
        assert [i.asset.uri for i in collected.inputs] == [f"r2://{emulator.account_id}/docs-bucket"]
        assert len(collected.outputs) == 1
    assert len(emulator.requests_to(route="instance")) == 1


def test_a_bad_lineage_r2_namespace_is_a_value_error_naming_it() -> None:
    from airflow_provider_aisearch.api.connection import ConnectionInfo

    info = ConnectionInfo("c", "https://x", "a", "default", None, "s", lineage_r2_namespace="gcs")
    with pytest.raises(ValueError, match="lineage_r2_namespace must be one of 'r2', 's3', got 'gcs'"):
        info.r2_namespace()
    assert ConnectionInfo("c", "https://x", "a", "default", None, "s").r2_namespace() == "r2"
