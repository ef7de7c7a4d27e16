"""Deploy-check scenario 10's parts that need no deployment: counting the watcher's requests and log lines."""

from __future__ import annotations

import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "scripts"))

from deploycheck.scenario_revoked import per_minute, watcher_lines  # noqa: E402


def test_requests_are_counted_per_whole_minute_of_the_window() -> None:
    start = 1000.0
    times = [999.0, 1000.0, 1005.0, 1059.9, 1060.0, 1119.9, 1120.0, 1200.0]
    assert per_minute(times, start, 120.0) == [3, 2]  # before the start and from the window's end on: not counted
    assert per_minute([], start, 120.0) == [0, 0]
    assert per_minute([1010.0], start, 30.0) == [1]  # a window under a minute is one bucket


def test_log_lines_naming_the_401_and_watcher_starts() -> None:
    path = "GET /accounts/x/ai-search/namespaces/default/instances/events10/jobs (connection 'aisearch_default')"
    logs = {
        "triggerer-1": "\n".join(
            [
                f"[error] Could not list jobs of instance 'events10': {path} failed with HTTP 401: [10000] ...",
                f"[error] Stopped watching instance 'events10' for ended jobs: {path} failed with HTTP 401",
                "[info] Watching instance 'events10' for jobs that end: polling every 2 s",
                "[error] Could not list jobs of instance 'events9': .../instances/events9/jobs failed with HTTP 401",
                f"[warning] {path} failed with HTTP 503",
            ]
        ),
        "triggerer-2": "[info] Watching instance 'events10' for jobs that end: polling every 2 s",
    }
    assert watcher_lines(logs) == (2, 2)
    assert watcher_lines(logs, "events9") == (1, 0)
