"""docs/reliability.md's table is the rendering of the figures `make reliability` last wrote, and the README's
figures table states the same totals."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_reliability_table_matches_the_last_reliability_run() -> None:
    spec = importlib.util.spec_from_file_location("reliability_table", REPO / "scripts" / "reliability_table.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    figures = json.loads((REPO / "docs" / "reliability.json").read_text())
    page = (REPO / "docs" / "reliability.md").read_text()
    section = page.split(module.START, 1)[1].split(module.END, 1)[0].strip()
    assert section == module.render(figures)
    chaos_runs = sum(v["runs"] for v in figures.values() if "runs" in v)
    assert chaos_runs >= 200
    assert all(v["wrong_outcomes"] == 0 for v in figures.values() if "runs" in v)
    readme = (REPO / "README.md").read_text()
    assert f"{chaos_runs} task runs with 30% transient faults: 0 wrong outcomes" in readme
    assert f"{figures['no duplicates']['extra_jobs']} extra jobs" in readme
