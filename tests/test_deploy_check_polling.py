"""The pure parts of deploy-check scenarios 2, 3 and 8 (``scripts/deploycheck/``: ``attribution.py``,
``waiters.py``, ``scenario_polling.py``, ``scenario_failover.py``, ``scenario_ratelimit.py``).

No deployment here: how emulator requests are classified and attributed to a triggerer by their TCP
source port, counted per poll interval, which triggerer is killed, and how the rate limiter's windows
are counted. The scenarios themselves run in ``make deploy-check``.
"""

from __future__ import annotations

import ast
import socket
import sys
from collections import Counter
from pathlib import Path

import psutil  # type: ignore[import-untyped]

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "scripts"))

from deploycheck import attribution as at  # noqa: E402
from deploycheck import scenario_failover as fo  # noqa: E402
from deploycheck import scenario_polling as sp  # noqa: E402
from deploycheck import scenario_ratelimit as rl  # noqa: E402
from deploycheck import waiters  # noqa: E402

BASE = "/client/v4/accounts/abc/ai-search/namespaces/default/instances"


def rec(seq: int, at: float, method: str, path: str, port: int | None = None, conn: int = 0) -> dict[str, object]:
    return {"seq": seq, "at": at, "method": method, "path": path, "peer_port": port, "connection": conn}


def test_request_kind_by_path_and_instance() -> None:
    assert at.request_kind(rec(1, 0, "GET", f"{BASE}/shared/jobs")) == "list"
    assert at.request_kind(rec(1, 0, "GET", f"{BASE}/shared/jobs?page=2&per_page=50")) == "list"
    assert at.request_kind(rec(1, 0, "POST", f"{BASE}/shared/jobs")) == "create"
    assert at.request_kind(rec(1, 0, "GET", f"{BASE}/shared/jobs/j1")) == "get"
    assert at.request_kind(rec(1, 0, "PATCH", f"{BASE}/shared/jobs/j1")) == "cancel"
    assert at.request_kind(rec(1, 0, "GET", f"{BASE}/shared/jobs/j1/logs")) == "logs"
    assert at.request_kind(rec(1, 0, "GET", "/client/v4/user/tokens/verify")) == "other"
    # Restricted to one instance: another instance's requests (and non-job requests) do not count.
    assert at.request_kind(rec(1, 0, "GET", f"{BASE}/shared/jobs"), "shared") == "list"
    assert at.request_kind(rec(1, 0, "GET", f"{BASE}/other/jobs"), "shared") is None
    assert at.request_kind(rec(1, 0, "GET", "/client/v4/user/tokens/verify"), "shared") is None


def test_expected_pages() -> None:
    assert at.expected_pages(100) == 2
    assert at.expected_pages(50) == 1
    assert at.expected_pages(51) == 2
    assert at.expected_pages(0) == 1


def test_attribution_by_port_then_by_connection() -> None:
    owners = at.PortOwners()
    owners.add(40001, "triggerer-1", 100.0)
    owners.add(40002, "triggerer-2", 100.0)
    records = [
        rec(1, 100.1, "GET", f"{BASE}/s/jobs", 40001, conn=7),
        rec(2, 100.2, "GET", f"{BASE}/s/jobs", 40002, conn=8),
        # Same connection as seq 1, its port never sampled (e.g. the record lacks it): still triggerer-1.
        rec(3, 105.0, "GET", f"{BASE}/s/jobs", None, conn=7),
        # A worker's short-lived connection: never sampled.
        rec(4, 105.0, "GET", f"{BASE}/s/jobs/j1", 50000, conn=9),
    ]
    assert at.attribute(records, owners) == {1: "triggerer-1", 2: "triggerer-2", 3: "triggerer-1", 4: "other"}


def test_a_reused_port_belongs_to_whoever_held_it_then() -> None:
    owners = at.PortOwners()
    owners.add(40001, "triggerer-1", 100.0)
    owners.add(40001, "triggerer-1", 100.2)  # same owner again: one entry
    owners.add(40001, "triggerer-2", 200.0)
    assert owners.seen[40001] == [(100.0, "triggerer-1"), (200.0, "triggerer-2")]
    assert owners.owner(40001, 150.0) == "triggerer-1"
    assert owners.owner(40001, 250.0) == "triggerer-2"
    assert owners.owner(40001, 99.0) == "triggerer-1"  # sent just before the first sample saw the port
    assert owners.owner(40002, 150.0) is None
    assert owners.owner(None, 150.0) is None


