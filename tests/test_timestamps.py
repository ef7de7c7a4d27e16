"""Timestamps as Cloudflare's schema allows them, over real HTTP against the emulator (issue 21, point 9).

Job timestamps are plain strings in the schema and a log's ``created_at`` a plain number: the client
reads the space form Cloudflare sends today, RFC 3339 with fractions and offsets, and epoch seconds
(string or number); log times in seconds or milliseconds. A timestamp it cannot read never fails a
wait: it is kept as sent, logged once, and whether the job ended is read from ``ended_at`` /
``end_reason`` being present. The emulator leaves absent optional fields out and puts a ``path`` on
every 400.
"""

from __future__ import annotations

import asyncio
import logging
import subprocess
import sys
import time
from contextlib import closing
from datetime import datetime, timezone
from typing import Any

import pytest
import requests
from airflow.providers.common.compat.sdk import TaskDeferred

from airflow_provider_aisearch.emulator import AISearchEmulator
from airflow_provider_aisearch.events import event_trigger
from airflow_provider_aisearch.events.event_trigger import AISearchJobEventTrigger
from airflow_provider_aisearch.hooks import AISearchHook
from airflow_provider_aisearch.models.jobs import Job
from airflow_provider_aisearch.triggers import AISearchJobTrigger
from tests.conftest import TOKEN, Connect, MakeEmulator
from tests.operator_helpers import BASE, list_op, make_sensor

#: A started_at with a fraction (the emulator's rfc3339 format keeps microseconds).
STARTED = BASE + 0.123456
UNREADABLE = "not a time"


def moment(seconds: float) -> datetime:
    return datetime.fromtimestamp(seconds, tz=timezone.utc)


def raw_get(emu: AISearchEmulator, suffix: str = "", method: str = "GET", **kwargs: Any) -> requests.Response:
    url = f"{emu.url}/accounts/{emu.account_id}/ai-search/namespaces/default/instances/docs{suffix}"
    kwargs.setdefault("headers", {"Authorization": f"Bearer {TOKEN}"})
    return requests.request(method, url, timeout=10, **kwargs)


def hook_for(emu: AISearchEmulator, connect: Connect) -> closing[AISearchHook]:
    connect(emu)
    return closing(AISearchHook(retry_backoff=0.001))


def warnings_about(caplog: pytest.LogCaptureFixture, job_id: str) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if r.name == "airflow_provider_aisearch.models.timestamps" and job_id in r.getMessage()
    ]


# ---------------------------------------------------------------------------------------------
# Every form the schema allows
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("form", "wire"), [("epoch", int), ("epoch_string", str)])
def test_epoch_second_timestamps_are_read(make_emulator: MakeEmulator, connect: Connect, form: str, wire: type) -> None:
    emu = make_emulator(timestamp_format=form)
    job = emu.add_job("docs", started_at=BASE, duration=50, end_reason="completed", source="user")
    sent = raw_get(emu, f"/jobs/{job.id}").json()["result"]
    assert isinstance(sent["started_at"], wire) and str(sent["started_at"]) == str(int(BASE))
    with hook_for(emu, connect) as hook:
        got = hook.get_job("docs", job.id)
        listed = hook.list_jobs("docs").jobs
    assert got.started_at == moment(BASE) and got.ended_at == got.last_seen_at == moment(BASE + 50)
    assert listed == (got,)
    assert got.unparsed_timestamps == {}
    assert got.to_dict()["started_at"] == "2026-09-21T14:13:20+00:00"


def test_rfc3339_with_fraction_and_offset_is_read(make_emulator: MakeEmulator, connect: Connect) -> None:
    emu = make_emulator(timestamp_format="rfc3339")
    job = emu.add_job("docs", started_at=STARTED, duration=50)
    sent = raw_get(emu, f"/jobs/{job.id}").json()["result"]
    assert sent["started_at"] == "2026-09-21T16:13:20.123456+02:00"
    with hook_for(emu, connect) as hook:
        got = hook.get_job("docs", job.id)
    assert got.started_at == moment(STARTED) and got.started_at.microsecond == 123456
    assert got.ended_at == moment(STARTED + 50)
    assert got.started_at.tzinfo == timezone.utc


