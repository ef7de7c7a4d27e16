"""Scenario 6 of ``make deploy-check``: mark a deferred create task failed through the REST API.

Its job is cancelled by the trigger's ``on_kill``, no other request creates or cancels anything (a
running job on another instance, :data:`MARK_FAILED_BYSTANDER`, stays running), and the task stays
failed (no retry).

Its emulator instances and DAG: ``tests/deploy_dags/create_faults.py``; it ends every job of its own it
left running.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from deploycheck import create_tasks as ct
from deploycheck.harness import Deployment, ScenarioResult
from deploycheck.services import log, wait_until

MARK_FAILED_DAG = "deploy_check_mark_failed"
DAG_IDS = [MARK_FAILED_DAG]
#: As in tests/deploy_dags/create_faults.py.
MARK_FAILED_INSTANCE = "create6"
#: Another instance with a running job that marking the task failed must not touch.
MARK_FAILED_BYSTANDER = "create6-other"


@ct.scenario(6, "Mark a deferred create task failed")
def mark_failed(dep: Deployment, result: ScenarioResult) -> None:
    """Scenario 6: mark a deferred create task failed; its job (only) is cancelled, and it stays failed."""
    api, emu = dep.api, dep.emulator
    instance, bystander = MARK_FAILED_INSTANCE, MARK_FAILED_BYSTANDER
    emu.add_instance(instance)
    emu.add_instance(bystander)
    other = emu.add_jobs(1, instance=bystander, duration=ct.LONG_JOB)[0]
    requests = ct.Requests(emu)
    try:
        # Its trigger must be running in a triggerer: only there can on_kill cancel the job.
        what, until = "the task deferred, its trigger running", "it was marked failed"
        run_id, prefix, _, found = ct.trigger_until_job(dep, 6, MARK_FAILED_DAG, instance, "deferred", until, what)
        job_id = found["id"]
        requests.poll()
        before = len(requests.records)
        t_patch = time.monotonic()
        patched_at = time.time()
        ct.mark_task(api, MARK_FAILED_DAG, run_id, ct.TASK, "failed")
        log(f"scenario 6: marked the task failed while deferred on job {job_id}")

        def cancel_seen() -> bool:
            return bool(ct.job_requests(requests.poll()[before:], instance, method="PATCH", job_id=job_id))

        wait_until(f"scenario 6: the cancel request of job {job_id}", cancel_seen, 60)
        cancel = ct.job_requests(requests.records[before:], instance, method="PATCH", job_id=job_id)[0]
        to_cancel = float(cancel["at"]) - patched_at
        # Nothing may follow: no retry (retry_delay is 2 s), no other create or cancel.
        time.sleep(10)
        after = requests.poll()[before:]
        ti = ct.task_instance(api, MARK_FAILED_DAG, run_id, ct.TASK)
        jobs = emu.all_jobs(instance=instance)
        job = next(j for j in jobs if j["id"] == job_id)
        other_now = next(j for j in emu.all_jobs(instance=bystander) if j["id"] == other["id"])
        writes = [r for r in after if r.get("method") in ("POST", "PATCH", "PUT", "DELETE")]
        result.figures["PATCH → cancel request"] = f"{to_cancel:.1f} s"
        result.figures["requests after the PATCH"] = f"{len(after)} ({len(writes)} writes)"
        result.details.append(
            f"- The cancel of `{job_id}` came {to_cancel:.1f} s after the PATCH. Requests in the "
            f"{time.monotonic() - t_patch:.0f} s after the PATCH: "
            + ", ".join(ct.short_request(r) for r in after)
            + f". Task {ti['state']} on try {ti['try_number']}; job {job.get('end_reason')}; "
            f"the other instance's job {'running' if ct.is_running(other_now) else other_now.get('end_reason')}."
        )
        ct.check(job.get("end_reason") == "cancelled", f"job {job_id} ended {job.get('end_reason')!r}, not cancelled")
        ct.check(
            len(writes) == 1,
            f"{len(writes)} writing requests after the PATCH (expected the one cancel): {writes}",
        )
        ct.check(
            len(ct.jobs_of(jobs, prefix)) == 1,
            f"{len(ct.jobs_of(jobs, prefix))} jobs for the task instance (expected 1)",
        )
        ct.check(ct.is_running(other_now), f"the other instance's job ended {other_now.get('end_reason')!r}")
        ct.check(
            (ti["state"], ti["try_number"]) == ("failed", 1),
            f"the task is {ti['state']} on try {ti['try_number']} (expected failed, try 1)",
        )
    finally:
        ct.end_running(emu, instance)
        ct.end_running(emu, bystander)


SCENARIOS: dict[int, Callable[[Deployment], ScenarioResult]] = {6: mark_failed}
