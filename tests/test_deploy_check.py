"""``make deploy-check`` inside ``make test``: a real distributed Airflow 3 deployment and its scenarios.

It needs Airflow 3, the ``deploy`` extra (the Celery provider, psycopg2, asyncpg; ``make`` installs it
into ``.venv``) and Debian's PostgreSQL and Redis (``make deploy-deps``; ``.ci/run`` installs them
first). Anywhere else it is skipped with the reason: on the Airflow 2.11 venv, and on machines where
PostgreSQL or Redis could not be installed. The figures go to a temp file: ``make test`` never
rewrites docs/deployment.md or docs/deploying.md (that is ``make deploy-check``'s job).
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import signal
import subprocess
import sys
from importlib.metadata import version
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "scripts" / "deploy_check.py"


def _postgres_installed() -> bool:
    return bool(shutil.which("initdb")) or any(Path("/usr/lib/postgresql").glob("*/bin/initdb"))


def _skip_reason() -> str | None:
    if int(version("apache-airflow").split(".")[0]) < 3:
        return f"deploy check skipped: it runs Airflow 3 components (this venv has Airflow {version('apache-airflow')})"
    if importlib.util.find_spec("airflow.providers.celery") is None:
        return "deploy check skipped: the Celery provider is not installed (pip install -e '.[deploy]')"
    if not _postgres_installed():
        return "deploy check skipped: PostgreSQL is not installed (`make deploy-deps` installs Debian's postgresql)"
    if not shutil.which("redis-server"):
        return "deploy check skipped: Redis is not installed (`make deploy-deps` installs Debian's redis-server)"
    return None


@pytest.mark.timeout(1800)
def test_deploy_check(tmp_path: Path) -> None:
    reason = _skip_reason()
    if reason:
        pytest.skip(reason)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW_", "AIRFLOW__"))}
    report = tmp_path / "deployment.md"
    proc = subprocess.Popen(
        [sys.executable, str(SCRIPT), "--report", str(report)],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        out, _ = proc.communicate(timeout=1700)
    except subprocess.TimeoutExpired:
        proc.send_signal(signal.SIGTERM)  # the check tears its deployment down on SIGTERM, as on Ctrl-C
        out, _ = proc.communicate(timeout=300)
    result = subprocess.CompletedProcess(proc.args, proc.returncode, out, "")
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-12000:]
    assert "passed in" in output
    text = report.read_text()
    for number in range(1, 11):  # every scenario ran and is in the table
        assert f"\n| {number} | " in text, f"scenario {number} missing from the report"
    assert "| FAIL |" not in text
