"""Packaging and registration: entry point, provider info, Airflow's CLI, cheap top-level import."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from importlib.metadata import distribution, entry_points
from pathlib import Path
from typing import Any

import pytest

import airflow_provider_aisearch
from airflow_provider_aisearch import get_provider_info
from airflow_provider_aisearch.emulator import AISearchEmulator
from airflow_provider_aisearch.hooks import AISearchHook

AIRFLOW = str(Path(sys.executable).with_name("airflow"))


def _cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    full_env = dict(os.environ)
    full_env.update(env or {})
    return subprocess.run([AIRFLOW, *args], capture_output=True, text=True, env=full_env, timeout=180)


def _json_rows(output: str) -> list[dict[str, Any]]:
    # Airflow may print log lines before the JSON document.
    start = output.index("[")
    rows = json.loads(output[start:])
    assert isinstance(rows, list)
    return rows


def test_provider_info_matches_distribution_and_hook() -> None:
    info = get_provider_info()
    dist = distribution("airflow-provider-aisearch")
    assert info["package-name"] == dist.metadata["Name"]
    assert dist.version == airflow_provider_aisearch.__version__
    (conn_type,) = info["connection-types"]
    assert conn_type["connection-type"] == AISearchHook.conn_type == "cloudflare_aisearch"
    assert conn_type["hook-class-name"] == f"{AISearchHook.__module__}.{AISearchHook.__qualname__}"
    assert set(conn_type["conn-fields"]) == {"account_id", "namespace"}
    assert "schema" in conn_type["ui-field-behaviour"]["hidden-fields"]
    assert AISearchHook.default_conn_name == "aisearch_default"
    behaviour = AISearchHook.get_ui_field_behaviour()
    assert behaviour["hidden_fields"] == conn_type["ui-field-behaviour"]["hidden-fields"]


def test_entry_point_is_registered() -> None:
    (ep,) = [
        e for e in entry_points(group="apache_airflow_provider") if e.value.startswith("airflow_provider_aisearch")
    ]
    assert ep.load() is get_provider_info


def test_py_typed_is_shipped() -> None:
    files = distribution("airflow-provider-aisearch").files or []
    # editable installs list the .pth only; check the source tree then
    root = Path(airflow_provider_aisearch.__file__).parent
    assert (root / "py.typed").exists() or any(str(f).endswith("py.typed") for f in files)


def test_top_level_import_does_not_import_airflow() -> None:
    code = (
        "import sys, airflow_provider_aisearch as p; p.get_provider_info(); "
        "bad = sorted(m for m in sys.modules if m == 'airflow' or m.startswith(('airflow.', 'requests')));"
        "print(bad); sys.exit(1 if bad else 0)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_airflow_cli_lists_provider_and_knows_connection_type() -> None:
    providers = _cli("providers", "list", "-o", "json")
    assert providers.returncode == 0, providers.stderr[-2000:]
    names = {row["package_name"] for row in _json_rows(providers.stdout)}
    assert "airflow-provider-aisearch" in names

    hooks = _cli("providers", "hooks", "-o", "json")
    assert hooks.returncode == 0, hooks.stderr[-2000:]
    by_type = {row["connection_type"]: row for row in _json_rows(hooks.stdout)}
    assert by_type["cloudflare_aisearch"]["class"] == "airflow_provider_aisearch.hooks.AISearchHook"


def test_airflow_connections_test_uses_our_hook(emulator: AISearchEmulator) -> None:
    """`airflow connections test` resolves the cloudflare_aisearch type to AISearchHook.test_connection."""
    env = {
        "AIRFLOW_CONN_AISEARCH_DEFAULT": emulator.connection_json(),
        "AIRFLOW__CORE__TEST_CONNECTION": "Enabled",
    }
    result = _cli("connections", "test", "aisearch_default", env=env)
    assert "Connection success!" in result.stdout, result.stdout[-2000:] + result.stderr[-2000:]
    assert [r.route for r in emulator.requests] == ["account_verify"]

    env["AIRFLOW_CONN_AISEARCH_DEFAULT"] = json.dumps(
        {**json.loads(env["AIRFLOW_CONN_AISEARCH_DEFAULT"]), "password": "wrong-token-9f8e7d"}
    )
    failed = _cli("connections", "test", "aisearch_default", env=env)
    assert "Connection failed" in failed.stdout
    assert "Invalid API Token" in failed.stdout
    assert "wrong-token-9f8e7d" not in failed.stdout + failed.stderr


@pytest.mark.parametrize("conn_id", ["aisearch_default", "other_cf"])
def test_connection_from_env_json_without_metadata_db(emulator: AISearchEmulator, tmp_path: Path, conn_id: str) -> None:
    """A fresh Airflow home with no database: the hook works from AIRFLOW_CONN_* alone."""
    code = (
        "import sys; from airflow_provider_aisearch.hooks import AISearchHook; "
        "h = AISearchHook(sys.argv[1]); i = h.conn_info; "
        "print(i.base_url, i.account_id, i.namespace, len(h.list_jobs('docs').jobs))"
    )
    env = {
        **os.environ,
        "AIRFLOW_HOME": str(tmp_path),
        f"AIRFLOW_CONN_{conn_id.upper()}": emulator.connection_json(),
    }
    result = subprocess.run([sys.executable, "-c", code, conn_id], capture_output=True, text=True, env=env)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.split()[-4:] == [emulator.url, emulator.account_id, "default", "0"]
    assert [r.route for r in emulator.requests] == ["jobs"]
    assert not (tmp_path / "airflow.db").exists()


def test_connection_defaults_and_legacy_extra_keys(monkeypatch: pytest.MonkeyPatch) -> None:
    conn = {
        "conn_type": "cloudflare_aisearch",
        "password": " tok ",
        "extra": {"extra__cloudflare_aisearch__account_id": "acc", "extra__cloudflare_aisearch__namespace": "ns1"},
    }
    monkeypatch.setenv("AIRFLOW_CONN_CF_LEGACY", json.dumps(conn))
    info = AISearchHook("cf_legacy").conn_info
    assert info.base_url == "https://api.cloudflare.com/client/v4"
    assert (info.account_id, info.namespace, info.secret) == ("acc", "ns1", "tok")
    assert info.auth_headers() == {"Authorization": "Bearer tok"}
    assert "tok" not in repr(info)


def test_connection_form_fields_are_registered() -> None:
    """3.2+ reads conn-fields from provider info; 2.11 calls the hook's get_connection_form_widgets()."""
    import importlib.util
    import inspect

    from airflow import providers_manager

    reads_conn_fields = "conn-fields" in inspect.getsource(providers_manager)  # the provider info's (3.2+)
    if not reads_conn_fields and importlib.util.find_spec("wtforms") is None:
        pytest.skip(
            "this Airflow (3.0/3.1) builds connection form fields with wtforms and Flask-AppBuilder, which only the "
            "FAB provider installs: no provider's fields show without it"
        )
    widgets = _cli("providers", "widgets", "-o", "json")
    assert widgets.returncode == 0, widgets.stderr[-2000:]
    names = {row["connection_parameter_name"] for row in _json_rows(widgets.stdout)}
    assert {"extra__cloudflare_aisearch__account_id", "extra__cloudflare_aisearch__namespace"} <= names


def test_provider_modules_import_without_deprecation_warnings() -> None:
    import airflow

    if not airflow.__version__.startswith("3"):
        pytest.skip("Airflow 2.11 itself emits RemovedInAirflow3Warning on import")
    code = (
        "import airflow_provider_aisearch.hooks, airflow_provider_aisearch.exceptions, "
        "airflow_provider_aisearch.models.jobs, airflow_provider_aisearch.emulator"
    )
    result = subprocess.run(
        [sys.executable, "-W", "error::FutureWarning", "-W", "error::DeprecationWarning", "-c", code],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr[-3000:]
