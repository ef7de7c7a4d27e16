"""AISearchHook's connection against the emulator over real HTTP: test_connection, settings, secrets."""

from __future__ import annotations

import logging
import time
from typing import Any

import pytest

from airflow_provider_aisearch.emulator import AISearchEmulator, Fault
from airflow_provider_aisearch.exceptions import (
    AISearchError,
    AISearchNotFoundError,
)
from airflow_provider_aisearch.hooks import AISearchHook
from tests.conftest import EMAIL, GLOBAL_KEY, TOKEN, Connect, MakeEmulator

# ---------------------------------------------------------------------------------------------
# test_connection
# ---------------------------------------------------------------------------------------------


def test_test_connection_with_account_token(hook: AISearchHook, emulator: AISearchEmulator) -> None:
    ok, message = hook.test_connection()
    assert ok, message
    assert "account-owned" in message
    assert [r.route for r in emulator.requests] == ["account_verify"]


def test_test_connection_falls_back_to_user_token(make_emulator: MakeEmulator, connect: Connect) -> None:
    emu = make_emulator(token_owner="user")
    connect(emu)
    ok, message = AISearchHook().test_connection()
    assert ok, message
    assert "user-owned" in message
    assert [r.route for r in emu.requests] == ["account_verify", "user_verify"]


def test_test_connection_with_global_key(emulator: AISearchEmulator, connect: Connect) -> None:
    connect(emulator, global_key=True)
    ok, message = AISearchHook().test_connection()
    assert ok, message
    assert EMAIL in message
    assert GLOBAL_KEY not in message
    assert [(r.route, r.auth) for r in emulator.requests] == [("user", "global_key")]


def test_test_connection_bad_token(emulator: AISearchEmulator, connect: Connect) -> None:
    connect(emulator, password="bad-token-0000000")
    ok, message = AISearchHook().test_connection()
    assert not ok
    assert "Invalid API Token" in message
    assert "bad-token-0000000" not in message
    assert len(emulator.requests) == 2


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [({"account_id": None}, "no account_id"), ({"password": ""}, "no API token")],
)
def test_test_connection_missing_settings_sends_nothing(
    emulator: AISearchEmulator, connect: Connect, overrides: dict[str, Any], expected: str
) -> None:
    connect(emulator, **overrides)
    ok, message = AISearchHook().test_connection()
    assert not ok
    assert expected in message
    assert emulator.requests == []


def test_missing_account_id_fails_before_any_request(emulator: AISearchEmulator, connect: Connect) -> None:
    connect(emulator, account_id=None)
    with pytest.raises(AISearchError, match="'aisearch_default' has no account_id"):
        AISearchHook().list_jobs("docs")
    assert emulator.requests == []


def test_hook_does_not_look_up_the_connection_at_init(mocker: Any) -> None:
    lookup = mocker.patch.object(AISearchHook, "get_connection")
    AISearchHook("does_not_exist")
    lookup.assert_not_called()


def test_logs_never_contain_the_token(
    hook: AISearchHook,
    emulator: AISearchEmulator,
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
) -> None:
    caplog.set_level(logging.DEBUG)
    emulator.inject(Fault.http(503), times=2)
    hook.list_jobs("docs")
    with pytest.raises(AISearchNotFoundError):
        hook.get_job("docs", "missing")
    captured = capsys.readouterr()
    text = caplog.text + captured.out + captured.err  # Airflow 3 logs through structlog to stdout
    assert "retrying" in text
    assert TOKEN not in text


# ---------------------------------------------------------------------------------------------
# Gaps found by mutation testing
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("status", ["disabled", "expired"])
def test_test_connection_inactive_token(hook: AISearchHook, emulator: AISearchEmulator, status: str) -> None:
    emulator.token_status = status
    ok, message = hook.test_connection()
    assert not ok
    assert status in message


def test_test_connection_does_not_retry(hook: AISearchHook, emulator: AISearchEmulator, mocker: Any) -> None:
    sleep = mocker.patch("airflow_provider_aisearch.hooks.time.sleep")
    emulator.inject(Fault.http(503), times=10)
    ok, message = hook.test_connection()
    assert not ok
    assert "HTTP 503" in message
    assert len(emulator.requests) == 1
    assert sleep.call_count == 0


def test_test_connection_waits_at_most_its_own_timeout(
    emulator: AISearchEmulator, connect: Connect, monkeypatch: pytest.MonkeyPatch
) -> None:
    connect(emulator)
    monkeypatch.setattr(AISearchHook, "TEST_TIMEOUT", (0.5, 0.5))
    hook = AISearchHook(timeout=(10.0, 60.0))
    emulator.inject(Fault("delay", delay=3.0), times=2)  # verify answers late
    started = time.monotonic()
    ok, message = hook.test_connection()
    assert not ok
    assert time.monotonic() - started < 2.5  # not the hook's 60 s read timeout
    assert "timed out" in message.lower() or "timeout" in message.lower(), message
    assert hook.timeout == (10.0, 60.0)  # restored for the hook's other calls


def test_host_without_scheme_gets_https(monkeypatch: pytest.MonkeyPatch) -> None:
    import json

    conn = {"conn_type": "cloudflare_aisearch", "host": "api.example.com/client/v4/", "password": "t"}
    monkeypatch.setenv("AIRFLOW_CONN_NOSCHEME", json.dumps(conn))
    assert AISearchHook("noscheme").conn_info.base_url == "https://api.example.com/client/v4"


def test_missing_token_gives_a_clear_error(emulator: AISearchEmulator, connect: Connect) -> None:
    connect(emulator, password="")
    with pytest.raises(AISearchError, match="'aisearch_default' has no API token"):
        AISearchHook().list_jobs("docs")
    assert emulator.requests == []


def test_uri_form_connection_keeps_port_and_path(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(
        "AIRFLOW_CONN_CF_URI", "cloudflare-aisearch://:tok@api.example.com:8443/client%2Fv4?account_id=a"
    )
    info = AISearchHook("cf_uri").conn_info
    assert info.base_url == "https://api.example.com:8443/client/v4"
    assert info.account_id == "a"
