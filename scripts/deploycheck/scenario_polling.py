"""Scenario 2 of ``make deploy-check``: shared polling in a real triggerer.

100 mapped deferrable sensors (two DAGs of 50) wait on 100 running jobs of one emulator instance
(:mod:`deploycheck.waiters`). Once all are deferred, the emulator's requests are counted per poll
interval per triggerer: each request's TCP source port (``peer_port``) is mapped to the triggerer whose
process tree held that local port, sampled every 0.2 s from ``/proc`` (psutil;
:mod:`deploycheck.attribution`). Expected: about ``ceil(jobs listed / 50)`` list pages per interval for
each triggerer holding waiters, against 100 GETs per interval unshared, and no per-job GET from a
triggerer. The triggerers' CPU seconds (their process trees, user + system) are recorded.

When scenario 3 (failover) runs later, the sensors stay deferred for it
(:func:`~deploycheck.waiters.hand_over_waiting`).
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable

from deploycheck.attribution import (
    PAGE_SIZE,
    SAMPLE_EVERY,
    attribute,
    expected_pages,
    per_interval,
    tree_cpu_seconds,
    trigger_log_owners,
    triggerer_pids,
)
from deploycheck.harness import Deployment, ScenarioResult
from deploycheck.services import DeployCheckFailed, log
from deploycheck.waiters import (
    FOLLOW_DAG,
    FOLLOW_INSTANCES,
    SHARED_DAGS,
    SHARED_INSTANCE,
    WAITER_DAGS,
    WAITERS_PER_DAG,
    Waiting,
    cleanup,
    finish_waiting,
    hand_over_waiting,
    holder_of,
    records_since,
    sensor_tis,
    start_waiting,
    will_run,
)

#: The DAGs start_waiting triggers (the follow DAG's sensors are scenario 3's).
DAG_IDS = list(WAITER_DAGS)

#: The DAGs' poke_interval (tests/deploy_dags/shared_polling.py).
POKE_INTERVAL = 5.0
#: Poll intervals measured in scenario 2.
INTERVALS = 6
#: Extra list requests allowed per interval per triggerer (a round falling on an interval boundary).
SLACK = 1


def shared_polling(dep: Deployment, *, hand_over: bool | None = None) -> ScenarioResult:
    """Scenario 2: 100 deferred sensors on one instance; list requests per interval per triggerer."""
    result = ScenarioResult(2, "Shared polling in a real triggerer: 100 deferred sensors on one instance")
    if hand_over is None:
        hand_over = will_run(dep, 3)
    waiting: Waiting | None = None
    try:
        waiting = start_waiting(dep)
        sampler = waiting.sampler
        # One interval for the last triggers to join their pollers, then count.
        time.sleep(POKE_INTERVAL)
        pids = triggerer_pids(dep)
        cpu_before = {name: tree_cpu_seconds(pid) for name, pid in pids.items()}
        start = time.time()
        window = INTERVALS * POKE_INTERVAL
        time.sleep(window + 1.0)  # the measurement window itself (plus the last request's arrival)
        cpu_after = {name: tree_cpu_seconds(pid) for name, pid in pids.items()}
        tis = sensor_tis(dep, waiting.runs)
        records = records_since(dep, waiting.first_seq)
        owners, job_owner = sampler.snapshot()
        owner_of = attribute(records, owners)
        table = per_interval(
            records, owner_of, start=start, interval=POKE_INTERVAL, count=INTERVALS, instance=SHARED_INSTANCE
        )
        shared_keys = {(w.dag_id, w.map_index) for w in waiting.waits if w.instance_id == SHARED_INSTANCE}
        holders: Counter[str] = Counter(holder_of(ti) or "none" for key, ti in tis.items() if key in shared_keys)
        logged: Counter[str] = Counter()
        for dag_id in SHARED_DAGS:
            pattern = f"dag_id={dag_id}/run_id={waiting.runs[dag_id]}/**/*.log.trigger.*.log"
            logged += trigger_log_owners((dep.home / "logs").glob(pattern))
        by_name: Counter[str] = Counter()
        unmapped = []
        for job_id, n in holders.items():
            name = job_owner.get(job_id)
            if name is None:
                unmapped.append(job_id)
            else:
                by_name[name] += n
        not_deferred = [f"{k[0]}[{k[1]}]={ti['state']}" for k, ti in tis.items() if ti["state"] != "deferred"]
        pages = expected_pages(len(shared_keys))
        limit = pages + SLACK
        lines = []
        failures = []
        total_trig_lists = 0
        for name in sorted(pids):
            kinds = table.get(name, {})
            lists = kinds.get("list", [0] * INTERVALS)
            gets = kinds.get("get", [0] * INTERVALS)
            total_trig_lists += sum(lists)
            lines.append(
                f"| {name} | {', '.join(j for j, n in job_owner.items() if n == name) or '?'} | {by_name[name]} | "
                f"{' '.join(map(str, lists))} | {sum(gets)} | {cpu_after[name] - cpu_before[name]:.1f} | "
                f"{cpu_after[name]:.1f} |"
            )
            if sum(gets):
                failures.append(f"{name} sent {sum(gets)} per-job GETs on {SHARED_INSTANCE} (want 0: shared listings)")
            if by_name[name]:
                if max(lists) > limit:
                    failures.append(
                        f"{name} (holding {by_name[name]} waiters) sent {max(lists)} list requests in one "
                        f"{POKE_INTERVAL:.0f} s interval (want <= ceil({len(shared_keys)}/{PAGE_SIZE}) + {SLACK} = "
                        f"{limit}); per interval: {lists}"
                    )
                if sum(lists) < INTERVALS - 1:
                    failures.append(f"{name} holds {by_name[name]} waiters but listed only {sum(lists)} times")
        other = table.get("other", {})
        other_total = sum(sum(v) for v in other.values())
        per_interval_total = total_trig_lists / INTERVALS
        ratio = (len(shared_keys) / per_interval_total) if per_interval_total else float("inf")
        if not_deferred:
            failures.append(f"sensors left the deferred state during the measurement: {not_deferred[:10]}")
        if unmapped:
            failures.append(f"triggerer job(s) {unmapped} hold waiters but no triggerer process had their log open")
        result.figures = {
            "waiters": f"{len(shared_keys)} on 1 instance (2 DAGs)",
            "waiters per triggerer": ", ".join(f"{n} {by_name[n]}" for n in sorted(pids)),
            "list requests / interval": ", ".join(
                f"{n} {sum(table.get(n, {}).get('list', [0])) / INTERVALS:.1f}" for n in sorted(pids)
            ),
            "unshared": f"{len(shared_keys)} GETs / interval",
            "ratio": f"{ratio:.0f}x fewer",
            "triggerer CPU s (window)": ", ".join(f"{n} {cpu_after[n] - cpu_before[n]:.1f}" for n in sorted(pids)),
        }
        result.details = [
            f"{len(shared_keys)} mapped deferrable `AISearchJobSensor`s (`{SHARED_DAGS[0]}` and `{SHARED_DAGS[1]}`, "
            f"{WAITERS_PER_DAG} each, `poke_interval={POKE_INTERVAL:.0f}`) on {len(shared_keys)} running jobs of "
            f"instance `{SHARED_INSTANCE}`, plus {len(FOLLOW_INSTANCES)} sensors of `{FOLLOW_DAG}` (scenario 3) on "
            "other instances. All deferred "
            f"{waiting.deferred_after:.0f} s after the trigger; then {INTERVALS} intervals of "
            f"{POKE_INTERVAL:.0f} s were counted. Requests are attributed by their TCP source port to the "
            f"triggerer process tree holding it (sampled every {SAMPLE_EVERY} s, {sampler.samples} samples).",
            "",
            "| triggerer | job id | waiters | list requests per interval | per-job GETs | CPU s (window) | "
            "CPU s (total) |",
            "|---|---|---|---|---|---|---|",
            *lines,
            "",
            f"Expected: at most ceil({len(shared_keys)}/{PAGE_SIZE}) = {pages} list pages per interval per "
            f"triggerer holding waiters (+{SLACK} slack), against {len(shared_keys)} GETs per interval unshared: "
            f"{per_interval_total:.1f} requests per interval from the triggerers, {ratio:.0f}x fewer. "
            f"Requests on `{SHARED_INSTANCE}` from other processes (workers) in the window: {other_total}.",
            "",
            "Waiters per triggerer job: "
            + ", ".join(f"job {j}: {n}" for j, n in sorted(holders.items()))
            + " (REST `triggerer_job` of each task instance); per-trigger log files `*.log.trigger.<job id>.log`: "
            + ", ".join(f"job {j}: {n}" for j, n in sorted(logged.items()))
            + ". Job id to process: the triggerer process tree holding that job's trigger log files open.",
        ]
        if failures:
            result.fail("; ".join(failures))
        else:
            result.passed = True
        log(f"scenario 2: {result.figures}")
        if hand_over and result.passed:
            hand_over_waiting(waiting)
            waiting = None
            log("scenario 2: sensors stay deferred for scenario 3 (failover)")
        else:
            done = finish_waiting(dep, waiting, {})
            if done["wrong"]:
                result.fail(f"after the jobs ended: {done['wrong'][:10]}")
            waiting.sampler.stop()
            waiting = None
    except DeployCheckFailed as exc:
        result.fail(str(exc))
    finally:
        if waiting is not None:
            cleanup(dep, waiting)
    return result.finish()


SCENARIOS: dict[int, Callable[[Deployment], ScenarioResult]] = {2: shared_polling}
