"""The Airflow 3 side of ``make deploy-check``: configuration, components and a REST client."""

from __future__ import annotations

import json
import secrets
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any
from urllib.parse import quote

from cryptography.fernet import Fernet

from deploycheck.services import DeployCheckFailed, Processes, free_port, http_ok, log, wait_until

LOCAL_BUNDLE = "airflow.dag_processing.bundles.local.LocalDagBundle"
#: Task slots per Celery worker (two workers; 2 cores here).
WORKER_CONCURRENCY = 4


def airflow_env(
    base: Path, repo: Path, *, db_url: str, broker_url: str, api_port: int, connection: str
) -> dict[str, str]:
    """The environment every component shares (one AIRFLOW_HOME, one JWT secret)."""
    home = base / "airflow-home"
    home.mkdir()
    return {
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(repo / "example_dags"),
        # Two bundles: the example DAGs users copy, and the scenario DAGs of the deploy check.
        "AIRFLOW__DAG_PROCESSOR__DAG_BUNDLE_CONFIG_LIST": json.dumps(
            [
                {"name": "example-dags", "classpath": LOCAL_BUNDLE, "kwargs": {"path": str(repo / "example_dags")}},
                {"name": "deploy-dags", "classpath": LOCAL_BUNDLE, "kwargs": {"path": str(repo / "tests/deploy_dags")}},
            ]
        ),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__EXECUTOR": "CeleryExecutor",
        "AIRFLOW__CORE__FERNET_KEY": Fernet.generate_key().decode(),
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://127.0.0.1:{api_port}/execution/",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": db_url,
        "AIRFLOW__CELERY__BROKER_URL": broker_url,
        # "db+postgresql://" would pick SQLAlchemy 2.1's default PostgreSQL driver, psycopg 3 (not installed).
        "AIRFLOW__CELERY__RESULT_BACKEND": "db+" + db_url,
        "AIRFLOW__API__BASE_URL": f"http://127.0.0.1:{api_port}",
        "AIRFLOW__API__SECRET_KEY": secrets.token_urlsafe(16),
        "AIRFLOW__API_AUTH__JWT_SECRET": secrets.token_urlsafe(64),  # >= 64 bytes: no HMAC key warning
        # Throwaway home on loopback only: every REST caller is admin, so a user's calls need no login.
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "True",
        "AIRFLOW_CONN_AISEARCH_DEFAULT": connection,
        "AISEARCH_INSTANCE_ID": "docs",
    }


def migrate(airflow: str, env: dict[str, str], log_dir: Path) -> None:
    with (log_dir / "db-migrate.log").open("wb") as out:
        done = subprocess.run([airflow, "db", "migrate"], env=env, stdout=out, stderr=subprocess.STDOUT)
    if done.returncode:
        raise DeployCheckFailed(f"airflow db migrate failed (rc {done.returncode}); see {log_dir / 'db-migrate.log'}")


