"""``make deploy-check``: a real, distributed Airflow 3 deployment on loopback, and scenarios run against it.

What it brings up, all from one temp dir and on ports chosen at run time (never the system services):

- PostgreSQL (``initdb`` + ``postgres``) as the metadata database and the Celery result backend;
- Redis as the Celery broker;
- the AI Search emulator (``python -m airflow_provider_aisearch.emulator``), its connection exported as
  ``AIRFLOW_CONN_AISEARCH_DEFAULT`` to every component;
- Airflow: api-server, scheduler, dag-processor, two triggerers and two Celery workers (CeleryExecutor),
  simple auth manager with everyone admin, DAGs from ``example_dags/``.

The scenarios come from the modules in :data:`MODULES` (each has ``SCENARIOS``: number -> function
taking a :class:`~deploycheck.harness.Deployment` and returning a :class:`~deploycheck.harness.ScenarioResult`;
optionally ``CONFIG``, settings every component gets, and ``DAG_IDS``, DAGs of ``tests/deploy_dags/`` to
wait for). They run one after another against the same deployment. A full passing run writes
``docs/deployment.md`` and the summary figures in ``docs/deploying.md``; a failing scenario
prints the last lines of each component's log and the exit code is non-zero.

Every process is its own process group and is stopped by PID in ``finally`` (SIGTERM, SIGKILL after a
grace period); the run then checks that no process of it survived and removes the temp dir.
"""

from __future__ import annotations

import argparse
import importlib
import os
import platform
import secrets
import shutil
import signal
import sys
import tempfile
import time
import traceback
import uuid
from collections.abc import Callable
from importlib.metadata import version
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from deploycheck import airflow as af
from deploycheck.emulator_process import Emulator, start_emulator
from deploycheck.harness import Deployment, ScenarioResult
from deploycheck.report import update_summary, write_report
from deploycheck.scenario1 import example_dags
from deploycheck.services import (
    DeployCheckFailed,
    Processes,
    free_port,
    log,
    start_postgres,
    start_redis,
    tail,
)

REPO = Path(__file__).resolve().parents[1]
REPORT = REPO / "docs" / "deployment.md"
SUMMARY = REPO / "docs" / "deploying.md"
#: Modules of scenarios, in the order they run.
MODULES = [
    "scenario1",
    "scenario_polling",
    "scenario_failover",
    "scenario_worker_kill",
    "scenario_clear",
    "scenario_mark_failed",
    "scenario_db_connection",
    "scenario_ratelimit",
    "scenario_events",
    "scenario_revoked",
]


def versions() -> dict[str, str]:
    found = {"python": platform.python_version()}
    for dist in ("apache-airflow", "apache-airflow-providers-celery", "celery", "psycopg2-binary", "asyncpg"):
        try:
            found[dist] = version(dist)
        except Exception:
            found[dist] = "missing"
    return found


