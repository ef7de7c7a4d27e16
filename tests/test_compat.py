"""``compat.py``: what common-compat 1.20.0 (the newest that Python 3.10 can install) lacks, over real HTTP.

``make test`` runs the suite on Python 3.10 (``.venv-py310``), where common-compat is 1.20.0 and these
fallbacks are what the provider runs on. Here, on any venv, common-compat's newer name is taken away so
that the same fallbacks run against the emulator.
"""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import pytest
from airflow.providers.common.compat import connection as compat_connection
from airflow.providers.common.compat.sdk import BaseHook, Connection, redact

from airflow_provider_aisearch.clients import compat
from airflow_provider_aisearch.emulator import AISearchEmulator
from airflow_provider_aisearch.triggers import AISearchJobTrigger
from tests.conftest import TOKEN


@pytest.fixture
def compat_1_20(monkeypatch: pytest.MonkeyPatch) -> None:
    """common-compat as 1.20.0 has it: no ``get_async_extra_dejson`` (1.23 added it with the 3.3.2 fix)."""
    monkeypatch.delattr(compat_connection, "get_async_extra_dejson", raising=False)


@pytest.mark.usefixtures("compat_1_20")
def test_a_trigger_reads_its_connection_without_common_compat_1_23(emu: AISearchEmulator) -> None:
    job = emu.add_job("docs", duration=0.2)
    trigger = AISearchJobTrigger(job_id=job.id, instance_id="docs", poll_interval=0.1, retry_backoff=0.001)

    async def first_event() -> Any:
        return await asyncio.wait_for(anext(aiter(trigger.run())), 30)

    event = asyncio.run(first_event()).payload
    assert (event["status"], event["job"]["id"]) == ("done", job.id)
    assert {r.auth for r in emu.requests} == {"bearer"}  # the token came from the connection it read
    assert [r.status for r in emu.requests_to("jobs")][-1] == 200


@pytest.mark.usefixtures("compat_1_20")
def test_the_fallback_reads_the_connection_off_the_event_loop(
    emu: AISearchEmulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Before Airflow 3.3.2 a connection read masks secrets synchronously, so it must run in a worker thread."""
    on_loop_thread: list[bool] = []
    get_connection = BaseHook.get_connection.__func__  # type: ignore[attr-defined]

    def recording(cls: type[BaseHook], conn_id: str, *args: Any, **kwargs: Any) -> Any:
        on_loop_thread.append(threading.current_thread() is threading.main_thread())
        return get_connection(cls, conn_id, *args, **kwargs)

    monkeypatch.setattr(BaseHook, "get_connection", classmethod(recording))

    async def read() -> tuple[Any, dict[str, Any]]:
        conn = await compat.get_async_connection("aisearch_default")
        return conn, await compat.get_async_extra_dejson(conn)

    conn, extra = asyncio.run(read())  # the event loop runs on the main thread
    assert (conn.password, extra["account_id"]) == (TOKEN, emu.account_id)
    assert True not in on_loop_thread
    if not hasattr(Connection, "aextra_dejson"):  # before 3.3.2: the synchronous read, in a worker thread
        assert on_loop_thread == [False]


def test_mask_secret_registers_with_the_masker_airflow_logs_through() -> None:
    secret = "tok-compat-Sekrit-91d2"
    assert secret in str(redact(f"Authorization: Bearer {secret}"))
    compat.mask_secret(secret)
    assert secret not in str(redact(f"Authorization: Bearer {secret}"))