def test_per_interval_counts_by_owner_kind_and_interval() -> None:
    records = [
        rec(1, 10.0, "GET", f"{BASE}/s/jobs"),
        rec(2, 10.1, "GET", f"{BASE}/s/jobs"),  # page 2 of the same round
        rec(3, 15.5, "GET", f"{BASE}/s/jobs"),
        rec(4, 16.0, "GET", f"{BASE}/s/jobs/j1"),
        rec(5, 17.0, "GET", f"{BASE}/other/jobs"),  # another instance: left out
        rec(6, 9.9, "GET", f"{BASE}/s/jobs"),  # before the window
        rec(7, 20.0, "GET", f"{BASE}/s/jobs"),  # after the window (2 intervals of 5 s from 10)
    ]
    owner_of = {1: "t1", 2: "t1", 3: "t1", 4: "other", 5: "t1", 6: "t1", 7: "t1"}
    table = at.per_interval(records, owner_of, start=10.0, interval=5.0, count=2, instance="s")
    assert table == {"t1": {"list": [2, 1]}, "other": {"get": [0, 1]}}


def test_fixed_windows_as_the_emulator_counts_them() -> None:
    # A window starts at a request; the first request at or after its end starts the next.
    assert at.fixed_window_counts([0.0, 1.0, 9.9, 10.0, 25.0, 26.0], 10.0) == [3, 1, 2]
    assert at.fixed_window_counts([], 10.0) == []


def test_sliding_window_max() -> None:
    times = [0.0, 1.0, 9.9, 10.0, 10.5, 25.0]
    assert at.sliding_window_max(times, 10.0) == 4  # 1.0, 9.9, 10.0, 10.5
    assert at.sliding_window_max([], 10.0) == 0


def test_the_emulator_limiter_agrees_with_fixed_window_counts() -> None:
    """The limiter admits what fixed_window_counts says fits (so 'max per window' means what it says)."""
    from airflow_provider_aisearch.emulator.ratelimit import RateLimit

    limiter = RateLimit(limit=3, window=10.0, lockout=10.0)
    times = [0.0, 1.0, 9.9, 10.0, 10.5, 11.0, 25.0]
    assert all(limiter.admit(t)[0] for t in times)
    assert max(at.fixed_window_counts(times, 10.0)) == 3
    assert limiter.admit(25.5)[0] and limiter.admit(26.0)[0]
    assert not limiter.admit(26.5)[0]  # a 4th in the window: lockout


def test_trigger_log_owners() -> None:
    paths = [
        "dag_id=a/run_id=r/task_id=wait/map_index=0/attempt=1.log.trigger.7.log",
        "dag_id=a/run_id=r/task_id=wait/map_index=1/attempt=1.log.trigger.7.log",
        "dag_id=a/run_id=r/task_id=wait/map_index=2/attempt=1.log.trigger.9.log",
        "dag_id=a/run_id=r/task_id=wait/map_index=2/attempt=1.log",
    ]
    assert at.trigger_log_owners(paths) == Counter({"7": 2, "9": 1})


def test_victim_holds_the_most_waiters_among_those_holding_a_follow_sensor() -> None:
    follow = waiters.FOLLOW_DAG
    holders = {
        "1": Counter({"a": 60, "b": 20}),  # the most, but no follow sensor
        "2": Counter({"a": 10, "b": 10, follow: 2}),
        "3": Counter({"a": 5, follow: 1}),
    }
    assert fo.choose_victim(holders, [follow]) == "2"
    holders["1"][follow] = 1
    assert fo.choose_victim(holders, [follow]) == "1"
    assert fo.choose_victim({"1": Counter({"a": 3})}, [follow]) is None


def test_in_heartbeats() -> None:
    assert fo.in_heartbeats(21.0, 10.0) == 2.1


