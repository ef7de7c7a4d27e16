"""Import cost, structurally: what importing the hook, operator, sensor and trigger modules loads.

``make bench`` times the import (issue 21: at most 50 ms); these tests check, without timing anything,
what keeps it cheap. ``httpx`` (the triggers' async client), ``requests`` (the hook's session) and
OpenLineage (lineage) are imported where they are used, never when a DAG file imports the provider;
the hook alone loads neither the lineage modules nor the Test button's connection check.
"""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

import airflow

CHILD = r"""
import builtins, json, sys

# What the DAG processor has imported before our modules: Airflow and its base classes.
import airflow.providers.common.compat.sdk as sdk
sdk.BaseHook, sdk.BaseOperator, sdk.BaseSensorOperator, sdk.Asset
import airflow.triggers.base

clients = ("httpx", "requests")
deferred = clients + ("openlineage", "airflow.providers.openlineage", "airflow.providers.common.compat.openlineage")
loaded_before = {name: name in sys.modules for name in clients}
modules_before = set(sys.modules)
direct = []
original = builtins.__import__


def spy(name, globals=None, locals=None, fromlist=(), level=0):
    importer = (globals or {}).get("__name__", "")
    if importer.startswith("airflow_provider_aisearch") and level == 0:
        for full in [name, *(f"{name}.{attr}" for attr in fromlist or ())]:
            if any(full == d or full.startswith(d + ".") for d in deferred):
                direct.append(f"{importer} imports {full}")
    return original(name, globals, locals, fromlist, level)


builtins.__import__ = spy
for module in sys.argv[1:]:
    __import__(module)
builtins.__import__ = original
print(json.dumps({
    "direct": direct,
    "loaded_before": loaded_before,
    "loaded_after": {name: name in sys.modules for name in clients},
    "new": sorted(set(sys.modules) - modules_before),
}))
"""

PUBLIC_MODULES = [f"airflow_provider_aisearch.{m}" for m in ("operators", "sensors", "triggers", "hooks")]


def _import_in_child(*modules: str) -> dict[str, Any]:
    out = subprocess.run(
        [sys.executable, "-c", CHILD, *modules], capture_output=True, text=True, timeout=300, check=True
    )
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def test_importing_operators_sensors_triggers_and_hooks_imports_no_http_client_nor_openlineage() -> None:
    result = _import_in_child(*PUBLIC_MODULES)
    # No module of ours runs an `import httpx` / `import requests` / OpenLineage import at import time.
    assert result["direct"] == []
    # And nothing we import pulls httpx in: Airflow 2.11 itself never imports it, so there it must stay
    # out of sys.modules (Airflow 3's logging setup imports it before any provider code runs).
    if not result["loaded_before"]["httpx"]:
        assert not result["loaded_after"]["httpx"]
    if airflow.__version__.startswith("2."):
        assert not result["loaded_before"]["httpx"]
    if not result["loaded_before"]["requests"]:
        assert not result["loaded_after"]["requests"]
    # Besides our own modules and the standard library, only Airflow's (a base class such as
    # BaseOperatorLink): no third-party library and no OpenLineage module is loaded on our account.
    ours = ("airflow_provider_aisearch", "airflow", *sys.stdlib_module_names)
    foreign = [m for m in result["new"] if m.split(".")[0] not in ours]
    assert foreign == []
    assert [m for m in result["new"] if "openlineage" in m] == []


def test_importing_the_hook_alone_loads_no_lineage_and_no_connection_check() -> None:
    # A @task that only calls the hook pays for the hook and the core: lineage is imported when a job
    # is created or an instance read, the connection check when the UI's Test button asks.
    new = _import_in_child("airflow_provider_aisearch.hooks")["new"]
    assert "airflow_provider_aisearch.hooks" in new
    assert [
        m
        for m in new
        if m.startswith(("airflow_provider_aisearch.lineage", "airflow_provider_aisearch.clients.connection_check"))
    ] == []
    assert "airflow_provider_aisearch.assets" not in new  # only lineage's names need the asset URIs
