"""Scenario 3 of ``make deploy-check``: triggerer failover.

Runs right after scenario 2, on 2's still-deferred sensors (:func:`~deploycheck.waiters.take_over_waiting`;
it sets them up itself when 2 did not run or failed) plus a few sensors each on the only running job of
its own instance. The triggerer holding the most waiters (among those holding a follow sensor) is
SIGKILLed with its process group; during the gap one job it watched is superseded (``start_job`` on
that job's own instance). Measured: the seconds until Airflow considers it dead and until every one of
its task instances is held by the other triggerer, in seconds and heartbeats. Then the jobs end (most
``completed``, a few ``failed``): every task instance must end in the matching state, and the
superseded job's sensor must end on its successor (XCom ``id`` and ``followed_from``). The killed
triggerer is started again under the same name.

Airflow 3.3.2's rule for a dead triggerer (``airflow/models/trigger.py``, ``Trigger.assign_unassigned``):
a trigger is free for another triggerer when its triggerer's job has
``latest_heartbeat <= utcnow() - [triggerer] triggerer_health_check_threshold`` (an absolute number of
seconds, 30 by default); the 2.1 x heartrate grace of ``airflow/jobs/job.py`` (``health_check_threshold``)
applies only to job types other than scheduler, triggerer and dag-processor. The other triggerer picks
the triggers up on its next loop (``TriggererJobRunner.run_once``: ``load_triggers`` about every second).
"""

from __future__ import annotations

import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Mapping

from deploycheck.harness import Deployment, ScenarioResult
from deploycheck.services import DeployCheckFailed, free_port, log, wait_until
from deploycheck.waiters import (
    FOLLOW_DAG,
    JOB_SECONDS,
    SHARED_DAGS,
    WAITER_DAGS,
    alive_triggerer_ids,
    cleanup,
    finish_waiting,
    holder_of,
    sensor_tis,
    start_waiting,
    take_over_waiting,
    xcom_value,
)

#: Extra settings every component gets: a failover check in seconds, not the default 30.
JOB_HEARTBEAT_SEC = 2
HEALTH_CHECK_THRESHOLD = 10
CONFIG = {
    "AIRFLOW__TRIGGERER__JOB_HEARTBEAT_SEC": str(JOB_HEARTBEAT_SEC),
    "AIRFLOW__TRIGGERER__TRIGGERER_HEALTH_CHECK_THRESHOLD": str(HEALTH_CHECK_THRESHOLD),
}
#: The DAGs start_waiting triggers (when scenario 2 handed over none).
DAG_IDS = list(WAITER_DAGS)

#: Map indices (per shared DAG) whose job ends ``failed``: those sensors must fail.
FAILING = {SHARED_DAGS[0]: (0, 17, 33), SHARED_DAGS[1]: (5, 42)}


def choose_victim(holders: Mapping[str, Counter[str]], follow_keys: Iterable[str]) -> str | None:
    """
    The triggerer job id to kill: the one holding the most waiters among those holding a follow waiter.

    :param holders: Triggerer job id -> Counter of waiter keys (``dag_id`` -> waiters) it holds.
    :param follow_keys: The keys (DAG ids) of follow waiters.
    """
    follow = set(follow_keys)
    candidates = [job for job, held in holders.items() if any(held[k] for k in follow)]
    if not candidates:
        return None
    return max(candidates, key=lambda job: (sum(holders[job].values()), job))


def in_heartbeats(seconds: float, heartbeat: float) -> float:
    """``seconds`` as a number of triggerer heartbeats."""
    return seconds / heartbeat if heartbeat > 0 else float("nan")


def _restart_triggerer(dep: Deployment, name: str) -> None:
    """Start a killed triggerer again, with a trigger log server port free now (as each triggerer gets its own)."""
    dep.procs.restart(name, env={**dep.env, "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": str(free_port())})


