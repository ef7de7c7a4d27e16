"""The parts of ``make deploy-check`` (``scripts/deploycheck/``) that need no Airflow deployment.

The deploy check itself brings up PostgreSQL, Redis and seven Airflow components, so it is its own
target, not part of the suite. These tests guard what it relies on: which example DAGs it triggers,
the emulator process and the request counts read from its access log, and that no process it
started survives the teardown, and that a kill reaches every process below a component.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time
from pathlib import Path

import requests

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "scripts"))

from deploycheck.emulator_process import start_emulator  # noqa: E402
from deploycheck.scenario1 import example_dags  # noqa: E402
from deploycheck.services import Processes, descendants, tree, wait_until  # noqa: E402


def test_example_dags_split_into_triggered_and_asset_scheduled() -> None:
    manual, asset_scheduled = example_dags(REPO)
    assert set(manual) == {
        "example_aisearch_hook",
        "example_aisearch_operators",
        "example_aisearch_sensor",
        "example_aisearch_quality_gate",
        "example_aisearch_retrieval_check",
        "example_aisearch_sync_folder",
        "example_aisearch_asset_producer",
    }
    assert manual[-1] == "example_aisearch_asset_producer"  # its consumer's run is awaited last
    assert asset_scheduled == ["example_aisearch_asset_consumer"]  # never triggered by hand


def test_emulator_process_counts_requests_and_leaves_nothing(tmp_path: Path) -> None:
    procs = Processes(run_id="test-" + os.urandom(4).hex(), log_dir=tmp_path)
    try:
        emu = start_emulator(procs, sys.executable, dict(os.environ), "tok-" + os.urandom(8).hex())
        conn = json.loads(emu.connection)
        assert conn["password"] == emu.token
        url = f"{conn['host']}/accounts/{conn['extra']['account_id']}/ai-search/namespaces/default/instances/docs/jobs"
        headers = {"Authorization": f"Bearer {emu.token}"}
        for _ in range(3):
            assert requests.get(url, headers=headers, timeout=30).status_code == 200
        assert requests.get(url + "/nope", headers=headers, timeout=30).status_code == 404

        def counts() -> dict[str, int]:
            return dict(emu.request_counts())

        deadline = time.monotonic() + 30
        while sum(counts().values()) < 4 and time.monotonic() < deadline:
            time.sleep(0.2)
        assert counts() == {
            "GET /client/v4/accounts/{account}/ai-search/namespaces/default/instances/docs/jobs": 3,
            "GET /client/v4/accounts/{account}/ai-search/namespaces/default/instances/docs/jobs/{id}": 1,
        }
        assert emu.token not in emu.log_path.read_text().replace(emu.connection, "")  # only in the export line
    finally:
        procs.stop_all(grace=10)
    assert procs.survivors() == []


def test_emulator_process_adds_the_sync_examples_built_in_storage_instance(tmp_path: Path) -> None:
    """Scenario 1 gives example_aisearch_sync_folder an empty built-in-storage instance: uploads only, no jobs."""
    procs = Processes(run_id="test-" + os.urandom(4).hex(), log_dir=tmp_path)
    try:
        emu = start_emulator(procs, sys.executable, dict(os.environ), "tok-" + os.urandom(8).hex())
        emu.add_instance("kestrel-builtin", builtin=True)
        conn = json.loads(emu.connection)
        base = f"{conn['host']}/accounts/{conn['extra']['account_id']}/ai-search/namespaces/default/instances"
        headers = {"Authorization": f"Bearer {emu.token}"}
        assert requests.get(f"{base}/kestrel-builtin/items", headers=headers, timeout=30).json()["result"] == []
        assert requests.post(f"{base}/kestrel-builtin/jobs", json={}, headers=headers, timeout=30).status_code == 400
        files = {"file": ("a.md", b"# A\n\nText.", "text/markdown")}
        upload = requests.post(f"{base}/kestrel-builtin/items", files=files, headers=headers, timeout=30)
        assert upload.status_code == 200 and upload.json()["result"]["source_id"] == "builtin"
    finally:
        procs.stop_all(grace=10)
    assert procs.survivors() == []


def test_stop_all_kills_what_ignores_sigterm_and_survivors_finds_escapees(tmp_path: Path) -> None:
    procs = Processes(run_id="test-" + os.urandom(4).hex(), log_dir=tmp_path)
    escaped = tmp_path / "escaped.pid"
    try:
        # Ignores SIGTERM; a child in its own session (setsid) escapes the process group.
        script = f"trap '' TERM; setsid sleep 300 & echo $! > {escaped}; sleep 300"
        procs.start("stubborn", ["sh", "-c", script], dict(os.environ), tier=1)
        deadline = time.monotonic() + 30
        while not (escaped.exists() and escaped.read_text().strip()) and time.monotonic() < deadline:
            time.sleep(0.1)
        procs.stop_all(grace=1)
        left = procs.survivors()
        assert [pid for pid, _ in left] == [int(escaped.read_text())]
    finally:
        if escaped.exists() and escaped.read_text().strip():
            try:
                os.kill(int(escaped.read_text()), 9)
            except ProcessLookupError:
                pass
    deadline = time.monotonic() + 10
    while procs.survivors() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert procs.survivors() == []


def test_kill_then_restart_starts_the_child_again_under_its_name(tmp_path: Path) -> None:
    procs = Processes(run_id="test-" + os.urandom(4).hex(), log_dir=tmp_path)
    log_path = tmp_path / "comp.log"

    def wait_for_lines(*lines: str) -> None:
        deadline = time.monotonic() + 30
        while log_path.read_text().splitlines() != list(lines) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert log_path.read_text().splitlines() == list(lines)

    try:
        # The sleep shares the shell's process group: kill() takes it down too.
        procs.start("comp", ["sh", "-c", 'echo "run $N"; sleep 300 & wait'], {**os.environ, "N": "1"}, tier=1)
        wait_for_lines("run 1")
        old = procs.get("comp").proc
        before = time.time()
        killed_at = procs.kill("comp")
        assert before <= killed_at <= time.time()
        assert old.returncode == -9
        assert procs.get("comp").proc is old  # dead, still listed until the restart
        procs.restart("comp")  # same argv and environment, same log file
        wait_for_lines("run 1", "run 1")
        assert [c.name for c in procs.children] == ["comp"]
        assert procs.get("comp").proc is not old and procs.get("comp").tier == 1
        procs.kill("comp")
        procs.restart("comp", env={**os.environ, "N": "2"})
        wait_for_lines("run 1", "run 1", "run 2")
    finally:
        procs.stop_all(grace=5)
    assert procs.survivors() == []


def test_descendants_walks_every_generation() -> None:
    parents = {1: 0, 10: 1, 11: 10, 12: 10, 13: 12, 20: 1, 21: 20}
    assert descendants(10, parents) == [10, 11, 12, 13]
    assert descendants(21, parents) == [21]


def test_kill_with_descendants_reaches_a_grandchild_in_its_own_process_group(tmp_path: Path) -> None:
    """As a Celery worker's task runs in a process group of its own, below the worker's group."""
    procs = Processes(run_id="test-" + os.urandom(4).hex(), log_dir=tmp_path)
    pid_file = tmp_path / "grandchild.pid"
    code = (
        "import os, subprocess, sys, time\n"
        "g = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(120)'], start_new_session=True)\n"
        f"open({str(pid_file)!r}, 'w').write(str(g.pid))\n"
        "time.sleep(120)\n"
    )
    grandchild = 0
    try:
        proc = procs.start("worker-x", [sys.executable, "-c", code], dict(os.environ), tier=1)
        wait_until("grandchild started", lambda: pid_file.exists() and pid_file.read_text(), 30, 0.1)
        grandchild = int(pid_file.read_text())
        assert os.getpgid(grandchild) != os.getpgid(proc.pid)  # another group: killpg alone would miss it
        assert tree(proc.pid) == [proc.pid, grandchild]
        procs.kill("worker-x", descendants=True)
        assert proc.returncode == -signal.SIGKILL
        wait_until("grandchild gone", lambda: not _alive(grandchild), 30, 0.1)
    finally:
        if grandchild and _alive(grandchild):
            os.kill(grandchild, signal.SIGKILL)
        procs.stop_all(grace=5)
    assert procs.survivors() == []


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"
