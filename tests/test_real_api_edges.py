"""The real API's edge cases (issue 11, point 8), against the emulator over real HTTP.

Validation of ``instance_id`` and namespace names is in ``test_validation.py``, timestamps in
``test_jobs.py``.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
from typing import Any
from unittest.mock import MagicMock, PropertyMock

import pytest
from airflow.providers.common.compat.sdk import TaskDeferred

from airflow_provider_aisearch.api import Call, is_already_ended
from airflow_provider_aisearch.emulator import AISearchEmulator, Fault
from airflow_provider_aisearch.exceptions import AISearchError
from airflow_provider_aisearch.hooks import AISearchAsyncClient, AISearchHook
from airflow_provider_aisearch.operators import AISearchCreateJobOperator
from airflow_provider_aisearch.triggers import AISearchJobTrigger

FAST: dict[str, Any] = {"retry_backoff": 0.001}


def create_op(**kwargs: Any) -> AISearchCreateJobOperator:
    kwargs.setdefault("task_id", "create")
    kwargs.setdefault("instance_id", "docs")
    kwargs.setdefault("hook_params", FAST)
    kwargs.setdefault("poll_interval", 0.05)
    kwargs.setdefault("deferrable", False)
    return AISearchCreateJobOperator(**kwargs)


class FakeTI:
    def __init__(self) -> None:
        self.xcom: dict[str, Any] = {}
        self.try_number = 1
        self.map_index = -1
        self.dag_id = "dag"
        self.task_id = "create"
        self.run_id = "run"

    def xcom_push(self, key: str, value: Any) -> None:
        self.xcom[key] = value


def ctx(**values: Any) -> Any:
    return values


def _end_before_the_patch(emu: AISearchEmulator, job_id: str) -> None:
    """The job ends between the caller's GET (running) and its PATCH: the race on_kill must survive."""
    emu.inject(Fault.before(lambda: emu.finish_job("docs", job_id)), method="PATCH")


# ---------------------------------------------------------------------------------------------
# Cancelling a job that has already ended: 400 "Job cannot be cancelled."
# ---------------------------------------------------------------------------------------------


def test_cancelling_an_ended_job_gets_cloudflares_400(emu: AISearchEmulator) -> None:
    job = emu.add_job("docs", duration=0)
    hook = AISearchHook(**FAST)
    with pytest.raises(AISearchError) as info:
        hook.cancel_job("docs", job.id)
    assert info.value.status_code == 400
    assert "Job cannot be cancelled." in str(info.value)
    assert is_already_ended(info.value)
    assert [(r.method, r.status) for r in emu.requests] == [("PATCH", 400)]
    assert emu.jobs("docs")[0]["end_reason"] == "completed"  # unchanged
    # Other 400s are not "already ended".
    other = AISearchError("bad", status_code=400, errors=[{"code": 7001, "message": "action must be 'cancel'"}])
    assert not is_already_ended(other)
    assert not is_already_ended(ValueError("Job cannot be cancelled."))


def test_operator_on_kill_stays_quiet_when_the_job_ends_before_the_patch(emu: AISearchEmulator, mocker: Any) -> None:
    op = create_op()
    job = op.execute(ctx(ti=FakeTI()))
    log = MagicMock()
    mocker.patch.object(AISearchCreateJobOperator, "log", new_callable=PropertyMock, return_value=log)
    _end_before_the_patch(emu, job["id"])
    emu.clear_log()
    op.on_kill()
    assert [(r.method, r.status) for r in emu.requests] == [("GET", 200), ("PATCH", 400)]
    assert emu.jobs("docs")[0]["end_reason"] == "completed"  # it ended on its own, not cancelled
    log.warning.assert_not_called()
    log.error.assert_not_called()
    log.exception.assert_not_called()


def test_operator_on_kill_still_warns_about_other_failures(emu: AISearchEmulator, mocker: Any) -> None:
    op = create_op()
    op.execute(ctx(ti=FakeTI()))
    log = MagicMock()
    mocker.patch.object(AISearchCreateJobOperator, "log", new_callable=PropertyMock, return_value=log)
    emu.inject(Fault.http(403), method="PATCH")
    op.on_kill()
    assert log.warning.call_count == 1