def test_space_form_is_read_and_absent_fields_are_left_out(make_emulator: MakeEmulator, connect: Connect) -> None:
    emu = make_emulator(timestamp_format="cloudflare")
    job = emu.add_job("docs", started_at=STARTED, duration=10**10, end_reason="completed")  # running
    sent = raw_get(emu, f"/jobs/{job.id}").json()["result"]
    assert sent["started_at"] == "2026-09-21 14:13:20"
    # Optional, not nullable, in Cloudflare's schema: a running job has no ended_at / end_reason at all.
    assert {"ended_at", "end_reason", "description"}.isdisjoint(sent)
    listed = raw_get(emu, "/jobs").json()["result"]
    assert listed == [sent]
    with hook_for(emu, connect) as hook:
        got = hook.get_job("docs", job.id)
    assert got.started_at == moment(BASE) and got.is_running
    assert emu.jobs("docs")[0]["ended_at"] is None  # the test view still names every field


@pytest.mark.parametrize(("unit", "scale"), [("seconds", 1), ("milliseconds", 1000)])
def test_log_times_in_seconds_or_milliseconds(
    make_emulator: MakeEmulator, connect: Connect, unit: str, scale: int
) -> None:
    emu = make_emulator(log_time_unit=unit)
    job = emu.add_job("docs", started_at=BASE, duration=50, end_reason="error")
    sent = raw_get(emu, f"/jobs/{job.id}/logs").json()["result"]
    assert [entry["created_at"] for entry in sent] == [int(BASE + 50) * scale, int(BASE) * scale, int(BASE) * scale]
    with hook_for(emu, connect) as hook:
        entries = hook.tail_job_logs("docs", job.id, 3)
    assert [e.created_at for e in entries] == [moment(BASE), moment(BASE), moment(BASE + 50)]
    assert entries[-1].message == "Job ended: error"


# ---------------------------------------------------------------------------------------------
# An unreadable timestamp never fails a wait
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("field", ["started_at", "ended_at"])
def test_poking_sensor_finishes_on_a_job_with_an_unreadable_timestamp(
    emu: AISearchEmulator, caplog: pytest.LogCaptureFixture, field: str
) -> None:
    caplog.set_level(logging.INFO)
    job = emu.add_job("docs", duration=1.0, end_reason="completed", overrides={field: UNREADABLE})
    result = make_sensor(job_id=job.id, timeout=10).execute({})
    assert result["status"] == "succeeded"
    assert result[field] == UNREADABLE  # kept as sent in the XCom value
    gets = [r for r in emu.requests if r.route == "jobs" and r.method == "GET"]
    assert len(gets) >= 2  # it polled while the job ran
    assert all(r.status == 200 for r in gets)
    (line,) = warnings_about(caplog, job.id)  # once, not at every poke
    assert f"{field} that is not a timestamp ('{UNREADABLE}')" in line


