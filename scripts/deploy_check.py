"""``make deploy-check``: a real, distributed Airflow 3 deployment on loopback, and scenarios run against it.

What it brings up, all from one temp dir and on ports chosen at run time (never the system services):

- PostgreSQL (``initdb`` + ``postgres``) as the metadata database and the Celery result backend;
- Redis as the Celery broker;
- the AI Search emulator (``python -m airflow_provider_aisearch.emulator``), its connection exported as
  ``AIRFLOW_CONN_AISEARCH_DEFAULT`` to every component;
- Airflow: api-server, scheduler, dag-processor, two triggerers and two Celery workers (CeleryExecutor),
  simple auth manager with everyone admin, DAGs from ``example_dags/``.

Scenario 1: every example DAG succeeds through the scheduler, unpaused and triggered through the REST
API with no logical date; the asset consumer runs from the producer's event. The figures go to
``docs/deploy-check.md`` and a summary is printed; the exit code is non-zero if a scenario fails.

Every process is its own process group and is stopped by PID in ``finally`` (SIGTERM, SIGKILL after a
grace period); the run then checks that no process of it survived and removes the temp dir.
"""

from __future__ import annotations

import argparse
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
from importlib.metadata import version
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from deploycheck import airflow as af
from deploycheck.scenario1 import DagResult, example_dags, run_scenario
from deploycheck.services import (
    DeployCheckFailed,
    Emulator,
    Processes,
    free_port,
    log,
    start_emulator,
    start_postgres,
    start_redis,
    tail,
)

REPO = Path(__file__).resolve().parents[1]
REPORT = REPO / "docs" / "deploy-check.md"


def versions() -> dict[str, str]:
    found = {"python": platform.python_version()}
    for dist in ("apache-airflow", "apache-airflow-providers-celery", "celery", "psycopg2-binary", "asyncpg"):
        try:
            found[dist] = version(dist)
        except Exception:
            found[dist] = "missing"
    return found


def write_report(
    path: Path,
    results: list[DagResult],
    timings: dict[str, float],
    requests: dict[str, int],
    total: float,
    passed: bool,
    service_versions: dict[str, str],
    workers: dict[str, int],
) -> None:
    lines = [
        "# `make deploy-check`: the last run",
        "",
        "Written by `scripts/deploy_check.py`. A real Airflow 3 deployment on loopback: PostgreSQL metadata DB,",
        "CeleryExecutor with a Redis broker, api-server, scheduler, dag-processor, **two** triggerers and **two**",
        "Celery workers, the AI Search emulator as the API. Every DAG is unpaused and triggered through the REST",
        "API with no logical date, as a user does.",
        "",
        f"Run on {time.strftime('%Y-%m-%d')} ({'passed' if passed else 'FAILED'}, {total:.0f} s from start to "
        "teardown).",
        "",
        "| version | |",
        "|---|---|",
        *(f"| {name} | {value} |" for name, value in service_versions.items()),
        "",
        "## Scenario 1: every example DAG succeeds through the scheduler",
        "",
        "| DAG | run type | state | seconds | emulator requests | deferred tries (triggerer job ids) | note |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in results:
        seconds = f"{r.seconds:.1f}" if r.seconds else "-"
        reqs = str(r.requests) if r.requests else "-"
        note = r.note + (f"; failed: {', '.join(r.failed_tasks)}" if r.failed_tasks else "")
        deferred = f"{r.deferred} ({', '.join(sorted(r.triggerers))})" if r.deferred else "-"
        lines.append(f"| `{r.dag_id}` | {r.run_type} | {r.state} | {seconds} | {reqs} | {deferred} | {note} |")
    lines += [
        "",
        "Seconds: from the trigger to the run's end (for the asset consumer: from the producer's trigger).",
        "Emulator requests: every request the emulator served while that DAG ran (the DAGs run one after another).",
        "Deferred tries: task tries whose trigger ran in a triggerer",
        "(one `*.log.trigger.<triggerer job id>.log` each).",
        "",
        "Celery tasks run per worker: " + ", ".join(f"{name} {count}" for name, count in workers.items()) + ".",
        "",
        "## Startup (seconds from the start of the check, unless marked as a duration)",
        "",
        "| step | seconds |",
        "|---|---|",
        *(f"| {step} | {seconds:.1f} |" for step, seconds in timings.items()),
        "",
        "## Emulator requests over the whole run",
        "",
        "| request | count |",
        "|---|---|",
        *(f"| `{route}` | {count} |" for route, count in sorted(requests.items(), key=lambda kv: (-kv[1], kv[0]))),
        "",
    ]
    path.write_text("\n".join(lines))


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--keep", action="store_true", help="keep the temp dir (logs, Airflow home) for debugging")
    parser.add_argument("--report", type=Path, default=REPORT, help="where the figures go")
    args = parser.parse_args(argv)
    if int(version("apache-airflow").split(".")[0]) < 3:
        log(f"cannot run: needs Airflow 3 (this is {version('apache-airflow')})")
        return 2
    # `kill <pid>` (or make being stopped) must tear down like Ctrl-C does.
    signal.signal(signal.SIGTERM, _interrupt)
    started = time.monotonic()
    base = Path(tempfile.mkdtemp(prefix="aisearch-deploy-check-"))
    base.chmod(0o755)  # the postgres user must reach its data dir under it
    log_dir = base / "logs"
    log_dir.mkdir()
    procs = Processes(run_id=uuid.uuid4().hex, log_dir=log_dir)
    airflow = str(Path(sys.executable).with_name("airflow"))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "AISEARCH_"))}
    timings: dict[str, float] = {}
    results: list[DagResult] = []
    emulator: Emulator | None = None
    passed = False
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
        aenv = {**env, **aenv}
        af.migrate(airflow, aenv, log_dir)
        timings["airflow db migrate done"] = time.monotonic() - started
        af.start_components(procs, airflow, aenv, api_port)
        api = af.Api(f"http://127.0.0.1:{api_port}")
        manual, assets = example_dags(REPO)
        ready: dict[str, float] = {}
        af.wait_ready(api, procs, set(manual + assets), ready)
        offset = timings["airflow db migrate done"]
        timings.update({step: offset + t for step, t in ready.items()})
        run_scenario(api, emulator, REPO, Path(aenv["AIRFLOW_HOME"]), results, timings)
        passed = bool(results) and all(r.state == "success" for r in results)
        if not passed:
            failure = "scenario 1: " + ", ".join(f"{r.dag_id}={r.state}" for r in results if r.state != "success")
    except DeployCheckFailed as exc:
        failure = str(exc)
    except KeyboardInterrupt:
        failure = "interrupted"
    except Exception as exc:  # an unexpected error still tears down and shows the components' logs
        traceback.print_exc()
        failure = f"{type(exc).__name__}: {exc}"
    finally:
        requests = dict(emulator.request_counts()) if emulator else {}
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
            passed = False
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
    service_versions = versions()
    if passed:  # the docs keep the figures of the last passing run
        write_report(args.report, results, timings, requests, total, passed, service_versions, workers)
        log(f"wrote {args.report}")
    elif results:
        log(f"not writing {args.report}: it keeps the figures of the last passing run")
    log("=== summary ===")
    for r in results:
        log(f"{'ok    ' if r.state == 'success' else 'FAILED'} {r.dag_id} ({r.run_type}): {r.state}, {r.seconds:.1f} s")
    log(f"emulator requests: {sum(requests.values())} ({', '.join(f'{k}: {v}' for k, v in sorted(requests.items()))})")
    log(f"{'passed' if passed else 'FAILED'} in {total:.0f} s")
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main())