def failover(dep: Deployment) -> ScenarioResult:
    """Scenario 3: SIGKILL the triggerer holding the waiters; the other one takes them over."""
    result = ScenarioResult(3, "Triggerer failover: SIGKILL the triggerer holding the deferred sensors")
    waiting = take_over_waiting()
    reused = waiting is not None
    killed: str | None = None
    try:
        if waiting is None:
            waiting = start_waiting(dep)
        tis = sensor_tis(dep, waiting.runs)
        holders: dict[str, Counter[str]] = defaultdict(Counter)
        for w in waiting.waits:
            holder = holder_of(tis[w.key])
            if holder:
                holders[holder][w.dag_id] += 1
        victim = choose_victim(holders, [FOLLOW_DAG])
        if victim is None:
            raise DeployCheckFailed(f"no triggerer holds a follow sensor: {dict(holders)}")
        _, job_owner = waiting.sampler.snapshot()
        name = job_owner.get(victim)
        if name is None:
            raise DeployCheckFailed(f"no triggerer process has the logs of triggerer job {victim} open: {job_owner}")
        victim_keys = [w.key for w in waiting.waits if holder_of(tis[w.key]) == victim]
        gone = {w.key: w for w in waiting.waits if w.key in set(victim_keys)}
        superseded = [w for w in gone.values() if w.dag_id == FOLLOW_DAG][:1]
        killed = name
        log(f"scenario 3: SIGKILL {name} (triggerer job {victim}, {len(victim_keys)} waiters)")
        killed_at = dep.procs.kill(name)
        successors: dict[tuple[str, int], tuple[str, str]] = {}
        for w in superseded:
            successor = dep.emulator.start_job(instance=w.instance_id, duration=JOB_SECONDS)
            successors[w.key] = (w.job_id, str(successor["id"]))
        supersede_after = time.time() - killed_at
        dead_after: float | None = None
        taken_by: set[str] = set()

        runs = waiting.runs

        def taken_over() -> bool:
            nonlocal dead_after
            if dead_after is None and victim not in alive_triggerer_ids(dep):
                dead_after = time.time() - killed_at
            now_tis = sensor_tis(dep, runs)
            held = [holder_of(now_tis[k]) for k in victim_keys]
            if all(h is not None and h != victim for h in held):
                taken_by.update(h for h in held if h)
                return True
            return False

        wait_until("the other triggerer holding the killed one's sensors", taken_over, 120, interval=0.25)
        takeover = time.time() - killed_at
        log(f"scenario 3: taken over by triggerer job(s) {sorted(taken_by)} {takeover:.1f} s after the kill")
        _restart_triggerer(dep, name)
        killed = None
        done = finish_waiting(dep, waiting, FAILING)
        wait_until("two triggerers alive again", lambda: dep.api.alive_triggerers() >= 2, 120)
        end_states = sensor_tis(dep, waiting.runs)
        followed: list[tuple[tuple[str, int], str, str, str, bool]] = []
        for key, (old, new) in successors.items():
            state = end_states[key]["state"]
            if state != "success":
                followed.append((key, old, new, f"nothing (the sensor is {state})", False))
                continue
            value = xcom_value(dep, key[0], waiting.runs[key[0]], "wait", key[1])
            got = str(value.get("id")) if isinstance(value, dict) else repr(value)
            ok = isinstance(value, dict) and got == new and value.get("followed_from") == [old]
            followed.append((key, old, new, got, ok))
        failures = [
            f"{k[0]}[{k[1]}] ended on {got}, not on the successor {new} of job {old} (superseded during the gap)"
            for k, old, new, got, ok in followed
            if not ok
        ]
        failures += done["wrong"]
        if not successors:
            failures.append("no follow sensor on the killed triggerer: nothing superseded during the gap")
        if supersede_after >= takeover:
            failures.append(f"the supersede ({supersede_after:.1f} s) came after the takeover ({takeover:.1f} s)")
        want_failed = sum(len(v) for v in FAILING.values())
        result.figures = {
            "[triggerer] job_heartbeat_sec": f"{JOB_HEARTBEAT_SEC}",
            "triggerer_health_check_threshold": f"{HEALTH_CHECK_THRESHOLD} s",
            "dead after": f"{dead_after:.1f} s" if dead_after is not None else "?",
            "takeover": f"{takeover:.1f} s = {in_heartbeats(takeover, JOB_HEARTBEAT_SEC):.1f} heartbeats",
            "sensors taken over": str(len(victim_keys)),
            "supersede in the gap followed": "yes" if followed and all(f[-1] for f in followed) else "no",
            "end states": ", ".join(f"{s} {n}" for s, n in sorted(done["states"].items())),
        }
        origin = "Reuses scenario 2's" if reused else "Sets up its own (scenario 2 handed none over)"
        result.details = [
            f"{origin} {len(waiting.waits)} deferred sensors "
            f"({', '.join(f'`{d}`' for d in waiting.runs)}). Components run with "
            f"`[triggerer] job_heartbeat_sec = {JOB_HEARTBEAT_SEC}` and "
            f"`triggerer_health_check_threshold = {HEALTH_CHECK_THRESHOLD}` (defaults 5 and 30) to keep it short.",
            "",
            f"SIGKILL of `{name}`'s process group (triggerer job {victim}, holding {len(victim_keys)} sensors; "
            f"holders before: {', '.join(f'job {j}: {sum(c.values())}' for j, c in sorted(holders.items()))}). "
            f"{supersede_after:.1f} s later, during the gap, job(s) "
            f"{', '.join(old for old, _ in successors.values())} were superseded (`start_job` on their own instance).",
            "",
            "| step | seconds after the kill | heartbeats |",
            "|---|---|---|",
            f"| job not alive in `/api/v2/jobs?is_alive=true` | {dead_after or float('nan'):.1f} | "
            f"{in_heartbeats(dead_after or float('nan'), JOB_HEARTBEAT_SEC):.1f} |",
            f"| every one of its sensors held by triggerer job(s) {', '.join(sorted(taken_by))} | {takeover:.1f} | "
            f"{in_heartbeats(takeover, JOB_HEARTBEAT_SEC):.1f} |",
            "",
            "Airflow 3.3.2's rule (`Trigger.assign_unassigned`, `airflow/models/trigger.py`): a trigger moves when "
            "its triggerer's `latest_heartbeat` is older than `[triggerer] triggerer_health_check_threshold` "
            "seconds; the 2.1 x heartrate grace (`airflow/jobs/job.py`, `health_check_threshold`) is for other job "
            f"types. So the takeover comes {HEALTH_CHECK_THRESHOLD - JOB_HEARTBEAT_SEC}-{HEALTH_CHECK_THRESHOLD} s "
            "after the kill (the last heartbeat was up to one heartbeat before it), plus the other triggerer's "
            "next loop (about 1 s).",
            "",
            f"Then {sum(len(w) for w in [waiting.waits])} jobs ended: {want_failed} `failed`, the rest `completed`. "
            f"Sensor end states: {dict(done['states'])}; runs: {done['runs']} "
            f"({done['seconds']:.0f} s from the end of the jobs to every run ended).",
            *(
                f"Superseded {old} -> successor {new}: `{k[0]}[{k[1]}]` ended on {got} ({'ok' if ok else 'WRONG'})."
                for k, old, new, got, ok in followed
            ),
        ]
        if failures:
            result.fail("; ".join(failures))
        else:
            result.passed = True
        waiting.sampler.stop()
        waiting = None
    except DeployCheckFailed as exc:
        result.fail(str(exc))
    finally:
        if killed is not None:  # failed between the kill and the restart: later scenarios need two triggerers
            _restart_triggerer(dep, killed)
        if waiting is not None:
            cleanup(dep, waiting)
    return result.finish()


SCENARIOS: dict[int, Callable[[Deployment], ScenarioResult]] = {3: failover}
