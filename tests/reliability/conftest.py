from __future__ import annotations

import json
import os
from collections import defaultdict
from pathlib import Path
from typing import Any

import pytest

#: Figures the reliability tests record, printed at the end of the run and written to FIGURES_FILE.
FIGURES: dict[str, dict[str, Any]] = defaultdict(dict)
FIGURES_FILE = Path(os.environ.get("AISEARCH_RELIABILITY_FIGURES", Path(__file__).parent / ".figures.json"))


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if not FIGURES:
        return
    terminalreporter.section("reliability figures")
    for name, values in sorted(FIGURES.items()):
        terminalreporter.write_line(f"{name}: " + ", ".join(f"{k}={v}" for k, v in values.items()))
    FIGURES_FILE.write_text(json.dumps(FIGURES, indent=2, sort_keys=True))


@pytest.fixture
def figures() -> dict[str, dict[str, Any]]:
    return FIGURES