def load_scenarios() -> tuple[dict[int, Callable[[Deployment], ScenarioResult]], dict[str, str], list[str]]:
    """Every registered scenario by number, the settings they need, and the scenario DAGs to wait for."""
    scenarios: dict[int, Callable[[Deployment], ScenarioResult]] = {}
    config: dict[str, str] = {}
    dag_ids: list[str] = []
    for name in MODULES:
        module = importlib.import_module(f"deploycheck.{name}")
        scenarios.update(module.SCENARIOS)
        config.update(getattr(module, "CONFIG", {}))
        dag_ids += getattr(module, "DAG_IDS", [])
    return dict(sorted(scenarios.items())), config, dag_ids


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--keep", action="store_true", help="keep the temp dir (logs, Airflow home) for debugging")
    parser.add_argument(
        "--report",
        type=Path,
        default=None,
        help=(
            f"where the figures go (default: {REPORT.relative_to(REPO)} and the summary in "
            f"{SUMMARY.relative_to(REPO)}, after a full passing run)"
        ),
    )
    parser.add_argument("--only", default="", help="comma-separated scenario numbers to run (default: all)")
    args = parser.parse_args(argv)
    if int(version("apache-airflow").split(".")[0]) < 3:
        log(f"cannot run: needs Airflow 3 (this is {version('apache-airflow')})")
        return 2
    scenarios, scenario_config, scenario_dags = load_scenarios()
    if args.only:
        wanted = {int(n) for n in args.only.split(",") if n.strip()}
        unknown = wanted - set(scenarios)
        if unknown:
            parser.error(f"--only: no scenario {sorted(unknown)} (there are {sorted(scenarios)})")
        scenarios = {n: f for n, f in scenarios.items() if n in wanted}
    # `kill <pid>` (or make being stopped) must tear down like Ctrl-C does.
    signal.signal(signal.SIGTERM, _interrupt)
    signal.signal(signal.SIGINT, _interrupt)  # also when started with SIGINT ignored (a background job)
    started = time.monotonic()
    base = Path(tempfile.mkdtemp(prefix="aisearch-deploy-check-"))
    base.chmod(0o755)  # the postgres user must reach its data dir under it
    log_dir = base / "logs"
    log_dir.mkdir()
    procs = Processes(run_id=uuid.uuid4().hex, log_dir=log_dir)
    airflow = str(Path(sys.executable).with_name("airflow"))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "AISEARCH_"))}
    timings: dict[str, float] = {}
    results: list[ScenarioResult] = []
    emulator: Emulator | None = None
    failure = ""
    try:
        db_url = start_postgres(procs, base, env)
        timings["PostgreSQL initdb + ready"] = time.monotonic() - started
        broker = start_redis(procs, base, env)
        timings["Redis ready"] = time.monotonic() - started
        emulator = start_emulator(procs, sys.executable, env, secrets.token_urlsafe(24))
        timings["emulator ready"] = time.monotonic() - started
        api_port = free_port()
        aenv = af.airflow_env(
            base, REPO, db_url=db_url, broker_url=broker, api_port=api_port, connection=emulator.connection
        )
        aenv = {**env, **aenv, **scenario_config}
        af.migrate(airflow, aenv, log_dir)
        timings["airflow db migrate done"] = time.monotonic() - started
        af.start_components(procs, airflow, aenv, api_port)
        api = af.Api(f"http://127.0.0.1:{api_port}")
        manual, assets = example_dags(REPO)
        ready: dict[str, float] = {}
        af.wait_ready(api, procs, set(manual + assets + scenario_dags), ready)
        offset = timings["airflow db migrate done"]
        timings.update({step: offset + t for step, t in ready.items()})
        dep = Deployment(api, emulator, procs, REPO, Path(aenv["AIRFLOW_HOME"]), aenv, airflow, log_dir, timings)
        dep.selected = tuple(scenarios)
        for number, scenario in scenarios.items():
            log(f"=== scenario {number} ===")
            try:
                result = scenario(dep)
            except (DeployCheckFailed, Exception) as exc:  # the next scenarios still run
                if not isinstance(exc, DeployCheckFailed):
                    traceback.print_exc()
                result = ScenarioResult(number, f"scenario {number}").fail(f"{type(exc).__name__}: {exc}")
            results.append(result.finish())
            verdict = "passed" if result.passed else f"FAILED: {result.failure}"
            log(f"scenario {number}: {verdict} ({result.seconds:.0f} s)")
        failed = [r for r in results if not r.passed]
        if failed:
            failure = "; ".join(f"scenario {r.number} ({r.title}): {r.failure}" for r in failed)
    except DeployCheckFailed as exc:
        failure = str(exc)
    except KeyboardInterrupt:
        failure = "interrupted"
    except Exception as exc:  # an unexpected error still tears down and shows the components' logs
        traceback.print_exc()
        failure = f"{type(exc).__name__}: {exc}"
    finally:
        # A second Ctrl-C (or SIGTERM) must not cut the teardown short and leave components behind;
        # the teardown is bounded anyway (SIGKILL after a grace period).
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        requests = dict(emulator.request_counts()) if emulator and emulator.proc.poll() is None else {}
        workers = {
            c.name: c.log_path.read_text(errors="replace").count(" succeeded in ")
            for c in procs.children
            if c.name.startswith("worker-")
        }
        if failure:
            log(f"FAILED: {failure}")
            secrets_ = (emulator.token,) if emulator else ()
            for child in procs.children:
                log(f"--- last lines of {child.name} ---\n{tail(child.log_path, 25, secrets_)}")
        stop_started = time.monotonic()
        procs.stop_all()
        timings["teardown: stop every component (duration)"] = time.monotonic() - stop_started
        left = procs.survivors()
        if left:
            failure = failure or "processes survived the run"
            log(f"FAILED: processes survived the run: {left}")
            for pid, _ in left:
                try:
                    os.kill(pid, 9)
                except ProcessLookupError:
                    pass
        if args.keep:
            log(f"kept {base}")
        else:
            shutil.rmtree(base, ignore_errors=True)
    total = time.monotonic() - started
    passed = not failure and len(results) == len(scenarios)
    full = not args.only
    if passed and (full or args.report):  # the docs keep the figures of the last full passing run
        report = args.report or REPORT
        write_report(report, results, timings, requests, total, versions(), workers)
        log(f"wrote {report}")
        if full and not args.report:
            update_summary(SUMMARY, results, total)
            log(f"updated {SUMMARY}")
    elif results:
        log("not writing the report: the docs keep the figures of the last full passing run")
    log("=== summary ===")
    for r in results:
        figures = "; ".join(f"{k}: {v}" for k, v in r.figures.items())
        log(f"{'ok    ' if r.passed else 'FAILED'} scenario {r.number} ({r.title}), {r.seconds:.0f} s: {figures}")
        if r.failure:
            log(f"       {r.failure}")
    log(f"emulator requests: {sum(requests.values())}")
    log(f"{'passed' if passed else 'FAILED'} in {total:.0f} s")
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main())