def test_trigger_on_kill_stays_quiet_when_the_job_ends_before_the_patch(emu: AISearchEmulator, mocker: Any) -> None:
    op = create_op(wait_for_completion=True, deferrable=True, timeout=60)
    with pytest.raises(TaskDeferred) as info:
        op.execute(ctx(ti=FakeTI()))
    trigger = info.value.trigger
    assert isinstance(trigger, AISearchJobTrigger) and trigger.cancel_on_kill
    log = MagicMock()
    mocker.patch.object(AISearchJobTrigger, "log", new_callable=PropertyMock, return_value=log)
    _end_before_the_patch(emu, trigger.job_id)
    emu.clear_log()
    asyncio.run(trigger.on_kill())  # no exception
    assert [(r.method, r.status) for r in emu.requests] == [("GET", 200), ("PATCH", 400)]
    assert emu.jobs("docs")[0]["end_reason"] == "completed"
    log.warning.assert_not_called()
    log.exception.assert_not_called()


# ---------------------------------------------------------------------------------------------
# 7017: 503 "Unable to connect to ai search", on every jobs endpoint, transient
# ---------------------------------------------------------------------------------------------


def test_unavailable_7017_is_transient_on_every_jobs_endpoint(emu: AISearchEmulator) -> None:
    hook = AISearchHook(max_retries=2, **FAST)
    ended = emu.add_job("docs", duration=0)

    def twice(method: str) -> None:
        emu.clear_log()
        emu.inject(Fault.unavailable(), method=method, times=2)

    twice("GET")
    assert hook.list_jobs("docs").jobs
    twice("GET")
    assert hook.get_job("docs", ended.id).id == ended.id
    twice("GET")
    assert list(hook.iter_job_logs("docs", ended.id))
    # A create is sent again: the API could not reach AI Search, so no job was started.
    twice("POST")
    created = hook.create_job("docs", description="d")
    assert [r.status for r in emu.requests] == [503, 503, 200]
    assert [j["id"] for j in emu.jobs("docs") if j["ended_at"] is None] == [created.id]
    twice("PATCH")
    assert hook.cancel_job("docs", created.id).id == created.id
    assert [r.status for r in emu.requests] == [503, 503, 200]

    emu.inject(Fault.unavailable(), method="GET", times=3)
    with pytest.raises(AISearchError, match=r"HTTP 503: \[7017\] Unable to connect to ai search") as info:
        hook.get_job("docs", ended.id)
    assert info.value.codes == [7017]


# ---------------------------------------------------------------------------------------------
# Validation errors carry a path
# ---------------------------------------------------------------------------------------------


def test_validation_error_path_is_kept_on_the_exception_and_in_the_message(emu: AISearchEmulator) -> None:
    hook = AISearchHook(**FAST)
    body = {
        "success": False,
        "errors": [{"code": 7001, "message": "String must contain at most 255 character(s)", "path": ["description"]}],
        "result": None,
    }
    emu.inject(Fault.http(400, body), method="POST")
    with pytest.raises(AISearchError) as info:
        hook.create_job("docs", description="x")
    assert info.value.errors == [
        {"code": 7001, "message": "String must contain at most 255 character(s)", "path": ["description"]}
    ]
    assert "(at description)" in str(info.value)
    assert len(emu.requests) == 1  # a 400 is not retried


def test_the_emulators_own_validation_errors_carry_a_path(emu: AISearchEmulator) -> None:
    hook = AISearchHook(**FAST)
    job = emu.add_job("docs")
    path = hook.api.path("docs", job.id)
    with pytest.raises(AISearchError) as info:
        hook.run(hook.api.request(Call("PATCH", path, json_body={"action": "pause"})))
    assert info.value.status_code == 400
    assert info.value.errors[0]["path"] == ["action"]
    assert "(at action)" in str(info.value)
    with pytest.raises(AISearchError) as info:
        hook.run(hook.api.request(Call("GET", hook.api.path("docs"), params={"per_page": 51})))
    assert info.value.errors[0]["path"] == ["per_page"]
    assert [r.status for r in emu.requests] == [400, 400]


# ---------------------------------------------------------------------------------------------
# The un-namespaced paths are deprecated
# ---------------------------------------------------------------------------------------------