def test_sampler_maps_local_ports_and_open_trigger_logs_to_the_process(tmp_path: Path) -> None:
    """The sampler sees this process's own connection to a loopback server and its open trigger log."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    port = server.getsockname()[1]
    client = socket.create_connection(("127.0.0.1", port))
    accepted, _ = server.accept()
    log_file = (tmp_path / "attempt=1.log.trigger.42.log").open("w")
    try:
        sampler = at.Sampler(lambda: {"me": psutil.Process().pid}, port)
        sampler.sample()
        owners, job_owner = sampler.snapshot()
        assert owners.owner(client.getsockname()[1], 0.0) == "me"
        assert job_owner == {"42": "me"}
    finally:
        log_file.close()
        for sock in (client, accepted, server):
            sock.close()


def test_slowed_down_counts_trigger_logs_that_say_so(tmp_path: Path) -> None:
    run = tmp_path / "logs" / "dag_id=d" / "run_id=r" / "task_id=wait"
    for n, text in enumerate(["Polling job j every 3 s instead of 1 s: 4/100 left", "Waiting for job j", ""]):
        (run / f"map_index={n}").mkdir(parents=True)
        (run / f"map_index={n}" / "attempt=1.log.trigger.5.log").write_text(text)
    (run / "map_index=0" / "attempt=1.log").write_text("instead of (the task log, not a trigger's)")
    assert rl.slowed_down(tmp_path, "d", "r") == 1


def test_dag_ids_and_intervals_match_the_dag_file() -> None:
    source = (REPO / "tests" / "deploy_dags" / "shared_polling.py").read_text()
    declared = {
        node.args[0].value: next(k.value.value for k in node.keywords if k.arg == "poke_interval")  # type: ignore[attr-defined]
        for node in ast.walk(ast.parse(source))
        if isinstance(node, ast.Call)
        and getattr(node.func, "id", None) == "_waiters_dag"
        and isinstance(node.args[0], ast.Constant)
    }
    assert set(declared) == {*sp.DAG_IDS, *fo.DAG_IDS, *rl.DAG_IDS}
    assert {declared[d] for d in (*waiters.SHARED_DAGS, waiters.FOLLOW_DAG)} == {sp.POKE_INTERVAL}
    assert declared[rl.RATE_DAG] == rl.RATE_POKE_INTERVAL


def test_rate_settings_would_be_blown_unpaced() -> None:
    """Scenario 8 proves pacing only if the sensors, unpaced, would exceed the limit within one window."""
    demand = len(rl.RATE_INSTANCES) * rl.RATE_WINDOW / rl.RATE_POKE_INTERVAL
    assert demand > rl.RATE_LIMIT
    # and the 5 % reserve leaves room for the other triggerer's requests not yet seen in an answer
    assert rl.RATE_LIMIT * 0.05 >= 4


def test_scenario_2_hands_its_sensors_to_scenario_3_once() -> None:
    waiting = object()
    assert waiters.take_over_waiting() is None
    waiters.hand_over_waiting(waiting)  # type: ignore[arg-type]
    assert waiters.take_over_waiting() is waiting
    assert waiters.take_over_waiting() is None

    class Dep:
        selected: tuple[int, ...] | None = None

    dep = Dep()
    assert waiters.will_run(dep, 3)  # type: ignore[arg-type]  # the runner did not say: assume it runs
    dep.selected = (2, 8)
    assert not waiters.will_run(dep, 3)  # type: ignore[arg-type]
    dep.selected = (2, 3)
    assert waiters.will_run(dep, 3)  # type: ignore[arg-type]


def test_the_modules_import_one_way() -> None:
    """attribution <- waiters <- the scenario modules; no scenario module imports another's scenario."""
    order = ["attribution", "waiters", "scenario_polling", "scenario_failover", "scenario_ratelimit"]
    for name in order:
        tree = ast.parse((REPO / "scripts" / "deploycheck" / f"{name}.py").read_text())
        imported = {
            node.module.split(".")[-1]
            for node in ast.walk(tree)
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("deploycheck.")
        }
        allowed = {"harness", "services", "scenario1", *order[: min(order.index(name), 2)]}
        assert imported <= allowed, (name, imported - allowed)