def test_deferred_sensor_finishes_on_a_job_with_an_unreadable_started_at(
    emu: AISearchEmulator, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    job = emu.add_job("docs", duration=1.0, end_reason="completed", overrides={"started_at": UNREADABLE})
    sensor = make_sensor(job_id=job.id, deferrable=True, poke_interval=0.1, timeout=60)
    with pytest.raises(TaskDeferred) as info:
        sensor.execute({})
    trigger = info.value.trigger
    assert isinstance(trigger, AISearchJobTrigger)

    async def collect() -> list[Any]:
        return [event async for event in trigger.run()]

    (event,) = asyncio.run(asyncio.wait_for(collect(), 20))
    assert event.payload["status"] == "done"
    result = sensor.execute_complete({}, event.payload)
    assert result["status"] == "succeeded" and result["started_at"] == UNREADABLE
    assert len(emu.requests) >= 2 and all(r.status == 200 for r in emu.requests)  # the check, then polls
    assert len(warnings_about(caplog, job.id)) == 1  # once across the worker's check and the trigger's polls


def test_an_ended_job_without_a_readable_ended_at_fires_the_watcher(emu: AISearchEmulator) -> None:
    event_trigger._MEMORY.clear()  # a new triggerer: no in-memory watermark
    running = emu.add_job("docs", duration=3600, source="user", overrides={"ended_at": UNREADABLE})
    watcher = AISearchJobEventTrigger(instance_id="docs", poll_interval=0.05, retry_backoff=0.001)

    async def scenario() -> list[dict[str, Any]]:
        events: list[dict[str, Any]] = []

        async def consume() -> None:
            async for event in watcher.run():
                events.append(event.payload)

        task = asyncio.ensure_future(consume())
        end = time.monotonic() + 20
        while not emu.requests:  # the baseline listing
            assert time.monotonic() < end
            await asyncio.sleep(0.01)
        emu.finish_job("docs", running.id, "completed")
        while not events:
            assert time.monotonic() < end
            await asyncio.sleep(0.01)
        task.cancel()
        try:
            await task
        except asyncio.CancelledError:
            pass
        return events

    (event,) = asyncio.run(asyncio.wait_for(scenario(), 30))
    assert event["id"] == running.id and event["status"] == "succeeded" and event["ended_at"] == UNREADABLE


def test_list_operator_keeps_a_job_with_an_unreadable_started_at(emu: AISearchEmulator) -> None:
    odd = emu.add_job("docs", started_at=BASE, duration=50, overrides={"started_at": UNREADABLE})
    fine = emu.add_job("docs", started_at=BASE + 100, duration=50)
    listed = list_op().execute({})
    assert {j["id"]: j["started_at"] for j in listed} == {odd.id: UNREADABLE, fine.id: "2026-09-21T14:15:00+00:00"}
    bounded = list_op(started_after="2026-09-21T00:00:00Z").execute({})
    assert [j["id"] for j in bounded] == [fine.id]  # an unknown start does not match a bound on it
    assert Job.from_dict(listed[-1]).unparsed_timestamps == {"started_at": UNREADABLE}


# ---------------------------------------------------------------------------------------------
# The emulator as the schema has it
# ---------------------------------------------------------------------------------------------


def test_every_400_carries_a_path(emu: AISearchEmulator) -> None:
    ended = emu.add_job("docs", duration=0)
    answers = [
        raw_get(emu, f"/jobs/{ended.id}", "PATCH", json={"action": "cancel"}),  # Job cannot be cancelled.
        raw_get(emu, f"/jobs/{ended.id}", "PATCH", json={"action": "stop"}),
        raw_get(emu, "/jobs", "POST", json=["not an object"]),
        raw_get(emu, "/jobs", params={"per_page": "51"}),
        raw_get(emu, "/jobs", headers={"Authorization": f"Bearer {TOKEN}", "X-Auth-Email": "a@b.c", "X-Auth-Key": "k"}),
    ]
    assert [a.status_code for a in answers] == [400] * 5
    paths = [[e["path"] for e in a.json()["errors"]] for a in answers]
    assert paths == [[[]], [["action"]], [[]], [["per_page"]], [[]]]


def test_stats_leave_out_an_absent_last_activity(emu: AISearchEmulator) -> None:
    stats = raw_get(emu, "/stats").json()["result"]
    assert "last_activity" not in stats  # no job yet: no activity
    instance = raw_get(emu).json()["result"]
    assert instance["last_activity"] is None  # nullable in the instance's schema: stays null


def test_the_control_channel_switches_the_timestamp_format(make_emulator: MakeEmulator) -> None:
    emu = make_emulator(control=True)
    job = emu.add_job("docs", started_at=STARTED, duration=50)
    root = emu.url.split("/client/v4")[0]
    auth = {"Authorization": f"Bearer {TOKEN}"}
    bad = requests.put(f"{root}/_emulator/settings", json={"timestamp_format": "nope"}, headers=auth, timeout=10)
    assert bad.status_code == 400 and bad.json()["errors"][0]["path"] == []
    settings = {"timestamp_format": "rfc3339", "log_time_unit": "milliseconds"}
    assert requests.put(f"{root}/_emulator/settings", json=settings, headers=auth, timeout=10).status_code == 200
    assert raw_get(emu, f"/jobs/{job.id}").json()["result"]["started_at"] == "2026-09-21T16:13:20.123456+02:00"
    assert raw_get(emu, f"/jobs/{job.id}/logs").json()["result"][0]["created_at"] == int((STARTED + 50) * 1000)


def test_the_command_line_serves_rfc3339_and_millisecond_log_times() -> None:
    args = ["--port", "0", "--token", TOKEN, "--timestamp-format", "rfc3339", "--log-time-unit", "milliseconds"]
    proc = subprocess.Popen(
        [sys.executable, "-m", "airflow_provider_aisearch.emulator", *args], stdout=subprocess.PIPE, text=True
    )
    try:
        assert proc.stdout is not None
        base = proc.stdout.readline().strip().rsplit(" ", 1)[-1]  # "AI Search emulator on <url>"
        jobs_url = f"{base}/accounts/0123456789abcdef0123456789abcdef/ai-search/namespaces/default/instances/docs/jobs"
        auth = {"Authorization": f"Bearer {TOKEN}"}
        job = requests.get(jobs_url, headers=auth, timeout=10).json()["result"][0]
        assert Job.from_api(job).unparsed_timestamps == {}
        assert job["started_at"].endswith("+02:00") and "." in job["started_at"]
        logs = requests.get(f"{jobs_url}/{job['id']}/logs", headers=auth, timeout=10).json()["result"]
        assert logs[0]["created_at"] >= 10**12  # milliseconds
    finally:
        proc.terminate()
        proc.wait(timeout=10)