def test_legacy_paths_log_a_deprecation_warning_once_per_hook(emu: AISearchEmulator, mocker: Any) -> None:
    log = MagicMock()
    mocker.patch.object(AISearchHook, "log", new_callable=PropertyMock, return_value=log)
    job = emu.add_job("docs", duration=0)
    legacy = AISearchHook(namespace=None, **FAST)
    legacy.get_job("docs", job.id)
    legacy.list_jobs("docs")
    assert [r.route for r in emu.requests] == ["legacy_jobs", "legacy_jobs"]
    warnings = [c for c in log.warning.call_args_list if "deprecated" in str(c)]
    assert len(warnings) == 1
    assert "namespace" in str(warnings[0])

    AISearchHook(namespace=None, **FAST).get_job("docs", job.id)  # another hook warns again
    assert len([c for c in log.warning.call_args_list if "deprecated" in str(c)]) == 2

    log.reset_mock()
    AISearchHook(**FAST).get_job("docs", job.id)  # the namespaced paths: no warning
    AISearchHook(**FAST).get_job("docs", job.id, namespace="default")
    assert [c for c in log.warning.call_args_list if "deprecated" in str(c)] == []


def test_legacy_paths_log_a_deprecation_warning_once_per_async_client(emu: AISearchEmulator) -> None:
    job = emu.add_job("docs", duration=0)
    log = MagicMock()

    async def scenario() -> None:
        async with AISearchAsyncClient(namespace=None, log=log) as client:
            await client.run(client.api.get_job("docs", job.id))
            await client.run(client.api.with_deadline(None).get_job("docs", job.id))
        async with AISearchAsyncClient(log=log) as client:
            await client.run(client.api.get_job("docs", job.id, namespace=None))

    asyncio.run(scenario())
    assert [r.route for r in emu.requests] == ["legacy_jobs"] * 3
    assert len([c for c in log.warning.call_args_list if "deprecated" in str(c)]) == 2  # one per client


# ---------------------------------------------------------------------------------------------
# The emulator's command line
# ---------------------------------------------------------------------------------------------


def test_emulator_command_line_sets_namespaces_email_and_global_key(
    connect: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    cmd = [sys.executable, "-m", "airflow_provider_aisearch.emulator", "--help"]
    help_text = subprocess.run(cmd, capture_output=True, text=True, timeout=60, check=True).stdout
    for option in ("--namespace", "--email", "--global-key", "--instance", "--port"):
        assert option in help_text

    args = [
        "--port",
        "0",
        "--namespace",
        "team-a",
        "--namespace",
        "default",
        "--instance",
        "docs",
        "--instance",
        "team-a/wiki",
        "--email",
        "ops@example.com",
        "--global-key",
        "cli-global-key",
        "--seed-jobs",
        "2",
    ]
    proc = subprocess.Popen(
        [sys.executable, "-m", "airflow_provider_aisearch.emulator", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        assert proc.stdout is not None
        first = proc.stdout.readline()
        second = proc.stdout.readline()
        assert first.startswith("AI Search emulator on http://127.0.0.1:"), first
        conn = json.loads(second.split("=", 1)[1].strip().strip("'"))
        assert conn["login"] == "ops@example.com" and conn["password"] == "cli-global-key"
        assert conn["extra"]["namespace"] == "team-a"
        monkeypatch.setenv("AIRFLOW_CONN_AISEARCH_CLI", json.dumps(conn))
        hook = AISearchHook("aisearch_cli", **FAST)
        assert len(hook.list_jobs("docs").jobs) == 2  # the connection's namespace, team-a
        assert len(hook.list_jobs("wiki").jobs) == 2
        assert len(hook.list_jobs("docs", namespace="default").jobs) == 2
        with pytest.raises(AISearchError, match="HTTP 404"):
            hook.list_jobs("wiki", namespace="default")  # team-a/wiki is only in team-a
        ok, message = hook.test_connection()
        assert ok, message
    finally:
        os.kill(proc.pid, signal.SIGINT)  # the emulator stops on Ctrl-C
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=30)
        if proc.stdout is not None:
            proc.stdout.close()
        if proc.stderr is not None:
            proc.stderr.close()
