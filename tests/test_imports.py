"""Import cost, structurally: the operator, sensor, trigger and hook modules import no HTTP client.

``make bench`` times the import; this test checks, without timing anything, what makes it cheap:
``httpx`` (the triggers' async client) and ``requests`` (the hook's session) are imported where
they are used, never when a DAG file imports the provider.
"""

from __future__ import annotations

import json
import subprocess
import sys

import airflow

CHILD = r"""
import builtins, json, sys

# What the DAG processor has imported before our modules: Airflow and its base classes.
import airflow.providers.common.compat.sdk as sdk
sdk.BaseHook, sdk.BaseOperator, sdk.BaseSensorOperator, sdk.Asset
import airflow.triggers.base

clients = ("httpx", "requests")
loaded_before = {name: name in sys.modules for name in clients}
direct = []
original = builtins.__import__


def spy(name, globals=None, locals=None, fromlist=(), level=0):
    importer = (globals or {}).get("__name__", "")
    if importer.startswith("airflow_provider_aisearch") and name.split(".")[0] in clients:
        direct.append(f"{importer} imports {name}")
    return original(name, globals, locals, fromlist, level)


builtins.__import__ = spy
import airflow_provider_aisearch.operators, airflow_provider_aisearch.sensors
import airflow_provider_aisearch.triggers, airflow_provider_aisearch.hooks
builtins.__import__ = original
print(json.dumps({
    "direct": direct,
    "loaded_before": loaded_before,
    "loaded_after": {name: name in sys.modules for name in clients},
}))
"""


def test_importing_operators_sensors_triggers_and_hooks_imports_no_http_client() -> None:
    out = subprocess.run([sys.executable, "-c", CHILD], capture_output=True, text=True, timeout=300, check=True)
    result = json.loads(out.stdout.strip().splitlines()[-1])
    # No module of ours runs an `import httpx` / `import requests` at import time.
    assert result["direct"] == []
    # And nothing we import pulls httpx in: Airflow 2.11 itself never imports it, so there it must stay
    # out of sys.modules (Airflow 3's logging setup imports it before any provider code runs).
    if not result["loaded_before"]["httpx"]:
        assert not result["loaded_after"]["httpx"]
    if airflow.__version__.startswith("2."):
        assert not result["loaded_before"]["httpx"]
