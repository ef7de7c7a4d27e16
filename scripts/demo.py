"""``make demo``: run every example DAG end to end with ``airflow dags test`` against the emulator.

The emulator runs embedded in this process; each ``airflow dags test`` child finds it through the
``AIRFLOW_CONN_AISEARCH_DEFAULT`` variable. Airflow state goes to ``.demo/`` (recreated each run).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

from airflow_provider_aisearch.emulator import AISearchEmulator

REPO = Path(__file__).resolve().parents[1]
DEMO_HOME = Path(os.environ.get("AISEARCH_DEMO_HOME") or REPO / ".demo" / "airflow-home")
#: DAGs the demo runs, in order.
DEMO_DAGS = [
    "example_aisearch_hook",
    "example_aisearch_sensor",
    "example_aisearch_operators",
    "example_aisearch_asset_producer",
    "example_aisearch_asset_consumer",
]


def main() -> int:
    shutil.rmtree(DEMO_HOME, ignore_errors=True)
    DEMO_HOME.mkdir(parents=True)
    # A short cooldown (Cloudflare: about 30 s) so consecutive DAGs can each start a job.
    emulator = AISearchEmulator(instances=["docs"], job_duration=3.0, cooldown=5.0)
    emulator.seed_jobs("docs", 5)
    emulator.start()
    env = dict(os.environ)
    env.update(
        AIRFLOW_HOME=str(DEMO_HOME),
        AIRFLOW__CORE__LOAD_EXAMPLES="False",
        AIRFLOW__CORE__DAGS_FOLDER=str(REPO / "example_dags"),
        AIRFLOW_CONN_AISEARCH_DEFAULT=emulator.connection_json(),
    )
    airflow = str(Path(sys.executable).with_name("airflow"))
    print(f"AI Search emulator: {emulator.url}")
    try:
        migrate = subprocess.run([airflow, "db", "migrate"], env=env, capture_output=True, text=True)
        if migrate.returncode:
            print(migrate.stdout[-4000:], migrate.stderr[-4000:])
            print("airflow db migrate failed")
            return 1
        results = []
        for dag_id in DEMO_DAGS:
            before = len(emulator.requests)
            started = time.monotonic()
            print(f"\n=== airflow dags test {dag_id} ===", flush=True)
            rc = subprocess.run([airflow, "dags", "test", dag_id], env=env).returncode
            results.append((dag_id, rc, time.monotonic() - started, len(emulator.requests) - before))
    finally:
        emulator.stop()
    print("\n=== demo summary ===")
    for dag_id, rc, seconds, requests in results:
        print(f"{'ok    ' if rc == 0 else 'FAILED'} {dag_id}: {seconds:.1f} s, {requests} API requests to the emulator")
    return 0 if all(rc == 0 for _, rc, _, _ in results) else 1


if __name__ == "__main__":
    sys.exit(main())
