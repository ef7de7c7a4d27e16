from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

# Airflow reads its configuration at import time: point it at a throwaway home first.
REPO = Path(__file__).resolve().parents[1]
_AIRFLOW_HOME = tempfile.mkdtemp(prefix="aisearch-airflow-home-")
os.environ["AIRFLOW_HOME"] = _AIRFLOW_HOME
os.environ["AIRFLOW__CORE__LOAD_EXAMPLES"] = "False"
os.environ["AIRFLOW__CORE__DAGS_FOLDER"] = str(REPO / "example_dags")
os.environ["AIRFLOW__CORE__UNIT_TEST_MODE"] = "False"
for _key in [k for k in os.environ if k.startswith("AIRFLOW_CONN_")]:
    del os.environ[_key]

from airflow_provider_aisearch.emulator import AISearchEmulator  # noqa: E402
from airflow_provider_aisearch.hooks import AISearchHook  # noqa: E402

TOKEN = "tok-Sekrit-4f9a2c"  # recognisable, so tests can search for leaks
EMAIL = "ops@example.com"
GLOBAL_KEY = "gk-Sekrit-77b1e0"

#: Type of the ``connect`` and ``make_emulator`` fixtures.
Connect = Callable[..., None]
MakeEmulator = Callable[..., AISearchEmulator]

#: The emulator's timestamp formats a module marked ``both_timestamp_formats`` runs in: the form
#: Cloudflare sends today, and RFC 3339 with fractions and an offset (the schema allows any string).
BOTH_TIMESTAMP_FORMATS = ("cloudflare", "rfc3339")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "both_timestamp_formats: run with the emulator in each of BOTH_TIMESTAMP_FORMATS"
    )


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "timestamp_format" in metafunc.fixturenames and metafunc.definition.get_closest_marker("both_timestamp_formats"):
        metafunc.parametrize("timestamp_format", BOTH_TIMESTAMP_FORMATS, indirect=True)


def pytest_unconfigure(config: pytest.Config) -> None:
    shutil.rmtree(_AIRFLOW_HOME, ignore_errors=True)


@pytest.fixture(autouse=True)
def _fresh_rate_budgets() -> None:
    """
    Each test starts with no rate-limit budget state.

    Budgets are per process, keyed by base URL and credential; every test uses the same token, so an
    emulator that reuses an earlier test's port would otherwise inherit that test's drained budget
    (seen once: an 82 s hold in an unrelated trigger test).
    """
    from airflow_provider_aisearch.api import ratelimit

    with ratelimit._budgets_lock:
        ratelimit._budgets.clear()


@pytest.fixture(autouse=True)
def _fresh_timestamp_warnings() -> None:
    """Each test logs its unreadable timestamps afresh (the emulator's seeded job ids repeat across tests)."""
    from airflow_provider_aisearch.models import timestamps

    timestamps._forget_warnings()


@pytest.fixture
def timestamp_format(request: pytest.FixtureRequest) -> str:
    """The emulator's default timestamp format (each of BOTH_TIMESTAMP_FORMATS under that marker)."""
    return str(getattr(request, "param", "cloudflare"))


@pytest.fixture
def make_emulator(timestamp_format: str) -> Iterator[Callable[..., AISearchEmulator]]:
    """Start emulators (fast defaults: no cooldown, long jobs) and stop them after the test."""
    started: list[AISearchEmulator] = []

    def factory(**kwargs: Any) -> AISearchEmulator:
        kwargs.setdefault("timestamp_format", timestamp_format)
        kwargs.setdefault("token", TOKEN)
        kwargs.setdefault("email", EMAIL)
        kwargs.setdefault("global_key", GLOBAL_KEY)
        kwargs.setdefault("cooldown", 0.0)
        kwargs.setdefault("job_duration", 3600.0)
        emu = AISearchEmulator(**kwargs).start()
        started.append(emu)
        return emu

    yield factory
    for emu in started:
        emu.stop()


@pytest.fixture
def emulator(make_emulator: Callable[..., AISearchEmulator]) -> AISearchEmulator:
    return make_emulator()


@pytest.fixture
def connect(monkeypatch: pytest.MonkeyPatch) -> Callable[..., None]:
    """Register an emulator as an ``AIRFLOW_CONN_*`` connection (JSON form, no metadata DB)."""

    def _connect(
        emu: AISearchEmulator, conn_id: str = "aisearch_default", *, global_key: bool = False, **overrides: Any
    ) -> None:
        import json

        conn = json.loads(emu.connection_json(global_key=global_key))
        extra = conn["extra"]
        for key in ("account_id", "namespace"):
            if key in overrides:
                extra[key] = overrides.pop(key)
        conn.update(overrides)
        monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", json.dumps(conn))

    return _connect


@pytest.fixture
def hook(emulator: AISearchEmulator, connect: Callable[..., None]) -> Iterator[AISearchHook]:
    connect(emulator)
    h = AISearchHook(retry_backoff=0.001)
    yield h
    h.close()


@pytest.fixture
def emu(emulator: AISearchEmulator, connect: Callable[..., None]) -> AISearchEmulator:
    """The ``emulator``, registered as the default connection."""
    connect(emulator)
    return emulator