def start_components(procs: Processes, airflow: str, env: dict[str, str], api_port: int) -> None:
    """api-server, scheduler, dag-processor, two triggerers and two Celery workers."""
    procs.start("api-server", [airflow, "api-server", "--host", "127.0.0.1", "--port", str(api_port)], env, tier=1)
    procs.start("scheduler", [airflow, "scheduler"], env, tier=1)
    procs.start("dag-processor", [airflow, "dag-processor"], env, tier=1)
    for n in (1, 2):
        own = {**env, "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": str(free_port())}
        procs.start(f"triggerer-{n}", [airflow, "triggerer"], own, tier=1)
    for n in (1, 2):
        own = {**env, "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(free_port())}
        argv = [airflow, "celery", "worker", "--concurrency", str(WORKER_CONCURRENCY)]
        procs.start(f"worker-{n}", [*argv, "--celery-hostname", f"worker{n}@deploy-check"], own, tier=1)


class Api:
    """The Airflow public REST API (v2), as a user calls it."""

    def __init__(self, base: str) -> None:
        self.base = base.rstrip("/")

    def call(self, method: str, path: str, body: Any = None) -> Any:
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(f"{self.base}{path}", data=data, method=method)
        req.add_header("Content-Type", "application/json")
        req.add_header("Accept", "application/json")
        try:
            with urllib.request.urlopen(req, timeout=30) as resp:
                raw = resp.read()
        except urllib.error.HTTPError as exc:
            detail = exc.read().decode(errors="replace")[:500]
            raise DeployCheckFailed(f"{method} {path}: HTTP {exc.code} {detail}") from exc
        return json.loads(raw) if raw else None

    def get(self, path: str) -> Any:
        return self.call("GET", path)

    @staticmethod
    def q(value: str) -> str:
        return quote(value, safe="")

    def health(self) -> dict[str, Any]:
        result: dict[str, Any] = self.get("/api/v2/monitor/health")
        return result

    def dag_ids(self) -> set[str]:
        return {d["dag_id"] for d in self.get("/api/v2/dags?limit=1000")["dags"]}

    def unpause(self, dag_id: str) -> None:
        self.call("PATCH", f"/api/v2/dags/{self.q(dag_id)}", {"is_paused": False})

    def trigger(self, dag_id: str) -> str:
        run = self.call("POST", f"/api/v2/dags/{self.q(dag_id)}/dagRuns", {"logical_date": None})
        return str(run["dag_run_id"])

    def runs(self, dag_id: str) -> list[dict[str, Any]]:
        runs: list[dict[str, Any]] = self.get(f"/api/v2/dags/{self.q(dag_id)}/dagRuns?limit=100")["dag_runs"]
        return runs

    def run(self, dag_id: str, run_id: str) -> dict[str, Any]:
        run: dict[str, Any] = self.get(f"/api/v2/dags/{self.q(dag_id)}/dagRuns/{self.q(run_id)}")
        return run

    def task_instances(self, dag_id: str, run_id: str) -> list[dict[str, Any]]:
        path = f"/api/v2/dags/{self.q(dag_id)}/dagRuns/{self.q(run_id)}/taskInstances?limit=1000"
        tis: list[dict[str, Any]] = self.get(path)["task_instances"]
        return tis

    def upstream_asset_events(self, dag_id: str, run_id: str) -> list[dict[str, Any]]:
        path = f"/api/v2/dags/{self.q(dag_id)}/dagRuns/{self.q(run_id)}/upstreamAssetEvents"
        events: list[dict[str, Any]] = self.get(path)["asset_events"]
        return events

    def alive_triggerers(self) -> int:
        jobs = self.get("/api/v2/jobs?job_type=TriggererJob&is_alive=true&limit=100")
        return int(jobs["total_entries"])


def wait_ready(api: Api, procs: Processes, expected_dags: set[str], timings: dict[str, float]) -> None:
    """Wait until the api-server answers, every component reports healthy, and every DAG is parsed."""
    started = time.monotonic()

    def components_alive() -> None:
        for child in procs.children:
            if child.proc.poll() is not None:
                raise DeployCheckFailed(f"{child.name} exited with code {child.proc.returncode}")

    def api_up() -> bool:
        components_alive()
        return http_ok(f"{api.base}/api/v2/monitor/health")

    wait_until("api-server answering /api/v2/monitor/health", api_up, 180)
    timings["api-server healthy"] = time.monotonic() - started

    def healthy() -> bool:
        components_alive()
        health = api.health()
        return all(
            (health.get(part) or {}).get("status") == "healthy"
            for part in ("metadatabase", "scheduler", "triggerer", "dag_processor")
        )

    wait_until("scheduler, triggerer and dag-processor healthy", healthy, 180)
    timings["scheduler, triggerer, dag-processor healthy"] = time.monotonic() - started

    def two_triggerers() -> bool:
        components_alive()
        return api.alive_triggerers() >= 2

    wait_until("two triggerers alive", two_triggerers, 120)
    timings["both triggerers alive"] = time.monotonic() - started

    def parsed() -> bool:
        components_alive()
        return expected_dags <= api.dag_ids()

    wait_until(f"DAGs parsed: {sorted(expected_dags)}", parsed, 180)
    timings["all example DAGs parsed"] = time.monotonic() - started
    log(f"deployment ready in {timings['all example DAGs parsed']:.1f} s")
