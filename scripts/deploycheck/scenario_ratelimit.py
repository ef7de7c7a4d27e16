"""Scenario 8 of ``make deploy-check``: the emulator's rate limiter at a low limit.

Ten deferrable sensors on jobs of ten instances (one shared poller each) at ``poke_interval=1`` want 150
requests per 15 s window; the limit is 100 per 15 s. The waiting sensors must pace themselves from the
``x-ratelimit-*`` headers: no request answered 429 (fault ``rate_limit``), every task succeeds. The
requests are counted per window as the emulator's limiter counts them
(:func:`~deploycheck.attribution.fixed_window_counts`).
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

from deploycheck.attribution import fixed_window_counts, sliding_window_max
from deploycheck.harness import Deployment, ScenarioResult
from deploycheck.scenario1 import TERMINAL, failed_task_logs
from deploycheck.services import DeployCheckFailed, log
from deploycheck.waiters import (
    END_TIMEOUT,
    JOB_SECONDS,
    next_seq,
    records_since,
    sensor_tis,
    trigger_run,
    wait_deferred,
)

RATE_DAG = "deploy_check_rate_limited"
DAG_IDS = [RATE_DAG]

RATE_INSTANCES = tuple(f"deploy-check-rate-{n}" for n in range(10))
RATE_POKE_INTERVAL = 1.0
#: 100 per 15 s: unpaced, the sensors want 150. Its 5 % reserve (5 requests) covers what one triggerer
#: sends that the other has not yet seen in an answer's ``x-ratelimit-remaining``.
RATE_LIMIT = 100
RATE_WINDOW = 15.0
#: Seconds the sensors wait under the limit before their jobs end (two windows and a half).
RATE_MEASURE = 2.5 * RATE_WINDOW


def slowed_down(home: Path, dag_id: str, run_id: str) -> int:
    """Task tries of a run whose trigger log says it polled slower than asked (the rate-limit budget ran low)."""
    found = 0
    for path in (home / "logs").glob(f"dag_id={dag_id}/run_id={run_id}/**/*.log.trigger.*.log"):
        if "instead of" in path.read_text(errors="replace"):
            found += 1
    return found


def rate_limited(dep: Deployment) -> ScenarioResult:
    """Scenario 8: waiting sensors pace themselves under a low emulator rate limit (no 429 lockout)."""
    result = ScenarioResult(8, "The emulator's rate limiter at a low limit: waiting sensors slow down")
    limited = False
    instances_with_jobs: list[str] = []
    try:
        waits = []
        for instance in RATE_INSTANCES:
            dep.emulator.add_instance(instance)
            (job,) = dep.emulator.add_jobs(1, instance=instance, duration=JOB_SECONDS)
            instances_with_jobs.append(instance)
            waits.append({"instance_id": instance, "job_id": str(job["id"])})
        dep.api.unpause(RATE_DAG)
        runs = {RATE_DAG: trigger_run(dep, RATE_DAG, waits)}
        wait_deferred(dep, runs, len(waits))
        first_seq = next_seq(dep)
        dep.emulator.set_rate_limit(RATE_LIMIT, RATE_WINDOW)
        limited = True
        limit_at = time.time()
        log(f"scenario 8: {len(waits)} sensors deferred; rate limit {RATE_LIMIT} per {RATE_WINDOW:.0f} s on")
        time.sleep(RATE_MEASURE)  # the sensors wait under the limit this long before their jobs end
        for instance in RATE_INSTANCES:
            dep.emulator.end_jobs(None, instance=instance)
        instances_with_jobs.clear()
        ended_at = time.time()
        run = dep.api.run(RATE_DAG, runs[RATE_DAG])
        deadline = time.monotonic() + END_TIMEOUT
        while run["state"] not in TERMINAL:
            if time.monotonic() > deadline:
                raise DeployCheckFailed(f"{RATE_DAG} still {run['state']} {END_TIMEOUT:.0f} s after its jobs ended")
            time.sleep(1)
            run = dep.api.run(RATE_DAG, runs[RATE_DAG])
        resumed_after = time.time() - ended_at
        records = records_since(dep, first_seq)
        dep.emulator.set_rate_limit(None)
        limited = False
        served = [r for r in records if r.get("fault") != "rate_limit" and r.get("status") != 429]
        refused = [r for r in records if r.get("fault") == "rate_limit" or r.get("status") == 429]
        windows = fixed_window_counts([float(r["at"]) for r in records], RATE_WINDOW)
        sliding = sliding_window_max([float(r["at"]) for r in served], RATE_WINDOW)
        tis = sensor_tis(dep, runs)
        states = Counter(ti["state"] for ti in tis.values())
        slowed = slowed_down(dep.home, RATE_DAG, runs[RATE_DAG])
        demand = len(waits) * RATE_WINDOW / RATE_POKE_INTERVAL
        failures = []
        if refused:
            first = min(float(r["at"]) for r in refused) - limit_at
            failures.append(f"{len(refused)} requests answered 429 (rate_limit lockout), the first {first:.1f} s in")
        if run["state"] != "success" or states.get("success", 0) != len(waits):
            failed = failed_task_logs(dep.api, dep.home, RATE_DAG, runs[RATE_DAG], dep.secrets)
            failures.append(f"{RATE_DAG} ended {run['state']} (sensors: {dict(states)}; failed: {failed})")
        if windows and max(windows) < RATE_LIMIT * 0.8:
            failures.append(
                f"the sensors never came near the limit (at most {max(windows)} of {RATE_LIMIT} in a window): "
                "nothing was proven"
            )
        result.figures = {
            "limit": f"{RATE_LIMIT} / {RATE_WINDOW:.0f} s",
            "waiters": f"{len(waits)} on {len(RATE_INSTANCES)} instances, poke {RATE_POKE_INTERVAL:.0f} s",
            "unpaced demand": f"{demand:.0f} / window",
            "requests served": str(len(served)),
            "max per window": str(max(windows, default=0)),
            "429s": str(len(refused)),
            "sensors slowed": f"{slowed} of {len(waits)}",
        }
        result.details = [
            f"{len(waits)} mapped deferrable sensors (`{RATE_DAG}`, `poke_interval={RATE_POKE_INTERVAL:.0f}`), each on "
            f"the running job of its own instance (one shared poller per instance per triggerer): unpaced they send "
            f"{len(waits)} requests per {RATE_POKE_INTERVAL:.0f} s = {demand:.0f} per {RATE_WINDOW:.0f} s window, "
            f"over the limit of {RATE_LIMIT} (Cloudflare: 1200 per 300 s, then 429 code 971 for a lockout). "
            f"The limit was set once all were deferred; the jobs ended {RATE_MEASURE:.0f} s later.",
            "",
            "| | |",
            "|---|---|",
            f"| requests while limited | {len(records)} ({len(served)} served, {len(refused)} answered 429) |",
            f"| per emulator window (fixed, {RATE_WINDOW:.0f} s) | {', '.join(map(str, windows))} |",
            f"| most in any {RATE_WINDOW:.0f} s (sliding; more than the limit is fine across a reset) | {sliding} |",
            f"| jobs ended -> run ended | {resumed_after:.1f} s |",
            f"| sensor states | {dict(states)} |",
            f"| sensors whose trigger logged a slowdown (`... instead of ...`) | {slowed} of {len(waits)} |",
        ]
        if failures:
            result.fail("; ".join(failures))
        else:
            result.passed = True
        log(f"scenario 8: {result.figures}")
    except DeployCheckFailed as exc:
        result.fail(str(exc))
    finally:
        if limited:
            dep.emulator.set_rate_limit(None)
        for instance in instances_with_jobs:
            try:
                dep.emulator.end_jobs(None, instance=instance, end_reason="cancelled")
            except Exception as exc:
                log(f"could not end the jobs of {instance}: {exc}")
    return result.finish()


SCENARIOS: dict[int, Callable[[Deployment], ScenarioResult]] = {8: rate_limited}
