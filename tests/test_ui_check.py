"""The browser check of the connection form, the Test button and the extra link (``scripts/ui_check.py``).

It runs the real Airflow 3 api-server and headless Chromium, so it needs Airflow 3, ``playwright``
(the ``ui`` extra, which ``make`` installs into ``.venv``) and Debian's ``/usr/bin/chromium``
(``make ui-deps``). Anywhere else it is skipped with the reason: on the Airflow 2.11 venv, and on
machines without Chromium.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from importlib.metadata import version
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "scripts" / "ui_check.py"
CHROMIUM = "/usr/bin/chromium"


def _skip_reason() -> str | None:
    if int(version("apache-airflow").split(".")[0]) < 3:
        return f"UI check skipped: it drives the Airflow 3 UI (this venv has Airflow {version('apache-airflow')})"
    if not os.access(CHROMIUM, os.X_OK):
        return f"UI check skipped: {CHROMIUM} is not installed (`make ui-deps` installs Debian's chromium)"
    if importlib.util.find_spec("playwright") is None:
        return "UI check skipped: playwright is not installed (pip install -e '.[ui]')"
    return None


@pytest.mark.timeout(600)
def test_ui_check(tmp_path: Path) -> None:
    reason = _skip_reason()
    if reason:
        pytest.skip(reason)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW_", "AIRFLOW__"))}
    # Screenshots go to tmp_path: `make test` never rewrites docs/img (that is `make ui-check`'s job).
    result = subprocess.run(
        [sys.executable, str(SCRIPT), "--img-dir", str(tmp_path)],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=540,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-6000:]
    assert "passed in" in output
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        [
            "connection-form.png",
            "connection-form-extra.png",
            "connection-test-success.png",
            "connection-test-failure.png",
            "task-extra-link.png",
        ]
    )
