"""Scenario 5 of ``make deploy-check``: clear a running deferred create task through the REST API.

The old try's trigger cancels its job (``on_kill`` in the triggerer); the new try ends ``success`` with
a job of its own, and no job is left running. Both triggerers are paused (SIGSTOP) from just before
the clear until the new try has deferred, so the new try always meets the old job still running and
adopts it, and the old trigger's cancel lands afterwards: the race seen in a real deployment, made
certain, so that the replacement of an adopted job that is then cancelled is what decides the outcome.

Its emulator instance and DAG: ``tests/deploy_dags/create_faults.py``; it ends every job of its own it
left running.
"""

from __future__ import annotations

import signal
import time
from collections.abc import Callable
from typing import Any

from deploycheck import create_tasks as ct
from deploycheck.harness import Deployment, ScenarioResult
from deploycheck.services import DeployCheckFailed, log, signal_pids, tree, wait_until

CLEAR_DAG = "deploy_check_clear_deferred"
DAG_IDS = [CLEAR_DAG]
#: As in tests/deploy_dags/create_faults.py.
CLEAR_INSTANCE = "create5"


@ct.scenario(5, "Clear a running deferred create task")
def clear_deferred(dep: Deployment, result: ScenarioResult) -> None:
    """Scenario 5: clear a deferred create task; the old job is cancelled, the new try gets its own."""
    api, emu, instance = dep.api, dep.emulator, CLEAR_INSTANCE
    emu.add_instance(instance)
    requests = ct.Requests(emu)
    triggerers = [c for c in dep.procs.children if c.name.startswith("triggerer-")]
    paused = False
    try:
        what = "the task deferred on its job"
        run_id, prefix, _, old = ct.trigger_until_job(dep, 5, CLEAR_DAG, instance, "deferred", "it was cleared", what)
        for child in triggerers:
            signal_pids(tree(child.proc.pid), signal.SIGSTOP)
        paused = True
        t_clear = time.monotonic()
        ct.clear_task(api, CLEAR_DAG, run_id, ct.TASK)
        log(f"scenario 5: triggerers paused, cleared the task deferred on job {old['id']}")
        adopted: dict[str, Any] = {}
        try:
            deferring = ("deferred", "success", "failed")
            adopted = ct.wait_retry(api, CLEAR_DAG, run_id, deferring, "scenario 5: the new try deferred", 25)[1]
        except DeployCheckFailed:
            pass  # resume the triggerers anyway (paused too long, Airflow would declare them dead)
        for child in triggerers:
            signal_pids(tree(child.proc.pid), signal.SIGCONT)
        paused = False
        pause = time.monotonic() - t_clear
        new_try = f"try {adopted.get('try_number')} {adopted.get('state')}" if adopted else "not deferred yet"
        posts_during_pause = len(ct.job_requests(requests.poll(), instance, method="POST", job_id=""))
        result.details.append(
            f"- Triggerers paused {pause:.1f} s from the clear until the new try deferred ({new_try}; "
            f"create POSTs so far: {posts_during_pause}, so the new try adopted the old job)."
        )

        def old_cancelled() -> bool:
            job = next((j for j in emu.all_jobs(instance=instance) if j["id"] == old["id"]), old)
            return not ct.is_running(job)

        wait_until(f"scenario 5: old job {old['id']} ended", old_cancelled, 60)

        def end_new_jobs() -> None:
            for job in ct.jobs_of(emu.all_jobs(instance=instance), prefix):
                if job["id"] != old["id"] and ct.is_running(job):
                    emu.end_jobs([job["id"]], instance=instance, end_reason="completed")

        state = ct.wait_run(api, CLEAR_DAG, run_id, tick=end_new_jobs)
        seconds = time.monotonic() - t_clear
        records = requests.poll()
        ti = ct.task_instance(api, CLEAR_DAG, run_id, ct.TASK)
        jobs = emu.all_jobs(instance=instance)
        mine = ct.jobs_of(jobs, prefix)
        old_job = next(j for j in jobs if j["id"] == old["id"])
        new_jobs = [j for j in mine if j["id"] != old["id"]]
        xcom_job = ct.xcom_value(api, CLEAR_DAG, run_id, ct.TASK, "job_id")
        running = [j["id"] for j in jobs if ct.is_running(j)]
        posts = ct.job_requests(records, instance, method="POST", job_id="")
        result.figures["clear → run end"] = f"{seconds:.0f} s"
        result.figures["jobs created"] = str(len(mine))
        result.figures["end reasons"] = ", ".join(f"try{ct.try_of(j)}: {j.get('end_reason')}" for j in reversed(mine))
        result.details.append(
            f"- Run {state}, task {ti['state']} on try {ti['try_number']}, XCom job id `{xcom_job}`; "
            f"create POSTs {len(posts)}; jobs: "
            + ", ".join(f"`{j['id']}` try{ct.try_of(j)} {j.get('end_reason')}" for j in reversed(mine))
            + "."
        )
        ct.check(
            old_job.get("end_reason") == "cancelled",
            f"the old job {old['id']} ended {old_job.get('end_reason')!r}, not cancelled",
        )
        ct.check(ti["state"] == "success", f"the new try ended {ti['state']} (try {ti['try_number']})")
        ct.check(
            len(new_jobs) == 1 and xcom_job == new_jobs[0]["id"] and ct.try_of(new_jobs[0]) == ti["try_number"],
            f"the new try has no job of its own: XCom {xcom_job!r}, new jobs {new_jobs}",
        )
        ct.check(not running, f"jobs left running on {instance}: {running}")
    finally:
        if paused:
            for child in triggerers:
                signal_pids(tree(child.proc.pid), signal.SIGCONT)
        ct.end_running(emu, instance)


SCENARIOS: dict[int, Callable[[Deployment], ScenarioResult]] = {5: clear_deferred}
